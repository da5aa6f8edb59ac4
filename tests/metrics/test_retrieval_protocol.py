"""Retrieval protocol: R@K from score matrices (hand-worked), folds (COCO 1K), embeddings agree with scores."""

import pytest
import torch
import torch.nn.functional as F

from vlengine.metrics.retrieval_protocol import (coco_1k_and_5k, recall_from_embeddings, recall_from_scores,
                                                 retrieval_metrics, summarize)


def test_recall_from_scores_hand_worked():
    # captions 0, 1 describe image 0; captions 2, 3 image 1
    scores = torch.tensor([[0.9, 0.1],    # rank 0
                           [0.2, 0.5],    # rank 1
                           [0.3, 0.8],    # rank 0
                           [0.7, 0.6]])   # rank 1
    r = recall_from_scores(scores, ks=(1, 2))
    assert r["text_to_image"] == {1: 0.5, 2: 1.0}
    # image 0's best caption (0.9) and image 1's (0.8) top their columns
    assert r["image_to_text"] == {1: 1.0, 2: 1.0}
    s = summarize(r)
    assert s["text_to_image"] == {"R@1": 50.0, "R@2": 100.0} and s["text_to_image_mean"] == 75.0
    assert s["image_to_text_mean"] == 100.0 and s["r_mean"] == 87.5 and s["rsum"] == 350.0


def test_ties_favour_the_query_and_unscored_pairs_miss():
    scores = torch.tensor([[0.5, 0.5], [0.1, 0.4]])
    assert recall_from_scores(scores, ks=(1,))["text_to_image"] == {1: 1.0}
    inf = float("-inf")
    two_stage = torch.tensor([[inf, 0.3], [inf, 0.4]])  # caption 0's own image was not a candidate
    r = recall_from_scores(two_stage, ks=(1, 2))
    assert r["text_to_image"] == {1: 0.5, 2: 0.5}       # a miss at every K
    assert r["image_to_text"] == {1: 0.5, 2: 0.5}       # image 0 has no scored caption: a miss
    with pytest.raises(ValueError, match="NaN"):
        recall_from_scores(torch.tensor([[float("nan")]]))


def test_images_without_captions_are_candidates_not_queries():
    scores = torch.tensor([[0.2, 0.9, 0.0]])  # caption 0 of image 0; image 1 and 2 have none
    r = recall_from_scores(scores, torch.tensor([0]), ks=(1, 2))
    assert r["text_to_image"] == {1: 0.0, 2: 1.0} and r["image_to_text"] == {1: 1.0, 2: 1.0}


def test_folds_rank_within_each_fold():
    scores = 0.5 * torch.eye(4)
    scores[0, 2] = 0.9   # caption 0 prefers image 2 (the other fold)
    scores[3, 1] = 0.9   # caption 3 outranks image 1's own caption
    full = retrieval_metrics(scores=scores, ks=(1,))
    assert full["text_to_image"]["R@1"] == 50.0 and full["image_to_text"]["R@1"] == 50.0
    folds = retrieval_metrics(scores=scores, ks=(1,), num_folds=2)
    assert folds["text_to_image"]["R@1"] == 100.0 and folds["image_to_text"]["R@1"] == 100.0
    with pytest.raises(ValueError, match="do not split into 3 equal folds"):
        retrieval_metrics(scores=scores, num_folds=3)


def flat(summary):
    return {f"{k}/{kk}" if isinstance(v, dict) else k: (vv if isinstance(v, dict) else v)
            for k, v in summary.items() for kk, vv in (v.items() if isinstance(v, dict) else [(None, None)])}


def test_embeddings_agree_with_their_score_matrix():
    g = torch.Generator().manual_seed(0)
    image = torch.randn(10, 16, generator=g)
    text = image.repeat_interleave(5, 0) + 3.0 * torch.randn(50, 16, generator=g)
    scores = F.normalize(text, dim=1) @ F.normalize(image, dim=1).T
    for folds in (1, 5):
        from_embeddings = flat(retrieval_metrics(text=text, image=image, num_folds=folds))
        assert from_embeddings == pytest.approx(flat(retrieval_metrics(scores=scores, num_folds=folds)))
        assert 0 < from_embeddings["text_to_image/R@1"] < 100  # a case where ranking matters
    both = coco_1k_and_5k(text=text, image=image)
    assert flat(both["5k"]) == pytest.approx(flat(retrieval_metrics(scores=scores)))
    assert both["1k"]["r_mean"] >= both["5k"]["r_mean"]  # fewer distractors per fold
    assert flat(recall_from_embeddings(text, image, ks=(1,))) == pytest.approx(flat(recall_from_scores(scores, ks=(1,))))
    with pytest.raises(ValueError, match="either scores, or text and image"):
        retrieval_metrics(scores=scores, text=text, image=image)
