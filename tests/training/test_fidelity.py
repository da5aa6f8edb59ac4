"""`fidelity: paper | released`: the switch, and each paper's rates and rules on a large synthetic batch.

Rates are checked within 3 binomial standard errors (tests/data/masking_batches.within_three_sigma)
on batches large enough that the paper's and the released code's values lie far apart.
"""

import os
import sys
import types

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data"))
from masking_batches import CLS, MASK, PAD, SEP, VOCAB, region_batch, within_three_sigma  # noqa: E402

from vlengine._config import ConfigError  # noqa: E402
from vlengine.batch import IGNORE_INDEX  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(ROOT, "train", "configs")
TOKENIZER = types.SimpleNamespace(special_ids={"cls": CLS, "sep": SEP, "pad": PAD, "mask": MASK, "unk": 100},
                                  mask_id=MASK, vocab_size=VOCAB)


def _config(recipe: str, fidelity: str | None = None, **sections):
    from vlengine.training.config import PretrainConfig
    values = {"recipe": recipe, **sections}
    if fidelity is not None:
        values["fidelity"] = fidelity
    return PretrainConfig.from_dict(values)


def _masker(cfg, task=None):
    from vlengine.training.recipes import build_masker
    return build_masker(cfg.recipe, cfg.masking, TOKENIZER, task)


def _large_region_batch(b=2048, r=24, seed=0):
    """Boxes inside a 100 x 100 image; region 0 of the even rows is the whole-image box."""
    rng = torch.Generator().manual_seed(seed)
    batch = region_batch(b, 24, r, rng)
    boxes = batch.region_boxes.clone()
    boxes[0::2, 0] = torch.tensor([0.0, 0.0, 99.0, 99.0])
    return batch.replace(region_boxes=boxes, image_size=torch.full((b, 2), 100.0), itm_label=None)


# ---- the switch ---------------------------------------------------------------------------------------

def test_fidelity_is_checked_printed_and_defaults_to_released():
    with pytest.raises(ConfigError, match="fidelity must be one of paper, released"):
        _config("vlbert", "papr")
    cfg = _config("vlbert")
    assert cfg.fidelity == "released" and cfg.to_dict()["fidelity"] == "released"
    assert "fidelity: released" in cfg.to_yaml()
    paper = _config("vlbert", "paper")
    assert (paper.masking.region_mask_prob, paper.masking.region_targets) == (1.0, "hard")
    assert paper.model.settings["box_geometry"] == "corners"
    assert paper.model.settings["masked_region_embedding"] == "visual"
    assert (cfg.masking.region_mask_prob, cfg.masking.region_targets) == (0.9, "soft")
    assert cfg.model.settings["box_geometry"] == "centre_size"


def test_vlbert_released_form_end_to_end_keeps_the_features_of_the_zeroed_pixels():
    """The released code replaces a masked RoI's appearance by a learned vector with precomputed features
    only; end to end with raw pixels masked it passes none (the RoI keeps the zeroed pixels' features)."""
    visual = {"trunk": "tiny", "width": 16, "out_features": 64}

    def embedding(fidelity=None, **model):
        cfg = _config("vlbert", fidelity, model={"preset": "tiny", **model},
                      data={"images": "visual" in model})
        return cfg.model.settings["masked_region_embedding"]

    assert (embedding(), embedding("paper")) == ("appearance", "visual")
    assert (embedding(visual=visual), embedding("paper", visual=visual)) == ("computed", "visual")
    assert embedding(visual=visual, masked_region_embedding="appearance") == "appearance"   # written: kept
    from vlengine.training.config import PretrainConfig
    for name in ("vlbert_base_e2e_bf16.yaml", "vlbert_large_e2e_v100_fp16.yaml", "main_job_e2e.yaml"):
        shipped = PretrainConfig.from_file(os.path.join(CONFIGS, name))
        paper = shipped.with_overrides(["fidelity=paper"])
        assert (shipped.model.settings["masked_region_embedding"],
                paper.model.settings["masked_region_embedding"]) == ("computed", "visual"), name


def test_a_written_setting_wins_over_the_fidelity_and_set_moves_the_rest():
    cfg = _config("vlbert", "released", masking={"region_targets": "hard"})
    paper = cfg.with_overrides(["fidelity=paper"])
    assert paper.masking.region_targets == "hard"           # written in the file: kept
    assert paper.masking.region_mask_prob == 1.0             # left to the fidelity: follows it
    assert paper.with_overrides(["fidelity=released"]).to_dict() == cfg.to_dict()
    explicit = paper.with_overrides(["masking.region_mask_prob=0.9"])
    assert explicit.masking.region_mask_prob == 0.9


