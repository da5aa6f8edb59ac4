"""Annotation sets: the downstream tasks' questions, sentences and captions, converted once
from the official files (``vlengine data convert --from vqa|gqa|nlvr2|karpathy``) and read
with O(1) access per example (see ``format.py`` for the layout)."""

from .format import ANNOTATION_FORMAT, AnnotationFormatError
from .reader import AnnotationSet, open_annotations
from .writer import AnnotationWriter

__all__ = ["ANNOTATION_FORMAT", "AnnotationFormatError", "AnnotationSet", "AnnotationWriter", "open_annotations"]
