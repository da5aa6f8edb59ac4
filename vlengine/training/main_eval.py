"""The held-out evaluation that ends a pretraining run (vlengine.tasks.grounding_eval on the heldout store)."""

from __future__ import annotations

import torch

from .sections import EvalSection


def build_evaluator(eval_cfg: EvalSection, paths, tokenizer, dtype: torch.dtype, image_transform=None):
    """evaluate(engine, step) -> metrics, or None when the corpus has no heldout split.

    ``image_transform``: raw-image mode (an end-to-end model): held-out items carry their decoded
    image. With an MRC head the masking leak is measured too (a masked region's class from vision
    alone): end to end for the front-end's mask mode, and in precomputed mode, where a whole-image
    region 0 was computed from the unmasked image."""
    if paths.heldout is None:
        return None
    import functools

    from vlengine.data.loading import CaptionImageDataset, collate_items
    from vlengine.tasks.grounding_eval import (attribute_and_region_accuracy, vision_only_region_accuracy,
                                               zero_shot_retrieval)

    attribute_words = paths.manifest.get("attribute_words")
    if not attribute_words:
        raise ValueError(f"{paths.root}/MANIFEST.json names no attribute_words: the attribute-word "
                         "evaluation needs them (the embedded corpus lists colour/size/shape words)")
    groups = {}
    for group, words in attribute_words.items():
        ids = []
        for word in words:
            encoded = tokenizer.encode_plain(word).ids
            if len(encoded) != 1:
                raise ValueError(f"attribute word {word!r} is {len(encoded)} word pieces; expected one")
            ids.append(int(encoded[0]))
        groups[group] = ids
    dataset = CaptionImageDataset(paths.heldout, max_text_len=64, image_transform=image_transform,
                                  load_features=image_transform is None)
    n_captions = min(eval_cfg.captions, len(dataset))
    batch_size = eval_cfg.batch_size
    seed = eval_cfg.seed
    collate = functools.partial(collate_items, pad_id=tokenizer.pad_id)

    def cast(batch):  # floating inputs to the engine's compute dtype (VLBatch.to), on the device they are on
        return batch.to(batch.input_ids.device, dtype)

    def evaluate(engine, step: int) -> dict:
        objective = engine.module
        device = engine.device
        batches = (collate([dataset[(0, i)] for i in range(s, min(s + batch_size, n_captions))])
                   for s in range(0, n_captions, batch_size))
        results = attribute_and_region_accuracy(objective, batches, groups, tokenizer.mask_id, device, seed, cast)
        if getattr(objective, "mrc", None) is not None:
            batches = (collate([dataset[(0, i)] for i in range(s, min(s + batch_size, n_captions))])
                       for s in range(0, n_captions, batch_size))
            results.update(vision_only_region_accuracy(objective, batches, device, seed, cast))
        n_images = eval_cfg.retrieval_images
        if n_images > 1 and getattr(objective, "itm", None) is not None:
            # one caption per image: the first caption of each of the first n images
            first = {}
            for i in range(len(dataset)):
                image = int(dataset.store.caption(i)["image_index"])
                first.setdefault(image, i)
                if len(first) >= n_images:
                    break
            items = [dataset[(0, i)] for i in first.values()]
            results.update(zero_shot_retrieval(objective, items, collate, device, batch_size=256, cast=cast))
        return results

    return evaluate
