"""Random padded VL batches for the model tests (each test seeds its own generator through ``rng``)."""

import pytest
import torch

from vlengine.batch import IGNORE_INDEX, VLBatch
from vlengine.models import VLConfig


def random_batch(config: VLConfig, gen: torch.Generator, batch: int = 3, text_len: int = 9, regions: int = 6,
                 text_lengths=None, region_counts=None, text_only=None, with_labels: bool = True,
                 dtype=torch.float32) -> VLBatch:
    """A batch with right-padded text and regions, random boxes inside 120 x 160 images, and all labels."""
    text_lengths = text_lengths or [text_len - (i % 3) for i in range(batch)]
    region_counts = region_counts or [max(1, regions - i) for i in range(batch)]
    ids = torch.randint(5, config.vocab_size, (batch, text_len), generator=gen)
    text_mask = torch.arange(text_len).unsqueeze(0) < torch.tensor(text_lengths).unsqueeze(1)
    ids = ids.masked_fill(~text_mask, config.pad_token_id)
    valid = torch.arange(regions).unsqueeze(0) < torch.tensor(region_counts).unsqueeze(1)
    xy = torch.rand(batch, regions, 2, generator=gen) * torch.tensor([100.0, 80.0])
    wh = 4 + torch.rand(batch, regions, 2, generator=gen) * 50
    boxes = torch.cat((xy, (xy + wh).minimum(torch.tensor([159.0, 119.0]))), dim=-1)
    feats = torch.rand(batch, regions, config.region_feature_size, generator=gen, dtype=dtype)
    b = VLBatch(input_ids=ids, text_mask=text_mask, region_features=feats, region_boxes=boxes,
                region_valid=valid, image_size=torch.tensor([[120.0, 160.0]]).expand(batch, 2).clone(),
                text_only=torch.tensor(text_only) if text_only is not None else None)
    if with_labels:
        mlm = torch.full((batch, text_len), IGNORE_INDEX)
        pick = (torch.rand(batch, text_len, generator=gen) < 0.4) & text_mask
        pick[:, 1] = True
        mlm[pick] = torch.randint(0, config.vocab_size, (int(pick.sum()),), generator=gen)
        masked = (torch.rand(batch, regions, generator=gen) < 0.4) & valid
        masked[:, 0] = True
        targets = torch.full((batch, regions), IGNORE_INDEX)
        targets[masked] = torch.randint(0, config.num_region_classes, (int(masked.sum()),), generator=gen)
        soft = torch.rand(batch, regions, config.num_region_classes, generator=gen)
        b = b.replace(mlm_labels=mlm, region_masked=masked, region_targets=targets, region_soft_labels=soft,
                      region_feature_targets=feats.clone(), itm_label=torch.randint(0, 2, (batch,), generator=gen))
    return b


@pytest.fixture
def make_batch(rng):
    def make(config, **kwargs):
        return random_batch(config, rng, **kwargs)
    return make

