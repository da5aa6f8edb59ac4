"""RefCOCO / RefCOCO+ (``--from refcoco``): a referring expression and its image's candidate regions.

Input text: ``[CLS] expression [SEP]``; regions: the store's boxes of the image. The candidates the model
chooses among are the store's regions except a whole-image box at position 0 (VL-BERT's added image
box, which the embedded corpus's and ``--from images`` stores put first: context, never a referent).
Tracks (``track``), each explicit:

* ``"gt"``: the store's boxes are the image's ground-truth object boxes; the annotation set must not
  carry detections.
* ``"detected"``: the candidates are detected boxes: the set's ``proposals`` extra (``--proposals``),
  each of which must be one of the store's boxes (the store's features were extracted on them), or,
  without that extra, the store's own boxes (a store built from the detections).

Per item, beside the text and region fields: ``candidate_mask`` [r] bool, ``region_iou`` [r] float32
(IoU of each region with the ground-truth box, ``iou_convention``) and ``region_hit`` [r] bool (that
IoU counts, ``iou_comparison`` against 0.5): the training accuracy and the targets read them.
``region_features=False`` zeroes every feature but keeps the boxes: the geometry-only baseline (a
text-only model has no regions to choose from at all). End to end (``image_transform``: a model with a
visual front-end reads the raw-image store's images), the baseline blanks the image instead (every
pixel the mean, which the normalisation maps to 0). IoUs are computed on the store's boxes, before any
resize.
"""

from __future__ import annotations

import numpy as np

from vlengine.metrics.grounding import box_iou, coco_corners, is_hit

from .dataset_base import AnnotatedImageDataset
from .regions import text_item

TRACKS = ("gt", "detected")
PROPOSAL_TOLERANCE = 0.5   # pixels: a detection and the store box its features were extracted on


def _is_whole_image(box, image_size) -> bool:
    """The rule pretraining's masking uses (vlengine.data.masking._regions.whole_image_rows) for one
    store record: (0, 0, W - 1, H - 1) or (0, 0, W, H), with 2 pixels or 2% of the side of slack."""
    height, width = (float(v) for v in image_size)
    slack_x, slack_y = max(2.0, 0.02 * width), max(2.0, 0.02 * height)
    return box[0] <= slack_x and box[1] <= slack_y and box[2] >= width - slack_x and box[3] >= height - slack_y


class GroundingDataset(AnnotatedImageDataset):
    """``example_id`` is the sentence id (the set's ``id``); see the module doc for the item fields."""

    task = "refcoco"

    def __init__(self, annotations, store, tokenizer, track: str = "gt", iou_convention: str = "plus_one",
                 iou_comparison: str = ">=", max_text_len: int | None = 64, max_regions: int | None = None,
                 region_features: bool = True, image_transform=None):
        super().__init__(annotations, store, tokenizer, max_text_len, max_regions, image_transform=image_transform)
        if track not in TRACKS:
            raise ValueError(f"refcoco track must be one of {TRACKS}, got {track!r}")
        box_iou(np.zeros((1, 4)), np.zeros((1, 4)), iou_convention)    # the settings fail here, not mid-run
        is_hit(0.0, iou_comparison)
        self.track, self.iou_convention, self.iou_comparison = track, iou_convention, iou_comparison
        self.region_features = region_features
        proposals = (self.annotations.extra("proposals")
                     if "proposals" in self.annotations.index.get("extras", []) else None)
        if proposals is not None and track == "gt":
            raise ValueError(f"annotation set {self.annotations.path} carries detected proposals (--proposals): "
                             "it belongs to the detected-box track (task.track: detected)")
        self._candidates = {}   # store index -> bool [r]: computed once per image
        for index in np.unique(self.image_index[:, 0]):
            self._candidates[int(index)] = self._candidate_mask(int(index), proposals)

    def _candidate_mask(self, store_index: int, proposals: dict | None) -> np.ndarray:
        rec = self.store.image(store_index)
        r = rec["num_boxes"] if self.max_regions is None else min(rec["num_boxes"], self.max_regions)
        boxes = np.asarray(rec["boxes"][:r], dtype=np.float64)
        mask = np.ones(r, dtype=bool)
        if r and _is_whole_image(boxes[0], rec["image_size"]):
            mask[0] = False
        if proposals is not None:
            image_id = rec["image_id"]
            wanted = np.array([coco_corners(b) for b in proposals.get(image_id, [])]).reshape(-1, 4)
            near = (np.abs(wanted[:, None, :] - boxes[None, :, :]) <= PROPOSAL_TOLERANCE).all(-1)   # [P, r]
            if len(wanted) and not near.any(1).all():
                missing = wanted[int(np.nonzero(~near.any(1))[0][0])].tolist()
                raise ValueError(f"store {self.store.path}: image {image_id!r} has no region with the detected box "
                                 f"{missing} (of {len(wanted)}; or max_regions cut it): extract the store's features "
                                 "on the same detections")
            mask &= near.any(0)
        if not mask.any():
            raise ValueError(f"store {self.store.path}: image {rec['image_id']!r} has no candidate region")
        return mask

    def gt_box(self, index: int) -> np.ndarray:
        """The referred object's box as corners (float64)."""
        return coco_corners(self.record(index)["bbox"])

    def region_boxes(self, index: int) -> np.ndarray:
        """The image's region boxes as the item carries them (corners, float64 [r, 4])."""
        store_index = int(self.image_index[index, 0])
        return np.asarray(self.store.image(store_index)["boxes"][:len(self._candidates[store_index])], np.float64)

    def candidates(self, index: int) -> np.ndarray:
        """bool [r]: which regions of example ``index`` the model may choose."""
        return self._candidates[int(self.image_index[index, 0])]

    def __getitem__(self, key) -> dict:
        index = self._index(key)
        record = self.record(index)
        item = text_item(self.tokenizer.encode(record["text"], self.max_text_len))
        item.update(self._regions(self.image_index[index, 0]))
        visual = "features" if self.image_transform is None else "image"
        if not self.region_features:
            item[visual] = np.zeros(item[visual].shape, dtype=item[visual].dtype)
        iou = box_iou(self.region_boxes(index), self.gt_box(index), self.iou_convention)[:, 0]
        item.update(example_index=index, candidate_mask=self.candidates(index), region_iou=iou.astype(np.float32),
                    region_hit=is_hit(iou, self.iou_comparison))
        return item