def test_every_departure_has_both_values_and_names_a_real_setting():
    from vlengine.training.fidelity import DEPARTURES
    for departure in DEPARTURES:
        assert departure.paper != departure.released, departure
        for fidelity in ("paper", "released"):
            cfg = _config(departure.recipe, fidelity)
            section, key = departure.setting.split(".")
            value = cfg.model.settings[key] if section == "model" else getattr(getattr(cfg, section), key)
            assert value == departure.value(fidelity), departure


def test_a_resume_refuses_a_changed_fidelity_and_accepts_configs_written_before_it():
    from vlengine.training.run_config import changed_settings
    released, paper = _config("interbert").to_dict(), _config("interbert", "paper").to_dict()
    assert ("fidelity", "released", "paper") in changed_settings(released, paper)
    older = {k: v for k, v in released.items() if k != "fidelity"}
    older["model"] = {}                                       # no box_geometry etc.: the defaults then
    assert changed_settings(older, _config("interbert").to_dict()) == []


def test_paper_configs_sit_beside_the_released_ones():
    from vlengine.training.config import PretrainConfig
    for recipe in ("vlbert", "interbert"):
        paper = PretrainConfig.from_file(os.path.join(CONFIGS, f"{recipe}_base_paper_bf16.yaml"))
        released = PretrainConfig.from_file(os.path.join(CONFIGS, f"{recipe}_base_bf16.yaml"))
        assert (paper.fidelity, released.fidelity) == ("paper", "released")
    vlbert = PretrainConfig.from_file(os.path.join(CONFIGS, "vlbert_base_paper_bf16.yaml"))
    # 128 caption pairs + 128 text-only rows per step: the text batch is the caption micro batch
    assert vlbert.deepspeed_config["train_batch_size"] == 128
    assert vlbert.data.text_batch_size == vlbert.deepspeed_config["train_micro_batch_size_per_gpu"]
    assert (vlbert.train.lr, vlbert.train.warmup_steps) == (1e-4, 8000)


# ---- VL-BERT ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fidelity, mask_share", [("paper", 1.0), ("released", 0.9)])
def test_vlbert_selects_15_percent_of_rois_and_predicts_every_selected_one(fidelity, mask_share):
    batch = _large_region_batch()
    out = _masker(_config("vlbert", fidelity))(batch, torch.Generator().manual_seed(1))
    eligible = batch.region_valid.clone()
    eligible[0::2, 0] = False                               # whole-image boxes are never masked
    predicted = out.region_targets != IGNORE_INDEX
    assert not bool((predicted & ~eligible).any())
    assert within_three_sigma(int(predicted.sum()), int(eligible.sum()), 0.15)
    masked = int(out.region_masked.sum())
    assert not bool((out.region_masked & ~predicted).any())
    if mask_share == 1.0:
        assert masked == int(predicted.sum())                # all of them masked, all of them predicted
    else:
        assert within_three_sigma(masked, int(predicted.sum()), mask_share)
        assert masked < int(predicted.sum())


def test_vlbert_keeps_region_0_out_only_where_it_is_a_whole_image_box():
    batch = _large_region_batch()
    out = _masker(_config("vlbert", "paper"))(batch, torch.Generator().manual_seed(2))
    assert not bool(out.region_masked[0::2, 0].any())
    odd_rows = out.region_masked[1::2, 0]                    # an ordinary RoI at index 0: masked like any
    assert within_three_sigma(int(odd_rows.sum()), odd_rows.numel(), 0.15)


def test_vlbert_paper_target_is_the_hard_label_released_the_soft_scores():
    batch = _large_region_batch(b=64)
    hard = _masker(_config("vlbert", "paper"))(batch, torch.Generator().manual_seed(3))
    rows = hard.region_targets != IGNORE_INDEX
    assert torch.equal(hard.region_targets[rows], batch.region_labels[rows])
    soft = _masker(_config("vlbert", "released"))(batch, torch.Generator().manual_seed(3))
    rows = soft.region_targets != IGNORE_INDEX
    assert torch.equal(soft.region_targets[rows], batch.region_soft_labels[rows].argmax(-1))


