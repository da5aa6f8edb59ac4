"""Downstream tasks: VQA v2, GQA, NLVR2, image-text retrieval, RefCOCO+ grounding and VCR, from converted
annotation sets (``vlengine data convert --from vqa|gqa|nlvr2|karpathy|refcoco|vcr``) and a region store.

    datasets    VqaDataset, GqaDataset (answer_datasets.py), Nlvr2Dataset, RetrievalDataset, GroundingDataset,
                VcrDataset: items -> ``collate_for(dataset)`` -> VLBatch (targets in ``batch.extras``)
    models      AnswerModel (head "answer_slot" = VL-BERT, "pooled_mlp" = UNITER/LXMERT/SemVLP;
                loss "bce" soft scores x answers, or "ce"), Nlvr2Model, RetrievalModel
                (ITM cross-encoder with in-batch hard negatives and/or contrastive dual encoder),
                GroundingModel (a score per region; per-region BCE or softmax over the regions),
                VcrModel (four sequences per question, the image encoded once);
                each has ``loss(batch)`` -> TaskOutput and ``predict(batch)``
    optimizer   head_lr_param_groups (head learning rate x multiplier)
    evaluation  predict_sharded (every example scored once over ranks, gathered on rank 0 by id),
                evaluate_retrieval (full ITM ranking and two-stage re-ranking side by side)
    official    answers_from_classes, official_metrics, write_submission (the task's metric and file)
"""

from .answer_datasets import GqaDataset, VqaDataset
from .answer_model import AnswerModel
from .collate import collate_downstream, collate_for
from .evaluate import predict_sharded
from .grounding_dataset import GroundingDataset
from .grounding_model import GroundingModel
from .nlvr2_dataset import Nlvr2Dataset
from .nlvr2_model import Nlvr2Model
from .official import answers_from_classes, official_metrics, write_submission
from .param_groups import head_lr_param_groups
from .retrieval_dataset import RetrievalDataset
from .retrieval_eval import evaluate_retrieval
from .retrieval_model import RetrievalModel
from .sharding import gather_results, shard_range
from .vcr_dataset import VcrDataset
from .vcr_model import VcrModel

__all__ = ["AnswerModel", "GqaDataset", "GroundingDataset", "GroundingModel", "Nlvr2Dataset", "Nlvr2Model", "RetrievalDataset", "RetrievalModel",
           "VcrDataset", "VcrModel", "VqaDataset", "answers_from_classes", "collate_downstream", "collate_for", "evaluate_retrieval",
           "gather_results", "head_lr_param_groups", "official_metrics", "predict_sharded", "shard_range",
           "write_submission"]
