"""The store manifest: one JSON file describing every shard, written atomically when a build ends.

It records the schema version, per-shard record counts and checksums, counts by format / child /
age month, hours of video, the source's provenance, the build settings and every skip by reason.
``merge_manifests`` joins shard manifests and refuses overlapping or inconsistent ones.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from babyvlm.core.errors import DataError
from babyvlm.core.io import atomic_write_text, load_json
from babyvlm.core.records import SkipReport

SCHEMA = "babyvlm.store"
SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
BUILD_CONFIG_NAME = "build_config.json"
SHARDS_DIR = "shards"
UNKNOWN = "unknown"


def shard_name(index: int, count: int) -> str:
    return f"{index:05d}-of-{count:05d}"


def write_manifest(store_dir: Path, manifest: dict[str, Any]) -> Path:
    """``STORE/manifest.json``, written atomically (readers see the old manifest, or the new one)."""
    return atomic_write_text(Path(store_dir) / MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True))


def read_manifest(store_dir: Path) -> dict[str, Any]:
    """Load and sanity-check ``STORE/manifest.json``; DataError names the file and the problem."""
    path = Path(store_dir) / MANIFEST_NAME
    if not path.is_file():
        hint = " (the build has not finished: rerun it with the same arguments)" if (Path(store_dir) / SHARDS_DIR).is_dir() else ""
        raise DataError(f"{path}: no manifest{hint}")
    manifest = load_json(path)
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise DataError(f"{path}: not a babyvlm store manifest (schema {SCHEMA!r} expected)")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise DataError(f"{path}: schema version {manifest.get('schema_version')!r}; this babyvlm reads {SCHEMA_VERSION}")
    for shard in manifest.get("shards", []):
        _check_shard_entry(path, shard)
    return manifest


def _check_shard_entry(path: Path, shard: Any) -> None:
    needed = ("name", "path", "index", "count", "records", "groups", "checksum", "tally")
    if not isinstance(shard, dict) or any(k not in shard for k in needed):
        raise DataError(f"{path}: shard entry {shard!r:.80} lacks one of {needed}")
    rel = Path(shard["path"])
    if rel.is_absolute() or ".." in rel.parts:
        raise DataError(f"{path}: shard path {shard['path']!r} leaves the store folder")


@dataclass
class Tally:
    """Counts by format, child and age month, plus seconds of source video and of video clips."""

    by_format: Counter = field(default_factory=Counter)
    by_child: Counter = field(default_factory=Counter)
    by_age_month: Counter = field(default_factory=Counter)
    video_seconds: float = 0.0
    video_clip_seconds: float = 0.0

    def add_sample(self, fmt: str, meta: Mapping[str, Any]) -> None:
        self.by_format[fmt] += 1
        self.by_child[str(meta.get("child") or UNKNOWN)] += 1
        self.by_age_month[age_month_label(meta.get("age_months"))] += 1
        clip = meta.get("clip")
        if fmt == "video" and isinstance(clip, (list, tuple)) and len(clip) == 2:
            self.video_clip_seconds += float(clip[1]) - float(clip[0])

    def merge(self, other: Tally) -> None:
        self.by_format.update(other.by_format)
        self.by_child.update(other.by_child)
        self.by_age_month.update(other.by_age_month)
        self.video_seconds += other.video_seconds
        self.video_clip_seconds += other.video_clip_seconds

    @property
    def total(self) -> int:
        return sum(self.by_format.values())

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "by_format": dict(sorted(self.by_format.items())),
                "by_child": dict(sorted(self.by_child.items())),
                "by_age_month": dict(sorted(self.by_age_month.items(), key=lambda kv: _month_order(kv[0]))),
                "video_seconds": round(self.video_seconds, 3),
                "video_clip_seconds": round(self.video_clip_seconds, 3)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tally:
        return cls(Counter(data.get("by_format", {})), Counter(data.get("by_child", {})),
                   Counter(data.get("by_age_month", {})), float(data.get("video_seconds", 0.0)),
                   float(data.get("video_clip_seconds", 0.0)))

    def counts_only(self) -> dict[str, Any]:
        """The integer counts (seconds compare with rounding noise, so they are left out)."""
        full = self.to_dict()
        return {k: full[k] for k in ("total", "by_format", "by_child", "by_age_month")}


def age_month_label(age_months: Any) -> str:
    if isinstance(age_months, (int, float)) and math.isfinite(age_months) and age_months >= 0:
        return str(int(age_months))
    return UNKNOWN


def _month_order(label: str) -> tuple[int, int]:
    return (0, int(label)) if label.isdigit() else (1, 0)


def merged_skips(reports: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    total = SkipReport()
    for data in reports:
        total.merge(SkipReport.from_dict(data))
    return total.to_dict()


def assemble(shards: list[dict[str, Any]], *, store: str, build: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """A complete manifest from shard entries (each carrying its own tally and skips)."""
    tally = Tally()
    for shard in shards:
        tally.merge(Tally.from_dict(shard["tally"]))
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "store": store,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "complete": True,
        "shard_count": shards[0]["count"] if shards else 0,
        "shards": sorted(shards, key=lambda s: s["index"]),
        "counts": tally.counts_only(),
        "video_seconds": round(tally.video_seconds, 3),
        "video_clip_seconds": round(tally.video_clip_seconds, 3),
        "skips": merged_skips([s.get("skips") for s in shards] + [source.get("report")]),
        "source": source, "build": build,
    }


def merge_manifests(inputs: list[tuple[Path, dict[str, Any]]]) -> tuple[dict[str, Any], list[tuple[Path, dict]]]:
    """Check that shard manifests fit together; return the joined manifest and (input dir, shard) pairs.

    Refused: differing schema/store/build settings, different recording lists seen by the source,
    different shard counts, the same shard index twice, a recording present in two shards, or a
    missing shard.
    """
    if not inputs:
        raise DataError("merge: no input stores given")
    first_path, first = inputs[0]
    pairs: list[tuple[Path, dict]] = []
    owner_of_index: dict[int, Path] = {}
    owner_of_group: dict[str, Path] = {}
    for path, manifest in inputs:
        _check_same(first_path, first, path, manifest)
        for shard in manifest["shards"]:
            index = shard["index"]
            if index in owner_of_index:
                raise DataError(f"merge: shard {index}/{shard['count']} is in both {owner_of_index[index]} and {path}")
            owner_of_index[index] = path
            for group in list(shard["groups"]) + list(shard.get("failed_groups", [])):
                if group in owner_of_group:
                    raise DataError(f"merge: recording {group!r} is in both {owner_of_group[group]} and {path} "
                                    "(overlapping shards)")
                owner_of_group[group] = path
            pairs.append((path, shard))
    missing = sorted(set(range(first["shard_count"])) - set(owner_of_index))
    if missing:
        names = ", ".join(f"{i}/{first['shard_count']}" for i in missing)
        raise DataError(f"merge: shard(s) {names} missing; build them with --shard and pass every shard's store "
                        "(a merge of some shards would look complete but lack their recordings)")
    build = dict(first["build"])
    build["shard"] = sorted(f"{s['index']}/{s['count']}" for _, s in pairs)
    merged = assemble([dict(s) for _, s in pairs], store=first["store"], build=build, source=first["source"])
    return merged, pairs


def _check_same(first_path: Path, first: dict, path: Path, manifest: dict) -> None:
    if not manifest.get("complete"):
        raise DataError(f"merge: {path} is not a finished build")
    if manifest["store"] != first["store"]:
        raise DataError(f"merge: {path} is a {manifest['store']!r} store but {first_path} is {first['store']!r}")
    if manifest["shard_count"] != first["shard_count"]:
        raise DataError(f"merge: {path} was built as one of {manifest['shard_count']} shards, "
                        f"{first_path} as one of {first['shard_count']}")
    differing = sorted(k for k in set(first["build"]) | set(manifest["build"])
                       if k != "shard" and first["build"].get(k) != manifest["build"].get(k))
    if differing:
        raise DataError(f"merge: {path} and {first_path} were built with different settings: {', '.join(differing)}")
    for key in ("name", "recordings_total", "recordings_digest"):
        if first["source"].get(key) != manifest["source"].get(key):
            raise DataError(f"merge: {path} and {first_path} saw different sources ({key} differs: "
                            f"{manifest['source'].get(key)!r} vs {first['source'].get(key)!r}); "
                            "the corpus changed between shard builds")
