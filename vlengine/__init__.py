"""vlengine: fused kernels, models and DeepSpeed pretraining for vision-language BERTs.

Layers, each usable alone (dependencies point one way, downwards):
    vlengine.batch     the batch contract (VLBatch and its derived views) that models,
                       data and tasks share: the ground floor
    vlengine.ops       fused ops (RoIAlign with pixel masking, IoU-neighbourhood
                       masking, tiled contrastive loss) with a pure-PyTorch reference
    vlengine.models    VL-BERT, InterBERT, SemVLP, CSS-BERT from one set of parts
    vlengine.data      feature stores, converters, masking policies, embedded corpus
    vlengine.training  the DeepSpeed pretraining loop
"""

__version__ = "0.1.0"
