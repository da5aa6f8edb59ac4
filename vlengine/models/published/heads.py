"""The pretraining heads a conversion may fill, by export prefix (the attribute names of vlengine.tasks' objectives).

Each factory takes (config, backbone); a head is written only when the checkpoint filled part of it.
"""

from __future__ import annotations

from ..heads import ITMHead, MaskedLMHead, RegionClassificationHead, RegionFeatureRegressionHead

HEADS = {
    "mlm": lambda config, model: MaskedLMHead(config, model.embeddings.word_embeddings),
    "mrc": lambda config, model: RegionClassificationHead(config),
    "itm": lambda config, model: ITMHead(config),
    "regression": lambda config, model: RegionFeatureRegressionHead(config),
}
