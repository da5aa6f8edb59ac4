"""Batched, reproducible masking for the four papers' pretraining objectives.

Every policy is a frozen dataclass called on a whole ``VLBatch``:

    batch = policy(batch, generator)      # -> a new VLBatch; inputs are never modified in place

* ``generator``: a ``torch.Generator`` on the batch's device (or None for the
  global RNG). The same generator state gives the same masks on the same
  device; draws are whole-batch tensor ops, no per-token or per-box Python loop,
  so policies run on CPU (in DataLoader workers) or on the GPU after
  ``batch.to(device)``.
* Labels use one convention: IGNORE_INDEX (-100) wherever there is no target
  (``torch.nn.functional.cross_entropy`` skips it). Special tokens ([CLS],
  [SEP], [PAD], [MASK], ids in ``special_ids``), tokens with word id -1 and
  padding (``text_mask`` False, ``region_valid`` False, text-only rows for
  regions) are never masked.

Text policies (fill ``input_ids`` and ``mlm_labels`` [B, T]):
    MLMMasking(vocab_size, prob=0.15, whole_word=False, ...)
        BERT / VL-BERT MLM, 80% [MASK] / 10% random / 10% kept, decided per
        token or, with whole_word, per word (``batch.word_ids``).
    SpanMasking(vocab_size, anchor_prob=0.1, max_extra=2, whole_word=True, ...)
        InterBERT MSM: anchor words extended by 0..2 following words, 80/10/10.

Region policies (fill ``region_masked`` [B, R] bool and ``region_targets`` [B, R] int64):
    RoIMasking(select_prob=0.15, mask_prob=0.9, targets="soft", whole_image_index=0)
        VL-BERT masked RoI classification; in soft mode the targets are
        ``batch.region_soft_labels`` where ``region_targets != IGNORE_INDEX``
        (``region_targets`` holds their argmax there). Also ``masked_rois``
        [K, 5] (batch_index, x1, y1, x2, y2), the boxes to pass to
        ``vlengine.ops.mask_pixels`` (raw images) or
        ``vlengine.ops.roi_align_masked(masked_boxes=...)``.
    IoURegionMasking(preset=vlengine.ops.INTERBERT_PAPER, inplace_features=False)
        InterBERT MRM via ``vlengine.ops.sample_region_mask``; masked
        ``region_features`` are zeroed (in a copy, or with inplace_features
        in the batch's own tensor: no full copy per step, for batches used once).
    ObjectPredictionMasking(prob=0.15)
        SemVLP masked object prediction; masked features zeroed,
        ``region_feature_targets`` = the original features.

Combining:
    ConditionalMasking((text_policy, region_policy))
        runs the policies in order on every row, then drops the MLM/MRM
        labels of ITM negatives (``itm_label == 0``): they are masked like
        positives, so masking does not give the pair label away.
    masking_for(paper, vocab_size)
        each paper's combination: "vlbert", "interbert",
        "interbert-released", "semvlp", "cssbert".

Example::

    from vlengine.data.masking import masking_for
    mask = masking_for("interbert", vocab_size=30522)
    gen = torch.Generator().manual_seed(step)
    batch = mask(batch, gen)
    loss = F.cross_entropy(mlm_logits.flatten(0, 1), batch.mlm_labels.flatten())   # -100 ignored
"""

from .conditional import ConditionalMasking
from .mlm import MLMMasking
from .object_prediction import ObjectPredictionMasking
from .presets import PAPERS, masking_for
from .region_iou import IoURegionMasking
from .roi import RoIMasking
from .span import SpanMasking

__all__ = [
    "PAPERS",
    "ConditionalMasking",
    "IoURegionMasking",
    "MLMMasking",
    "ObjectPredictionMasking",
    "RoIMasking",
    "SpanMasking",
    "masking_for",
]
