"""NLVR2: one sentence about two images, encoded as two (image, sentence) rows.

An item holds ``sides`` = [(image 0, sentence), (image 1, sentence)]; the collate
puts them in consecutive rows (2i, 2i + 1), whose pooled outputs the NLVR2 head
concatenates (LXMERT, UNITER's "pair" setting, SemVLP).
"""

from __future__ import annotations

from .collate import label_or_ignore
from .dataset_base import AnnotatedImageDataset


class Nlvr2Dataset(AnnotatedImageDataset):
    """NLVR2 (``--from nlvr2``); ``example_id`` is the official identifier; ``label`` 1 = True."""

    task = "nlvr2"

    def __getitem__(self, key) -> dict:
        index = self._index(key)
        record = self.record(index)
        if self.image_index.shape[1] != 2 or (self.image_index[index] < 0).any():
            raise ValueError(f"{self.annotations.path}: record {index} ({record['id']}) does not name two images")
        encoded = self.tokenizer.encode(record["text"], self.max_text_len)
        return {"sides": [self._side(encoded, 0, index), self._side(encoded, 1, index)],
                "example_index": index, "label": label_or_ignore(record.get("label"))}
