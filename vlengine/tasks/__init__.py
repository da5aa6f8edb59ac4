"""vlengine.tasks: pretraining objectives, one per paper, each an nn.Module DeepSpeed can wrap.

    VLBertPretraining     (vlbert.py)    MLM with visual clues + masked RoI classification (+ optional relation/ITM)
    InterBertPretraining  (interbert.py) stage 1 MLM + MOM, stage 2 MSM + MRM + ITM
    SemVLPPretraining     (semvlp.py)    MLM + masked object prediction + ITM in single- or two-stream mode
    CSSBertPretraining    (cssbert.py)   MLM + NSP + pair-wise contrastive loss (vlengine.ops.contrastive_loss)

All four subclass PretrainObjective (base.py: the model, the masking policy per task, the tied MLM
head, the task check). forward(batch, task) -> TaskOutput(loss, metrics) (output.py);
prepare_batch(batch, task, generator) applies the task's masking policy (vlengine.data.masking).
grounding_eval.py holds the held-out evaluations: attribute-word MLM with / without the image,
masked region classification, zero-shot retrieval.
"""

from .output import TaskOutput

__all__ = ["TaskOutput"]
