"""The embedded, visually grounded corpus (scenes, grammar, pixel features, builder)."""

from .build import build_embedded_corpus, default_corpus_dir, ensure_embedded_corpus
from .features import region_features
from .grammar import ATTRIBUTE_WORDS

__all__ = ["build_embedded_corpus", "default_corpus_dir", "ensure_embedded_corpus", "region_features",
           "ATTRIBUTE_WORDS"]
