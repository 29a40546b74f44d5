"""Opening sample stores by path (the store type comes from the manifest) and build-config files."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import babyvlm
from babyvlm.core.errors import DataError
from babyvlm.core.records import SkipReport

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
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise DataError(f"{candidate}: unreadable ({exc})") from exc
            if isinstance(data, dict) and isinstance(data.get("store"), str):
                return data["store"]
    return DEFAULT_STORE


def open_store(path: str | os.PathLike, store: str | None = None) -> Any:
    return babyvlm.build("store", store or store_type(path), path=str(path))


def write_build_config(out: str | os.PathLike, config: Mapping[str, Any]) -> Path:
    """The resolved build options, next to the store (atomic write)."""
    target = Path(out) / BUILD_CONFIG_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(dict(config), indent=1, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, target)
    return target


def skip_report_from_dict(data: Mapping[str, Any] | None) -> SkipReport:
    report = SkipReport()
    if data:
        report.counts.update(data.get("counts", {}))
        report.examples = {k: list(v) for k, v in data.get("examples", {}).items()}
    return report
