"""Caption x image pair batches built by indexing two collated batches: no per-pair collate.

Retrieval scores many pairs with the same captions and images: captions are
collated once, images once, and a pair batch is the text rows of one and the
region rows of the other, cut to the longest text and region count among the
chosen rows. Its cost is an index-select; the encoder forward is all that is left.
"""

from __future__ import annotations

import torch

from vlengine.batch import VLBatch

TEXT_FIELDS = ("input_ids", "text_mask", "word_ids", "token_type_ids")
REGION_FIELDS = ("region_features", "region_boxes", "region_valid", "region_labels", "region_soft_labels")


def pair_batch(texts: VLBatch, text_rows: torch.Tensor, images: VLBatch, image_rows: torch.Tensor) -> VLBatch:
    """Row i pairs caption ``text_rows[i]`` of ``texts`` with image ``image_rows[i]`` of ``images``."""
    if text_rows.shape != image_rows.shape or text_rows.dim() != 1:
        raise ValueError(f"text_rows and image_rows must be 1-D of one length, got {list(text_rows.shape)} "
                         f"and {list(image_rows.shape)}")
    if images.region_boxes is None:
        raise ValueError("pair_batch: the image batch has no regions")
    text_rows = text_rows.to(texts.input_ids.device)
    image_rows = image_rows.to(images.region_boxes.device)
    t = int(texts.text_mask[text_rows].sum(1).max()) if text_rows.numel() else 1
    valid = images.region_valid[image_rows] if images.region_valid is not None else None
    r = int(valid.sum(1).max()) if valid is not None and valid.numel() else images.region_boxes.shape[1]
    r = max(r, 1)
    fields = {name: getattr(texts, name)[text_rows][:, :t] for name in TEXT_FIELDS if getattr(texts, name) is not None}
    for name in REGION_FIELDS:
        value = getattr(images, name)
        if value is not None:
            fields[name] = value[image_rows][:, :r]
    fields["image_size"] = images.image_size[image_rows]
    fields["extras"] = {"text_row": text_rows, "image_row": image_rows}
    return VLBatch(**fields)


def cls_only(batch: VLBatch) -> VLBatch:
    """The batch with only each row's [CLS] kept as text: the image side of a dual encoder."""
    first = batch.text_mask.int().argmax(1, keepdim=True)
    mask = torch.zeros_like(batch.text_mask).scatter(1, first, True)
    return batch.replace(text_mask=mask, token_type_ids=None, mlm_labels=None)


def text_only(batch: VLBatch) -> VLBatch:
    """The batch without its regions: the text side of a dual encoder."""
    return batch.replace(region_features=None, region_boxes=None, region_valid=None, region_labels=None,
                         region_soft_labels=None, region_masked=None, images=None, text_only=None, image_size=None)
