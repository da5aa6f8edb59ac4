"""The sharded, memory-mapped region/caption store (see ``format.py`` for the layout)."""

from .format import StoreFormatError, caption_columns, region_columns
from .reader import Store, Table, open_store
from .writer import StoreWriter

__all__ = ["Store", "StoreFormatError", "StoreWriter", "Table", "open_store", "region_columns", "caption_columns"]
