"""Opening sample stores by path (the store type comes from the manifest) and build-config files."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import babyvlm
from babyvlm.core.errors import DataError
from babyvlm.core.io import atomic_write_text, load_json

MANIFEST_NAME = "manifest.json"
BUILD_CONFIG_NAME = "build_config.json"
DEFAULT_STORE = "lmdb"


def store_type(path: str | os.PathLike) -> str:
    """The registered store name recorded in the manifest (or the build config of an unfinished build)."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such store folder")
    for name in (MANIFEST_NAME, BUILD_CONFIG_NAME):
        candidate = folder / name
        if candidate.is_file():
            data = load_json(candidate)
            if isinstance(data, dict) and isinstance(data.get("store"), str):
                return data["store"]
    return DEFAULT_STORE


def open_store(path: str | os.PathLike, store: str | None = None) -> Any:
    return babyvlm.build("store", store or store_type(path), path=str(path))


def write_build_config(out: str | os.PathLike, config: Mapping[str, Any]) -> Path:
    """The resolved build options, next to the store (atomic write; values JSON cannot hold become text)."""
    text = json.dumps(dict(config), indent=1, sort_keys=True, default=str)
    return atomic_write_text(Path(out) / BUILD_CONFIG_NAME, text)
