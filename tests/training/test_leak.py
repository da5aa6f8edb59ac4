"""Leak test, end-to-end raw-image mode: can a masked region's class be read from vision alone?

Raw images of the embedded corpus go through the data package's raw-image path,
VL-BERT's RoI masking policy picks the masked regions, and the visual front-end
(pixel masking -> stride-16 trunk -> legacy RoIAlign 14x14 -> head) computes
their features with no caption at all. A linear probe trained on those features
predicts the masked object's colour on held-out images. With pixel masking on
the object's pixels are gone before the trunk, so the probe must be near chance;
with masking off (the same regions, mask_mode="none") it must read the colour.
Masking on the C4 map ("feature_map", the config's `features`) zeroes only the cells under the box:
the cells around it saw the object through the trunk's receptive field, and the probe reads it;
with a ring of one cell zeroed around the box too (`feature_mask_margin: 1`) it must not.
The trunk is a small random conv net: it needs no training to carry colour.
"""

import pytest
import torch
from torch import nn

N_COLOURS = 7


def _trunk() -> nn.Module:
    torch.manual_seed(0)
    layers, channels = [], 3
    for out in (16, 32, 32, 32):                # four stride-2 convs: output stride 16, like C4
        layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.ReLU()]
        channels = out
    return nn.Sequential(*layers)


@pytest.fixture(scope="module")
def raw_batches(tmp_path_factory):
    from vlengine.data import build_embedded_corpus
    from vlengine.data.images import ImageTransform
    from vlengine.data.loading import CaptionImageDataset, collate_items
    from vlengine.data.masking import RoIMasking

    root = build_embedded_corpus(str(tmp_path_factory.mktemp("leak") / "c"), seed=5, num_train=160, num_heldout=80,
                                 num_text_documents=1)
    out = {}
    for split in ("train", "heldout"):
        ds = CaptionImageDataset(f"{root}/{split}", image_transform=ImageTransform(None, None, "torchvision"))
        # one caption per image (every 5th): the probe sees each image once
        items = [ds[(0, i)] for i in range(0, len(ds), 5)]
        batch = collate_items(items)
        batch = RoIMasking(select_prob=0.5, mask_prob=1.0, targets="hard")(batch, torch.Generator().manual_seed(1))
        out[split] = batch
    return out


def _masked_region_features(batch, mask_mode: str, feature_mask_margin: int = 0):
    from vlengine.models.visual.frontend import VisualFrontEnd

    frontend = VisualFrontEnd(_trunk(), nn.Identity(), stride=16, mask_mode=mask_mode,
                              feature_mask_margin=feature_mask_margin).eval()
    with torch.no_grad():
        features, _ = frontend(batch.images, batch.region_boxes, batch.region_valid, batch.region_masked,
                               batch.image_size)
    sel = batch.region_masked
    colour = (batch.region_targets[sel] // 3) % N_COLOURS          # class = (shape * 7 + colour) * 3 + size
    return features[sel], colour


def _probe_accuracy(train, test) -> float:
    (xtr, ytr), (xte, yte) = train, test
    mean, std = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    probe = nn.Linear(xtr.shape[1], N_COLOURS)
    opt = torch.optim.LBFGS(probe.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(probe(xtr), ytr) + 1e-3 * probe.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return (probe(xte).argmax(1) == yte).float().mean().item()


@pytest.mark.parametrize("hiding, margin", [("pixels", 0), ("feature_map", 1)])
def test_masking_hides_the_masked_region_from_vision(raw_batches, hiding, margin):
    """`pixels`, and the C4-map mode with a one-cell margin (the cells whose taps RoIAlign reads at the box edge)."""
    assert int(raw_batches["heldout"].region_masked.sum()) >= 40
    chance = max(torch.bincount(_masked_region_features(raw_batches["heldout"], "none")[1],
                                minlength=N_COLOURS).tolist()) / int(raw_batches["heldout"].region_masked.sum())
    visible = _probe_accuracy(_masked_region_features(raw_batches["train"], "none"),
                              _masked_region_features(raw_batches["heldout"], "none"))
    hidden = _probe_accuracy(_masked_region_features(raw_batches["train"], hiding, margin),
                             _masked_region_features(raw_batches["heldout"], hiding, margin))
    print(f"colour of masked regions from vision alone: masking off {visible:.2f}, {hiding} masking on "
          f"{hidden:.2f}, majority class {chance:.2f}")
    # measured here: off 0.68, pixels 0.17, feature_map with the ring 0.07, majority 0.18 (seven colours)
    assert visible >= chance + 0.35, "with masking off the masked region's colour must be readable from vision"
    assert hidden <= chance + 0.10, f"with {hiding} masking on the masked region's colour must not be readable"


def test_feature_map_masking_leaks_through_the_trunks_receptive_field(raw_batches):
    """Measured, not wished: zeroing the C4 cells under a masked box leaves its neighbours, which saw the
    object through the trunk's receptive field; RoIAlign's taps at the box edge read them. The colour stays
    readable above chance, below the unmasked level (measured here: 0.40 vs 0.68, majority 0.18): the
    `features` mode is cheaper than `pixels`, not as tight."""
    heldout = raw_batches["heldout"]
    chance = max(torch.bincount(_masked_region_features(heldout, "none")[1], minlength=N_COLOURS).tolist()) / \
        int(heldout.region_masked.sum())
    visible = _probe_accuracy(_masked_region_features(raw_batches["train"], "none"),
                              _masked_region_features(heldout, "none"))
    on_map = _probe_accuracy(_masked_region_features(raw_batches["train"], "feature_map"),
                             _masked_region_features(heldout, "feature_map"))
    print(f"colour from vision alone: masking off {visible:.2f}, C4-map masking {on_map:.2f}, majority {chance:.2f}")
    assert chance + 0.10 < on_map < visible - 0.10
