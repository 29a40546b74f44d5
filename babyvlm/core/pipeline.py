"""Stage caching for a whole run: each stage's outputs are keyed by a hash of its config and of the
keys of the stages it depends on, so rerunning with nothing changed skips every stage, and changing one
stage reruns it and everything downstream of it, nothing else.

A finished stage is recorded as ``WORK/stages/<name>.json`` (written atomically after the stage's own
outputs are complete): ``{"key", "config", "inputs", "outputs", "seconds", "finished"}``. A stage whose
record is missing, whose key differs, or one of whose recorded output paths has gone, runs again; an
interrupted stage has no record, so it reruns (stages resume their own partial work where they can,
e.g. store builds and training checkpoints).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babyvlm.core.io import atomic_write_json, load_json

STAGES_DIR = "stages"


def fingerprint(value: Any) -> str:
    """A stable SHA-256 of JSON-able data (keys sorted; non-JSON values by their ``repr``)."""
    text = json.dumps(value, sort_keys=True, default=repr, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Stage:
    """One step of a run: ``run()`` does the work and returns its outputs, JSON-able; the files and
    folders it made are listed under ``outputs["paths"]`` (a cached stage whose paths are gone reruns)."""

    name: str
    config: Any
    run: Callable[[], Mapping[str, Any]]
    depends_on: Sequence[str] = ()


def with_dependents(stages: Sequence[Stage], names: Iterable[str]) -> set[str]:
    """``names`` plus every stage that depends on one of them, directly or through others (``stages`` in the
    order they run, each after what it depends on)."""
    chosen = set(names)
    for stage in stages:
        if chosen & set(stage.depends_on):
            chosen.add(stage.name)
    return chosen


class StageCache:
    """Runs stages in order, skipping those whose recorded key matches (see the module docstring)."""

    def __init__(self, work_dir: str | os.PathLike, log: Callable[[str], None] = print):
        self.folder = Path(work_dir) / STAGES_DIR
        self.log = log
        self.keys: dict[str, str] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.ran: list[str] = []
        self.skipped: list[str] = []

    def key(self, stage: Stage) -> str:
        upstream = {name: self.keys[name] for name in stage.depends_on}
        return fingerprint({"stage": stage.name, "config": stage.config, "inputs": upstream})

    def cached(self, stage: Stage, key: str) -> dict[str, Any] | None:
        path = self.folder / f"{stage.name}.json"
        if not path.is_file():
            return None
        record = load_json(path)
        if not isinstance(record, dict) or record.get("key") != key:
            return None
        outputs = record.get("outputs") or {}
        if not all(Path(p).exists() for p in outputs.get("paths", [])):
            return None
        return outputs

    def forget(self, names: Iterable[str]) -> None:
        """Mark these stages' records stale, so the next run reruns them even if this one stops early (a
        forced stage keeps its key: otherwise an interrupted forced run would leave its dependents' old
        records looking current). The rest of a record (its seconds: "took N s last time") stays."""
        for name in names:
            path = self.folder / f"{name}.json"
            record = load_json(path) if path.is_file() else None
            if isinstance(record, dict) and record.get("key") is not None:
                atomic_write_json(path, {**record, "key": None})

    def run(self, stage: Stage, force: bool = False) -> dict[str, Any]:
        missing = [name for name in stage.depends_on if name not in self.keys]
        if missing:
            raise RuntimeError(f"stage {stage.name!r} depends on {missing}, which have not run yet")
        key = self.key(stage)
        self.keys[stage.name] = key
        outputs = None if force else self.cached(stage, key)
        if outputs is not None:
            self.skipped.append(stage.name)
            self.log(f"[cached] {stage.name}")
            self.outputs[stage.name] = outputs
            return outputs
        started = time.perf_counter()
        outputs = dict(stage.run() or {})
        seconds = round(time.perf_counter() - started, 2)
        atomic_write_json(self.folder / f"{stage.name}.json", {
            "key": key, "config": stage.config, "inputs": {n: self.keys[n] for n in stage.depends_on},
            "outputs": outputs, "seconds": seconds, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        self.ran.append(stage.name)
        self.outputs[stage.name] = outputs
        return outputs
