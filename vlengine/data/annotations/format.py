"""On-disk layout of an annotation set (no pickle: JSON lines, a raw int64 offsets array, JSON).

An annotation set is a directory::

    index.json            format, version, task, record count, attrs, and per file its byte size and sha256
    records.jsonl         one JSON object per example, one line each, in source order
    records.offsets.bin   int64 [n + 1]: byte offset of each line (and the end), so record i is
                          two offsets and one ``json.loads`` away: O(1), memory-mapped, shared by workers
    <extra>.json          task extras named in the index (e.g. ``images.json``: retrieval's image order)

Every record has ``id`` (str, unique in the set), ``images`` (list of image ids
as the region store names them: one for VQA/GQA/retrieval, two for NLVR2) and
``text`` (the question, sentence or caption). The task's own fields keep the
official files' names so the records feed the official metrics directly:

* ``vqa``: ``question_id``, ``image_id`` (as in the file), and with annotations
  ``answers`` (the ten answer strings), ``multiple_choice_answer``,
  ``answer_type``, ``question_type``.
* ``gqa``: ``answer`` (absent in test files), ``fullAnswer``, ``isBalanced``, ``types``.
* ``nlvr2``: ``label`` (bool; absent when the file has none), ``identifier``.
* ``retrieval``: ``image_index`` (position of its image in ``images.json``), ``sentid``.
* ``refcoco``: ``bbox`` (the referred object's COCO [x, y, w, h]), ``ref_id``, ``ann_id``, ``image_id``,
  ``sent_id``, ``split``, ``category_id``; with detections the extra ``proposals``.
* ``vcr``: ``annot_id``, ``img_fn``, ``metadata_fn``, ``objects``, ``question``, ``answer_choices`` [4],
  ``rationale_choices`` [4] (each ``{"words", "regions"}``: per word the detection index it mentions or -1),
  and outside test ``answer_label``, ``rationale_label``; ``text`` is the question's words.
"""

from __future__ import annotations

from ..store.format import StoreFormatError

ANNOTATION_FORMAT = "vlengine-annotations"
ANNOTATION_VERSION = 1
RECORDS_FILE = "records.jsonl"
OFFSETS_FILE = "records.offsets.bin"
TASKS = ("vqa", "gqa", "nlvr2", "retrieval", "refcoco", "vcr")


class AnnotationFormatError(StoreFormatError):
    """An annotation set's file is missing, truncated, corrupt or inconsistent (the message names it)."""


def extra_file(name: str) -> str:
    return f"{name}.json"