def test_geometry_from_the_corners_or_from_centre_and_size():
    from vlengine.models.geometry import box_geometry_embedding
    boxes = torch.tensor([[[10.0, 20.0, 50.0, 80.0]]])
    size = torch.tensor([[100.0, 200.0]])                    # (height, width)
    f = 4

    def first_angles(form):                                 # frequency 0: the angle is the coordinate itself
        emb = box_geometry_embedding(boxes, size, num_frequencies=f, form=form)[0, 0].view(4, 2 * f)
        return torch.atan2(emb[:, 0], emb[:, f])            # sin and cos of each coordinate at frequency 0

    corners = torch.tensor([10 / 200, 20 / 100, 50 / 200, 80 / 100]) * 100
    centre = torch.tensor([30 / 200, 50 / 100, 40 / 200, 60 / 100]) * 100
    wrap = lambda a: torch.remainder(a + torch.pi, 2 * torch.pi) - torch.pi  # noqa: E731
    torch.testing.assert_close(first_angles("corners"), wrap(corners))
    torch.testing.assert_close(first_angles("centre_size"), wrap(centre))


@pytest.mark.parametrize("form", ["visual", "appearance"])
def test_a_masked_roi_loses_its_whole_visual_embedding_in_the_paper_form(form):
    from vlengine.models import VLBert, VLConfig
    torch.manual_seed(0)
    model = VLBert(VLConfig.tiny(masked_region_embedding=form, visual_ln_init=1.0, hidden_dropout=0.0,
                                 attention_dropout=0.0, visual_dropout=0.0)).eval()
    rng = torch.Generator().manual_seed(4)
    batch = region_batch(4, 10, 6, rng, dim=32).replace(
        input_ids=torch.randint(104, 1000, (4, 10), generator=rng), image_size=torch.full((4, 2), 100.0),
        word_ids=None, itm_label=None)
    batch = batch.replace(input_ids=torch.where(batch.text_mask, batch.input_ids, torch.zeros_like(batch.input_ids)))
    masked = torch.zeros_like(batch.region_valid)
    masked[:, 0] = True
    batch = batch.replace(region_masked=masked)
    moved = batch.region_boxes.clone()
    moved[:, 0] = torch.tensor([1.0, 2.0, 90.0, 95.0])      # the masked RoI's geometry changes
    with torch.no_grad():
        a, b = model(batch).text, model(batch.replace(region_boxes=moved)).text
    if form == "visual":
        torch.testing.assert_close(a, b)                    # nothing of the masked RoI reaches the model
    else:
        assert not torch.allclose(a, b)                     # the released form keeps its geometry


# ---- InterBERT ----------------------------------------------------------------------------------------

def _interbert_batch(b=2048, r=12, seed=5):
    batch = _large_region_batch(b, r=r, seed=seed)
    return batch.replace(itm_label=torch.ones(b, dtype=torch.int64))


@pytest.mark.parametrize("task", ["mlm_mom", "msm_mrm_itm"])
def test_interbert_paper_never_masks_both_modalities_in_one_row(task):
    batch = _interbert_batch()
    out = _masker(_config("interbert", "paper"), task)(batch, torch.Generator().manual_seed(6))
    text_rows = (out.mlm_labels != IGNORE_INDEX).any(1) | (out.input_ids != batch.input_ids).any(1)
    region_rows = out.region_masked.any(1) | (out.region_targets != IGNORE_INDEX).any(1)
    assert not bool((text_rows & region_rows).any())
    assert bool(text_rows.any()) and bool(region_rows.any())
    # the other modality is fully observed: untouched input
    assert torch.equal(out.region_features[text_rows], batch.region_features[text_rows])
    assert torch.equal(out.input_ids[region_rows], batch.input_ids[region_rows])
    released = _masker(_config("interbert", "released"), task)(batch, torch.Generator().manual_seed(6))
    both = (released.mlm_labels != IGNORE_INDEX).any(1) & released.region_masked.any(1)
    assert bool(both.any())


