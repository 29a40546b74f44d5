"""Opening sample stores by path, and the builder's own ``build_config.json`` next to each store.

The pretraining set knows a store only through its public API: the store type of a folder is read
from ``build_config.json``, which ``data build``, ``data import`` and ``data merge`` write (the
pretraining set's file, not the store's), never from the store's own files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import babyvlm
from babyvlm.core.errors import DataError
from babyvlm.core.io import atomic_write_text, load_json

BUILD_CONFIG_NAME = "build_config.json"
DEFAULT_STORE = "lmdb"


def store_type(path: str | os.PathLike) -> str:
    """The registered store name recorded in the folder's build config (the default store without one)."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such store folder")
    candidate = folder / BUILD_CONFIG_NAME
    if candidate.is_file():
        data = load_json(candidate)
        if isinstance(data, dict) and isinstance(data.get("store"), str):
            return data["store"]
    return DEFAULT_STORE


def open_store(path: str | os.PathLike, store: str | None = None, **options: Any) -> Any:
    """The store at ``path`` (its type read from the folder unless given); ``options`` go to the store."""
    return babyvlm.build("store", store or store_type(path), path=str(path), **options)


def write_build_config(out: str | os.PathLike, config: Mapping[str, Any]) -> Path:
    """The resolved build options, next to the store (atomic write; values JSON cannot hold become text)."""
    text = json.dumps(dict(config), indent=1, sort_keys=True, default=str)
    return atomic_write_text(Path(out) / BUILD_CONFIG_NAME, text)
