"""Each paper's objective (model + heads + masking policies) and task schedule, from a config.

    vlbert     VLBert + VLBertPretraining; masking: whole-word MLM + RoI masking; one task per step
    interbert  InterBert + InterBertPretraining; stage 1 (steps < objective.stage_two_step, or
               objective.stage_one_share of train.total_steps): MLM + MOM (+ ITM with
               objective.stage_one_itm), then MSM + MRM (IoU neighbourhoods) + ITM
    semvlp     SemVLP + SemVLPPretraining; single- or two-stream per step (objective.two_stream_prob);
               image QA on the questions of data.qa
    cssbert    CSSBert + CSSBertPretraining; MLM + NSP + PwCL (gathered across ranks)
"""

from __future__ import annotations

import torch

from .config import PretrainConfig
from .sections import MaskingSection, objective_kwargs
from .task_mixing import StagedTaskMixer, TaskMixer


def _text_settings(tokenizer) -> dict:
    specials = tuple(sorted(set(tokenizer.special_ids.values())))
    return {"vocab_size": tokenizer.vocab_size, "mask_token_id": tokenizer.mask_id, "special_ids": specials,
            "random_token_low": max(specials) + 1 if max(specials) + 1 < tokenizer.vocab_size else 0}


def build_masker(recipe: str, masking: MaskingSection, tokenizer, task: str | None = None):
    """The masking policy (vlengine.data.masking) of a recipe / task, conditional on ITM labels."""
    from vlengine.data.masking import ConditionalMasking, MLMMasking, RoIMasking, masking_for

    text = _text_settings(tokenizer)
    if recipe == "vlbert" or (recipe == "interbert" and task == "mlm_mom"):
        return ConditionalMasking((
            MLMMasking(prob=masking.mlm_prob, whole_word=masking.whole_word, **text),
            RoIMasking(targets=masking.region_targets, mask_prob=masking.region_mask_prob)),
            one_modality_per_row=masking.one_modality_per_row)
    return masking_for(masking.preset or recipe, one_modality_per_row=masking.one_modality_per_row, **text)


def build_objective(cfg: PretrainConfig, model_config, tokenizer, num_answers: int | None = None,
                    corpus_dir: str | None = None, log=None):
    """(objective module, task mixer) for cfg.recipe; ``num_answers``: the image-QA head's classes
    (SemVLP with data.qa; None: no QA head); ``corpus_dir``: where the tiny visual trunk's detector
    stage trains (model.visual.weights "corpus")."""
    seed = cfg.train.seed
    soft_regions = cfg.masking.region_targets == "soft"
    if cfg.recipe == "vlbert":
        from vlengine.models import VLBert
        from vlengine.tasks.vlbert import VLBertPretraining

        objective = objective_kwargs(cfg.objective, "region_visual_ln_init")
        if objective["soft_region_targets"] is None:
            objective["soft_region_targets"] = soft_regions
        region_ln = cfg.objective.region_visual_ln_init
        # end to end (model.visual): the front-end turns batch.images into region features, hiding the
        # RoIs the objective's masker marks in batch.region_masked (pixels or C4 map)
        visual = cfg.model.visual.build(corpus_dir, cfg.train.seed, log) if cfg.model.visual is not None else None
        model = VLBert(model_config, visual=visual)
        if region_ln is not None:
            # VL-BERT starts both visual LayerNorms at 0 so that the untrained model equals its text
            # BERT. Trained from scratch there is no BERT to protect, and a region token carries
            # nothing but its visual term: starting that term on lets the regions be read from step 1
            # (the text tokens' visual term keeps model.visual_ln_init, so word identity is not drowned).
            with torch.no_grad():
                model.visual_ln_region.weight.fill_(float(region_ln))
        module = VLBertPretraining(model, build_masker("vlbert", cfg.masking, tokenizer), **objective)
        return module, TaskMixer({"pretrain": 1.0}, seed)
    if cfg.recipe == "interbert":
        from vlengine.models.interbert import InterBert
        from vlengine.tasks.interbert import TASKS, InterBertPretraining

        objective = objective_kwargs(cfg.objective, "stage_two_step", "stage_one_share")
        if objective["soft_region_targets"] is None:
            objective["soft_region_targets"] = soft_regions
        stage_two = interbert_stage_two_step(cfg.objective, cfg.train.total_steps)
        maskers = {task: build_masker("interbert", cfg.masking, tokenizer, task) for task in TASKS}
        module = InterBertPretraining(InterBert(model_config), maskers, **objective)
        stages = [(0, {"msm_mrm_itm": 1.0})] if stage_two <= 0 else \
            [(0, {"mlm_mom": 1.0}), (stage_two, {"msm_mrm_itm": 1.0})]
        return module, StagedTaskMixer(stages, seed)
    if cfg.recipe == "semvlp":
        from vlengine.models.semvlp import SemVLP
        from vlengine.tasks.semvlp import SemVLPPretraining

        objective = objective_kwargs(cfg.objective, "two_stream_prob")
        p_two = cfg.objective.two_stream_prob
        module = SemVLPPretraining(SemVLP(model_config), build_masker("semvlp", cfg.masking, tokenizer),
                                   num_answers=num_answers, **objective)
        return module, TaskMixer({"single": 1.0 - p_two, "two": p_two}, seed)
    if cfg.recipe == "cssbert":
        from vlengine.models.cssbert import CSSBert
        from vlengine.tasks.cssbert import CSSBertPretraining

        objective = objective_kwargs(cfg.objective, "contrastive_inputs")
        inputs = cfg.objective.contrastive_inputs
        module = CSSBertPretraining(CSSBert(model_config, contrastive_inputs=inputs),
                                    build_masker("cssbert", cfg.masking, tokenizer), **objective)
        return module, TaskMixer({"pretrain": 1.0}, seed)
    raise ValueError(f"unknown recipe {cfg.recipe!r}")


def interbert_stage_two_step(objective, total_steps: int) -> int:
    """The first step of InterBERT's second stage: objective.stage_two_step, or the share
    objective.stage_one_share of the run (the paper's 5 + 10 epochs: 1/3)."""
    if objective.stage_one_share > 0:
        return max(1, round(objective.stage_one_share * total_steps))
    return objective.stage_two_step
