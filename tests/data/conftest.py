"""Shared fixtures of the data tests: one small embedded corpus per session."""

import pytest

from vlengine.data.corpus import build_embedded_corpus


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    """An embedded corpus of 240 training and 60 held-out images (seed 0)."""
    root = tmp_path_factory.mktemp("corpus") / "c0"
    return str(build_embedded_corpus(str(root), seed=0, num_train=240, num_heldout=60, num_text_documents=30))