def test_interbert_mrm_anchor_rate_and_the_half_of_rows_that_keeps_it():
    """Boxes far apart (no IoU neighbours) make the masked share of regions the anchor rate: 15% in
    the paper, 10% in the released code. With one modality per row, half the rows keep it."""
    b, r = 4096, 8
    grid = torch.arange(r, dtype=torch.float32) * 12
    boxes = torch.stack([grid, grid, grid + 10, grid + 10], dim=-1).expand(b, r, 4).clone()
    batch = _interbert_batch(b, r).replace(region_boxes=boxes, region_valid=torch.ones(b, r, dtype=torch.bool))
    both = {"one_modality_per_row": False}
    for fidelity, rate in (("paper", 0.15), ("released", 0.10)):
        out = _masker(_config("interbert", fidelity, masking=both), "msm_mrm_itm")(batch, torch.Generator().manual_seed(7))
        assert within_three_sigma(int(out.region_masked.sum()), b * r, rate)
    # the same draws with one modality per row: each row keeps all of its region masks or none
    full = _masker(_config("interbert", "paper", masking=both), "msm_mrm_itm")(batch, torch.Generator().manual_seed(7))
    one = _masker(_config("interbert", "paper"), "msm_mrm_itm")(batch, torch.Generator().manual_seed(7))
    assert not bool((one.region_masked & ~full.region_masked).any())
    had = full.region_masked.any(1)
    kept = (one.region_masked == full.region_masked).all(1) & had
    assert bool((kept | ~one.region_masked.any(1)).all())
    assert within_three_sigma(int(kept.sum()), int(had.sum()), 0.5)


def _tiny_interbert(itm_image="img_token", stage_one_itm=False):
    from vlengine.models import VLConfig
    from vlengine.models.interbert import InterBert
    from vlengine.tasks.interbert import InterBertPretraining
    torch.manual_seed(0)
    model = InterBert(VLConfig.tiny(hidden_dropout=0.0, attention_dropout=0.0))
    return InterBertPretraining(model, {"mlm_mom": None, "msm_mrm_itm": None}, itm_image=itm_image,
                                stage_one_itm=stage_one_itm, soft_region_targets=False).eval()


