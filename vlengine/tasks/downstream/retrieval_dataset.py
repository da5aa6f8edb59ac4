"""Image-text retrieval (Flickr30K, COCO Karpathy splits): one item per caption, with its image.

Training items are matched pairs (``itm_label`` 1); the negatives are drawn from
the batch by the retrieval model. Evaluation needs the two sides apart:
``caption_item(i)`` (text only), ``image_item(j)`` (regions only, images in the
order of the set's ``images`` extra) and ``text_to_image`` (each caption's image).
"""

from __future__ import annotations

import numpy as np
import torch

from .dataset_base import AnnotatedImageDataset
from .regions import region_item, text_item


class RetrievalDataset(AnnotatedImageDataset):
    task = "retrieval"

    def __init__(self, annotations, store, tokenizer, max_text_len: int | None = 64, max_regions: int | None = None):
        super().__init__(annotations, store, tokenizer, max_text_len, max_regions)
        image_ids = self.annotations.extra("images")
        self.image_store_index = np.asarray([self.store.index_of(i) for i in image_ids], dtype=np.int64)
        owners = [self.record(i)["image_index"] for i in range(len(self))]
        self._text_to_image = torch.tensor(owners, dtype=torch.int64)

    @property
    def num_images(self) -> int:
        return len(self.image_store_index)

    @property
    def text_to_image(self) -> torch.Tensor:
        """[captions] int64: the position (in ``images``) of each caption's image."""
        return self._text_to_image

    def caption_item(self, index: int) -> dict:
        item = text_item(self.tokenizer.encode(self.record(index)["text"], self.max_text_len))
        item["example_index"] = index
        return item

    def image_item(self, index: int) -> dict:
        # an image row carries "[CLS] [SEP]" as its text: collatable as is, and the input of a dual
        # encoder's image side (CSS-BERT's image-only pass reads the regions beside [CLS])
        item = text_item(self.tokenizer.encode(""))
        item.update(region_item(self.store, self.image_store_index[index], self.max_regions))
        item["example_index"] = index
        return item

    def __getitem__(self, key) -> dict:
        index = self._index(key)
        item = self.caption_item(index)
        item.update(region_item(self.store, self.image_index[index, 0], self.max_regions))
        item["itm_label"] = 1
        return item
