"""A torch ``Dataset`` over a sample store, yielding decoded samples of all three formats.

Each item is ``{"sample_id", "format", "images": [uint8 HxWx3 arrays], "conversations", "meta"}``;
``collate_samples`` keeps a batch as a list of those dicts (the model's ``prepare_batch`` turns
them into tensors). The store is opened lazily in each process, so DataLoader workers never share
LMDB handles; only the compact key index (numpy arrays) is built up front and copied to workers.
``recordings`` / ``exclude_recordings`` choose samples by recording through the store's
``list_keys(groups=...)``; ``verify_on_read`` opens the store so that every record read is checked
against the checksum committed with it (a flipped byte fails the batch that meets it, naming it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from babyvlm.core.errors import ConfigError
from babyvlm.core.records import SAMPLE_FORMATS
from babyvlm.media import decode_jpeg
from babyvlm.plugins.pretraining_set.stores import open_store


class PretrainingDataset(torch.utils.data.Dataset):
    """Decoded samples of a store (optionally only some formats), in store order."""

    def __init__(self, store: Any, formats: Sequence[str] | None = None,
                 transform: Callable[[dict[str, Any]], Any] | None = None, *,
                 recordings: Iterable[str] | None = None, exclude_recordings: Iterable[str] | None = None,
                 verify_on_read: bool = False):
        if isinstance(store, (str, os.PathLike)):
            store = open_store(store, verify_on_read=True) if verify_on_read else open_store(store)
        elif verify_on_read and not getattr(store, "verify_on_read", False):
            raise ConfigError(f"{store!r}: verify_on_read needs a store opened with verify_on_read=True")
        self.store = store
        unknown = sorted(set(formats or ()) - set(SAMPLE_FORMATS))
        if unknown:
            raise ConfigError(f"unknown sample format(s) {unknown}; formats are {', '.join(SAMPLE_FORMATS)}")
        self.formats = tuple(formats) if formats else None
        self.transform = transform
        if recordings is None and not exclude_recordings:
            self.shard_ids, self.keys = self.store.list_keys(self.formats)
        else:
            self.shard_ids, self.keys = self.store.list_keys(
                self.formats, groups=None if recordings is None else list(recordings),
                exclude_groups=list(exclude_recordings or ()))

    def __len__(self) -> int:
        return len(self.keys)

    def recording_ids(self) -> set[str]:
        """The recordings (key groups) this dataset's samples come from."""
        return {bytes(key).split(b"/", 1)[0].decode() for key in self.keys}

    def sample_id(self, index: int) -> str:
        """The id of item ``index`` without decoding its images (keys are sample ids for built stores)."""
        return self.store.get(int(self.shard_ids[index]), bytes(self.keys[index])).sample_id

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < len(self.keys):
            raise IndexError(f"index {index} out of range for a dataset of {len(self.keys)} samples")
        key = bytes(self.keys[index])
        sample = self.store.get(int(self.shard_ids[index]), key)
        where = f"{self.store.path}:{key.decode(errors='replace')}"
        item = {"sample_id": sample.sample_id, "format": sample.format,
                "images": [decode_jpeg(image, f"{where} image {n}") for n, image in enumerate(sample.images)],
                "conversations": sample.conversations, "meta": sample.meta}
        return self.transform(item) if self.transform is not None else item


def collate_samples(batch: list[Any]) -> list[Any]:
    """Keep the batch a list: samples have different image counts and shapes."""
    return list(batch)