def _tiny_interbert_batch(b=4):
    rng = torch.Generator().manual_seed(8)
    batch = region_batch(b, 10, 5, rng, dim=32)
    ids = torch.where(batch.text_mask, torch.randint(104, 1000, (b, 10), generator=rng), torch.zeros(b, 10).long())
    ids[:, 0] = CLS
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 1] = ids[:, 1]
    return batch.replace(input_ids=ids, image_size=torch.full((b, 2), 100.0), word_ids=None, mlm_labels=labels,
                         region_labels=batch.region_labels % 17, itm_label=torch.tensor([1, 0] * (b // 2)))


def test_interbert_itm_reads_text_cls_times_the_img_position():
    objective = _tiny_interbert("img_token")
    with torch.no_grad():
        out = objective.model(_tiny_interbert_batch())
        paper = objective.itm_logits(out)
        torch.testing.assert_close(paper, objective.itm(out.extras["text_cls"], out.extras["image_cls"]))
        earlier = objective.itm(out.extras["text_cls"], out.image)
    assert not torch.allclose(paper, earlier)


def test_interbert_stage_one_has_itm_and_the_switch_is_at_a_third_of_the_run():
    from vlengine.training.recipes import interbert_stage_two_step
    cfg = _config("interbert", "paper", train={"total_steps": 300, "warmup_steps": 10})
    assert interbert_stage_two_step(cfg.objective, cfg.train.total_steps) == 100
    assert interbert_stage_two_step(_config("interbert", "paper", objective={"stage_two_step": 7}).objective,
                                    300) == 7                # a written switch step wins
    batch = _tiny_interbert_batch()
    with torch.no_grad():
        assert "itm_loss" in _tiny_interbert(stage_one_itm=True)(batch, "mlm_mom").metrics
        assert "itm_loss" not in _tiny_interbert(stage_one_itm=False)(batch, "mlm_mom").metrics


def test_interbert_zero_shot_retrieval_scores_with_its_two_input_itm_head(tmp_path):
    import functools

    from vlengine.data import build_embedded_corpus
    from vlengine.data.loading import CaptionImageDataset, collate_items
    from vlengine.models import VLConfig
    from vlengine.models.interbert import InterBert
    from vlengine.tasks.grounding_eval import zero_shot_retrieval
    from vlengine.tasks.interbert import InterBertPretraining

    root = build_embedded_corpus(str(tmp_path / "c"), seed=3, num_train=8, num_heldout=6, num_text_documents=1)
    dataset = CaptionImageDataset(os.path.join(root, "heldout"), max_text_len=32)
    first = {}
    for i in range(len(dataset)):
        first.setdefault(int(dataset.store.caption(i)["image_index"]), i)
    items = [dataset[(0, i)] for i in list(first.values())[:4]]
    import json
    with open(os.path.join(root, "MANIFEST.json")) as f:
        classes = json.load(f)["classes"]
    with open(os.path.join(root, "vocab.txt")) as f:
        vocab = sum(1 for _ in f)
    torch.manual_seed(0)
    config = VLConfig.tiny(vocab_size=vocab, num_region_classes=len(classes) if isinstance(classes, list)
                           else int(classes), region_feature_size=items[0]["features"].shape[-1])
    objective = InterBertPretraining(InterBert(config), {"mlm_mom": None, "msm_mrm_itm": None}).eval()
    results = zero_shot_retrieval(objective, items, functools.partial(collate_items, pad_id=0), "cpu")
    assert results["retrieval_candidates"] == len(items)
    assert 0.0 <= results["retrieval_r1"] <= 1.0


# ---- CSS-BERT -----------------------------------------------------------------------------------------

def test_cssbert_in_batch_negatives_pair_half_the_rows_with_another_rows_image():
    from vlengine.tasks.cssbert import with_in_batch_negatives
    b = 4096
    batch = _large_region_batch(b, r=4)
    out = with_in_batch_negatives(batch, torch.Generator().manual_seed(9))
    image_from, label = out.extras["nsp_image_from"], out.itm_label
    assert within_three_sigma(int((label == 0).sum()), b, 0.5)
    rows = torch.arange(b)
    assert bool((image_from[label == 0] != rows[label == 0]).all())
    assert torch.equal(image_from[label == 1], rows[label == 1])
    with pytest.raises(ValueError, match="itm_negative_prob to 0"):
        with_in_batch_negatives(batch.replace(itm_label=torch.zeros(b, dtype=torch.int64)), None)


def test_cssbert_paper_needs_a_loader_without_negatives():
    with pytest.raises(ConfigError, match="data.itm_negative_prob must be 0"):
        _config("cssbert", "paper", data={"itm_negative_prob": 0.5})
    assert _config("cssbert", "paper").data.itm_negative_prob == 0.0
    assert _config("cssbert").data.itm_negative_prob == 0.5


@pytest.mark.parametrize("nsp_negatives, matched", [("in_batch", 8), ("loader", 4)])
def test_cssbert_contrastive_batch_is_every_matched_pair(monkeypatch, nsp_negatives, matched):
    """PwCL sees all B pairs with in-batch NSP negatives (the paper), B/2 with the loader's negatives;
    with in-batch negatives its inputs are the rows' own pairs, not the re-paired joint pass."""
    import vlengine.ops
    from vlengine.models import CSSBert, VLConfig
    from vlengine.tasks.cssbert import CSSBertPretraining

    seen = {}

    def spy(e, f, *args, **kwargs):
        seen["e"], seen["f"] = e, f
        return (e * f).sum()

    monkeypatch.setattr(vlengine.ops, "contrastive_loss", spy)
    torch.manual_seed(0)
    config = VLConfig.tiny(hidden_dropout=0.0, attention_dropout=0.0, visual_dropout=0.0)
    objective = CSSBertPretraining(CSSBert(config), None, distributed=False, nsp_negatives=nsp_negatives).eval()
    batch = _tiny_interbert_batch(8).replace(itm_label=None if nsp_negatives == "in_batch"
                                             else torch.tensor([1, 0] * 4))
    prepared = objective.prepare_batch(batch, "pretrain", torch.Generator().manual_seed(10))
    with torch.no_grad():
        metrics = objective(prepared).metrics
        own = objective.model(batch).extras
    assert seen["e"].shape[0] == matched and "nsp_loss" in metrics
    if nsp_negatives == "in_batch":
        assert bool((prepared.itm_label == 0).any())
        torch.testing.assert_close(seen["f"], own["image_embedding"])
        torch.testing.assert_close(seen["e"], own["sentence_embedding"])


def test_cssbert_printed_pwcl_is_the_posters_ratio_where_it_is_defined():
    from vlengine.tasks.cssbert import printed_pwcl
    rng = torch.Generator().manual_seed(11)
    e = torch.rand(6, 5, generator=rng)                      # positive entries: every sum > 0
    f = torch.rand(6, 5, generator=rng)
    s = e @ f.T
    expected = -torch.log(s.diagonal().sum() / (s.sum() - s.diagonal().sum()))
    torch.testing.assert_close(printed_pwcl(e, f), expected)
    assert printed_pwcl(e, -f) is None                       # a sum <= 0: the log is not defined
    assert _config("cssbert", objective={"kind": "pwcl_printed"}).objective.kind == "pwcl_printed"
