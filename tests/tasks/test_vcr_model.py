"""VCR's model: the image encoded once per question gives the same logits (and trunk gradients) as
the front-end run on each of the four rows; mentions change the logits through grounding."""

import torch

from vlengine.batch import VLBatch
from vlengine.models import VLBert, VLConfig
from vlengine.models.visual import tiny_c4_frontend
from vlengine.tasks.downstream.vcr_model import VcrModel


def model_and_batch(seed=0):
    torch.manual_seed(seed)
    config = VLConfig.tiny(region_feature_size=64)
    model = VcrModel(VLBert(config, visual=tiny_c4_frontend(out_features=64, freeze_stem=False))).eval()
    g = torch.Generator().manual_seed(seed)
    questions, rows, t = 2, 8, 9
    ids = torch.randint(5, config.vocab_size, (rows, t), generator=g)
    mask = torch.ones(rows, t, dtype=torch.bool)
    mask[1, 6:] = False
    boxes = torch.tensor([[0, 0, 95, 63], [4, 4, 40, 30], [30, 10, 90, 60]], dtype=torch.float32).expand(questions, 3, 4)
    text_regions = torch.full((rows, t), -1)
    text_regions[:, 2] = 1
    text_regions[::2, 4] = 2
    batch = VLBatch(input_ids=ids, text_mask=mask, region_boxes=boxes.clone(),
                    region_valid=torch.ones(questions, 3, dtype=torch.bool),
                    image_size=torch.tensor([[64.0, 96.0]] * questions),
                    images=torch.randn(questions, 3, 64, 96, generator=g), extras={"text_regions": text_regions})
    return model, batch


def test_shared_image_features_give_the_repeated_logits_and_gradients():
    model, batch = model_and_batch()
    shared = model.logits(batch, share_image=True)
    trunk = model.backbone.visual.trunk
    shared.sum().backward()
    grads = [p.grad.clone() for p in trunk.parameters() if p.grad is not None]
    model.zero_grad()
    repeated = model.logits(batch, share_image=False)
    repeated.sum().backward()
    assert shared.shape == (2, 4)
    torch.testing.assert_close(shared, repeated, rtol=1e-5, atol=1e-5)
    again = [p.grad for p in trunk.parameters() if p.grad is not None]
    assert grads and len(grads) == len(again)
    for a, b in zip(grads, again):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_grounding_reaches_the_logits_and_the_loss_trains():
    model, batch = model_and_batch()
    torch.nn.init.ones_(model.backbone.visual_ln_text.weight)   # starts at 0 (visual_ln_init): no visual term yet
    with torch.no_grad():
        grounded = model.logits(batch)
        plain = model.logits(batch.replace(extras={}))
    assert (grounded - plain).abs().max() > 0
    out = model.loss(batch, torch.tensor([0, 3]))
    assert torch.isfinite(out.loss) and 0 <= float(out.metrics["vcr_acc"]) <= 1
