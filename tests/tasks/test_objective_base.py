"""The objectives' shared base (vlengine.tasks.base.PretrainObjective): masking per task, task checks,
the tied MLM head."""

import pytest
import torch

from vlengine.batch import VLBatch
from vlengine.models import CSSBert, InterBert, SemVLP, VLBert, VLConfig
from vlengine.tasks.base import PretrainObjective
from vlengine.tasks.cssbert import CSSBertPretraining
from vlengine.tasks.interbert import InterBertPretraining
from vlengine.tasks.semvlp import SemVLPPretraining
from vlengine.tasks.vlbert import VLBertPretraining


def tagging(tag):
    """A stand-in masking policy that records which policy ran, with which generator."""
    def policy(batch, generator):
        return batch.replace(extras={"masked_by": tag, "generator": generator})
    return policy


def objectives(config):
    return [VLBertPretraining(VLBert(config), tagging("vlbert")),
            InterBertPretraining(InterBert(config), {"mlm_mom": tagging("mlm_mom"),
                                                     "msm_mrm_itm": tagging("msm_mrm_itm")}),
            SemVLPPretraining(SemVLP(config), tagging("semvlp")),
            CSSBertPretraining(CSSBert(config), tagging("cssbert"), distributed=False)]


@pytest.fixture(scope="module")
def built():
    return objectives(VLConfig.tiny())


def text_batch(config):
    ids = torch.randint(5, config.vocab_size, (2, 4), generator=torch.Generator().manual_seed(0))
    return VLBatch(input_ids=ids, text_mask=torch.ones_like(ids, dtype=torch.bool))


def test_every_objective_shares_the_base_and_ties_its_mlm_decoder(built):
    for objective in built:
        assert isinstance(objective, PretrainObjective)
        assert objective.mlm.word_embeddings is objective.model.embeddings.word_embeddings


def test_prepare_batch_runs_the_tasks_masking_policy(built):
    config = VLConfig.tiny()
    generator = torch.Generator()
    for objective in built:
        for task in objective.tasks:
            out = objective.prepare_batch(text_batch(config), task, generator)
            expected = task if isinstance(objective, InterBertPretraining) else \
                {"VL-BERT": "vlbert", "SemVLP": "semvlp", "CSS-BERT": "cssbert"}[objective.paper]
            assert out.extras["masked_by"] == expected
            assert out.extras["generator"] is generator


def test_an_unknown_task_is_refused_by_name(built):
    config = VLConfig.tiny()
    for objective in built:
        with pytest.raises(ValueError, match=rf"{objective.paper} pretraining has tasks .* got 'nope'"):
            objective.prepare_batch(text_batch(config), "nope", torch.Generator())
        with pytest.raises(ValueError, match=rf"{objective.paper} pretraining has tasks .* got 'nope'"):
            objective(text_batch(config), "nope")


def test_without_a_masker_the_batch_is_used_as_it_comes():
    config = VLConfig.tiny()
    objective = VLBertPretraining(VLBert(config), None)
    batch = text_batch(config)
    out = objective.prepare_batch(batch, "pretrain", torch.Generator())
    assert out.input_ids is batch.input_ids and out.mlm_labels is None


def test_interbert_needs_a_policy_per_task():
    with pytest.raises(ValueError, match=r"InterBERT needs a masking policy for tasks \['mlm_mom'\]"):
        InterBertPretraining(InterBert(VLConfig.tiny()), {"msm_mrm_itm": tagging("x")})
