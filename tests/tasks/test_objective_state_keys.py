"""The objectives' state-dict keys, in order, are a file format: checkpoints, the fp32 safetensors
export and DeepSpeed's optimizer state (flattened in parameter order) are keyed by them. Refactoring
an objective must leave them exactly as recorded in objective_state_keys.json (recorded from the
objectives before they shared a base class)."""

import json
import os

import pytest

from vlengine.models import CSSBert, InterBert, SemVLP, VLBert, VLConfig
from vlengine.tasks.cssbert import CSSBertPretraining
from vlengine.tasks.interbert import InterBertPretraining
from vlengine.tasks.semvlp import SemVLPPretraining
from vlengine.tasks.vlbert import VLBertPretraining

RECORDED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "objective_state_keys.json")


def _identity(batch, generator):
    return batch


def build(name: str):
    config = VLConfig.tiny()
    if name == "vlbert":
        return VLBertPretraining(VLBert(config), _identity)
    if name == "vlbert_itm":
        return VLBertPretraining(VLBert(config), _identity, itm_weight=1.0)
    if name == "interbert":
        return InterBertPretraining(InterBert(config), {"mlm_mom": _identity, "msm_mrm_itm": _identity})
    if name == "semvlp":
        return SemVLPPretraining(SemVLP(config), _identity)
    if name == "cssbert":
        return CSSBertPretraining(CSSBert(config), _identity)
    raise KeyError(name)


with open(RECORDED) as f:
    EXPECTED = json.load(f)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_state_dict_keys_unchanged(name):
    objective = build(name)
    assert list(objective.state_dict()) == EXPECTED[name]["state_dict"]
    # parameter order (the order DeepSpeed flattens optimizer state in), tied weights once
    assert [n for n, _ in objective.named_parameters()] == EXPECTED[name]["parameters"]


def test_every_recorded_objective_is_built():
    assert sorted(EXPECTED) == ["cssbert", "interbert", "semvlp", "vlbert", "vlbert_itm"]
