"""RefCOCO+ grounding metric on hand-worked boxes: the two pixel conventions and the two comparisons at
the IoU = 0.5 boundary, the chance level and upper bound of a candidate set."""

import numpy as np
import pytest

from vlengine.metrics.grounding import box_iou, candidate_bounds, coco_corners, grounding_accuracy, is_hit

# [0, 0, 9, 9] vs [0, 0, 9, 4]: +1-pixel areas 10x10 = 100 and 10x5 = 50, all of the second inside the
# first: IoU 50 / 100 = 0.5 exactly; continuous areas 81 and 36: 36 / 81 = 0.444...
PLUS_ONE_BOUNDARY = ([0, 0, 9, 9], [0, 0, 9, 4])
# [0, 0, 10, 10] vs [0, 0, 10, 5]: continuous 100 and 50: 0.5 exactly; +1-pixel 121 and 66: 66 / 121 = 0.545...
CONTINUOUS_BOUNDARY = ([0, 0, 10, 10], [0, 0, 10, 5])


@pytest.mark.parametrize("boxes, convention, iou", [
    (PLUS_ONE_BOUNDARY, "plus_one", 0.5), (PLUS_ONE_BOUNDARY, "continuous", 36 / 81),
    (CONTINUOUS_BOUNDARY, "continuous", 0.5), (CONTINUOUS_BOUNDARY, "plus_one", 66 / 121),
    # sharing one pixel column: 5 of 25 + 25 - 5 pixels; as continuous boxes they only touch
    (([0, 0, 4, 4], [4, 0, 8, 4]), "plus_one", 5 / 45), (([0, 0, 4, 4], [4, 0, 8, 4]), "continuous", 0.0),
    (([0, 0, 4, 4], [10, 10, 12, 12]), "plus_one", 0.0),
])
def test_iou_by_hand(boxes, convention, iou):
    assert box_iou(boxes[0], boxes[1], convention)[0, 0] == pytest.approx(iou, abs=1e-12)
    assert box_iou(boxes[1], boxes[0], convention)[0, 0] == pytest.approx(iou, abs=1e-12)


@pytest.mark.parametrize("boxes, convention, comparison, hit", [
    (PLUS_ONE_BOUNDARY, "plus_one", ">=", True),      # VL-BERT's setting counts the boundary
    (PLUS_ONE_BOUNDARY, "plus_one", ">", False),
    (PLUS_ONE_BOUNDARY, "continuous", ">=", False),
    (PLUS_ONE_BOUNDARY, "continuous", ">", False),
    (CONTINUOUS_BOUNDARY, "continuous", ">=", True),
    (CONTINUOUS_BOUNDARY, "continuous", ">", False),  # UNITER's setting does not
    (CONTINUOUS_BOUNDARY, "plus_one", ">", True),
])
def test_the_boundary_under_each_setting(boxes, convention, comparison, hit):
    predicted, truth = boxes
    result = grounding_accuracy({"s1": predicted}, {"s1": truth}, convention, comparison)
    assert result["accuracy"] == (100.0 if hit else 0.0) and result["correct"] == int(hit)
    assert (result["iou_convention"], result["iou_comparison"], result["iou_threshold"]) == (convention, comparison, 0.5)


def test_accuracy_over_several_expressions_and_the_settings_are_checked():
    truth = {"a": [0, 0, 9, 9], "b": [20, 20, 29, 29], "c": [0, 0, 9, 9]}
    predicted = {"a": [0, 0, 9, 9], "b": [0, 0, 9, 9], "c": [0, 0, 9, 4]}
    assert grounding_accuracy(predicted, truth)["accuracy"] == pytest.approx(200 / 3)
    assert grounding_accuracy(predicted, truth, comparison=">")["accuracy"] == pytest.approx(100 / 3)
    with pytest.raises(ValueError, match="1 expressions have no predicted box"):
        grounding_accuracy({"a": [0, 0, 1, 1]}, {"a": [0, 0, 1, 1], "b": [0, 0, 1, 1]})
    with pytest.raises(ValueError, match="convention"):
        box_iou([0, 0, 1, 1], [0, 0, 1, 1], "pixels")
    with pytest.raises(ValueError, match="comparison"):
        is_hit(0.5, "=>")


def test_coco_boxes_map_to_corners_that_plus_one_reads_as_w_plus_1_pixels():
    assert coco_corners([3, 4, 9, 9]).tolist() == [3, 4, 12, 13]
    assert box_iou(coco_corners([0, 0, 9, 9]), [0, 0, 9, 9])[0, 0] == 1.0


def test_chance_is_exact_from_the_candidates_and_the_upper_bound_counts_reachable_expressions():
    truth = [[0, 0, 9, 9], [50, 50, 59, 59]]
    candidates = [np.array([[0, 0, 9, 9], [20, 20, 29, 29], [30, 30, 39, 39], [0, 0, 9, 4]]),   # 2 of 4 count
                  np.array([[0, 0, 9, 9], [20, 20, 29, 29]])]                                  # none counts
    bounds = candidate_bounds(candidates, truth)
    assert bounds == {"chance": pytest.approx(25.0), "upper_bound": 50.0}
    assert candidate_bounds(candidates, truth, comparison=">")["chance"] == pytest.approx(12.5)
    with pytest.raises(ValueError, match="no candidate"):
        candidate_bounds([np.zeros((0, 4))], [[0, 0, 1, 1]])
