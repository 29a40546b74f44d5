"""``babyvlm tasks build``: a source's recordings -> split by session -> every task's item files.

Layout (one for what is built and what is released): ``OUT/<domain>/<short>_<split>.json`` +
``OUT/<domain>/images/`` (+ ``baby_winoground.csv``), with ``OUT/<domain>/manifest.json`` recording the
seed, source, split of every recording, the annotation records read and left out (by reason), and per
task its skip report and, per split, the item count, answer distribution, chance and file digest. Domain ``saycam`` (in-domain) gets train/val/test, ``ego4d`` (out-of-domain)
test only. Resumable per task: a task whose files exist and whose manifest entry matches the seed and
options is not rebuilt. One writer per folder (``WriterLock``).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babyvlm import registry
from babyvlm.core.errors import ConfigError
from babyvlm.core.io import WriterLock, atomic_write_text, load_json
from babyvlm.core.progress import progress as progress_bar
from babyvlm.core.records import Recording, SkipReport
from babyvlm.plugins.devcv.annotations import read_recording_annotations
from babyvlm.plugins.devcv.itemio import dumps

DOMAINS = {"saycam": ("train", "val", "test"), "ego4d": ("test",)}
SPLIT_FRACTIONS = {"val": 0.15, "test": 0.15}  # the rest is train
MANIFEST = "manifest.json"


@dataclass
class BuildRequest:
    source: str
    root: str
    out: str
    domain: str = "saycam"
    tasks: Sequence[str] = ()  # () = every registered task
    splits: Sequence[str] = ()  # () = the domain's splits
    seed: int = 0
    source_options: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)
    split_fractions: dict[str, float] = field(default_factory=dict)  # val/test shares of the sessions
    domain_splits: Sequence[str] = ()  # the domain's split scheme; () = DOMAINS' (test only for a new domain)

    def scheme(self) -> tuple[str, ...]:
        return tuple(self.domain_splits) or DOMAINS.get(self.domain, ("test",))


def session_of(recording: Recording) -> str:
    """The session a recording belongs to: a source's own ``meta["session"]``, else child and date (the
    segments of one SAYCam recording day share their scenes), else the recording itself."""
    if recording.meta.get("session"):
        return str(recording.meta["session"])
    if recording.child and recording.date:
        return f"{recording.child}_{recording.date}"
    return recording.recording_id


def assign_splits(recordings: Sequence[Recording], domain: str, seed: int,
                  fractions: Mapping[str, float] | None = None, scheme: Sequence[str] | None = None) -> dict[str, str]:
    """Recording id -> split: whole sessions only (every recording of a session on one side), seeded;
    ``fractions`` of the sessions go to val and test (default ``SPLIT_FRACTIONS``); a test-only ``scheme``
    (out-of-domain; default ``DOMAINS[domain]``) puts everything in test."""
    splits = tuple(scheme or DOMAINS[domain])
    annotated = sorted((r for r in recordings if r.annotations_path is not None), key=lambda r: r.recording_id)
    sessions: dict[str, list[str]] = {}
    for recording in annotated:
        sessions.setdefault(session_of(recording), []).append(recording.recording_id)
    if len(sessions) < len(splits):
        raise ConfigError(f"domain {domain!r} needs at least {len(splits)} sessions with object annotations "
                          f"(one per split {list(splits)}), found {len(sessions)}")
    if splits == ("test",):
        return {rid: "test" for ids in sessions.values() for rid in ids}
    shares = dict(SPLIT_FRACTIONS, **(fractions or {}))
    if set(shares) != set(SPLIT_FRACTIONS) or not all(0 < v < 1 for v in shares.values()) or sum(shares.values()) >= 1:
        raise ConfigError(f"split fractions: val and test, each between 0 and 1, together under 1; got {shares}")
    order = sorted(sessions)
    random.Random(f"devcv-splits:{seed}").shuffle(order)
    counts = {name: max(1, round(len(order) * share)) for name, share in shares.items()}
    assignment, start = {}, 0
    for name in ("test", "val"):
        for session in order[start:start + counts[name]]:
            assignment.update(dict.fromkeys(sessions[session], name))
        start += counts[name]
    for session in order[start:]:
        assignment.update(dict.fromkeys(sessions[session], "train"))
    if "train" not in assignment.values():
        raise ConfigError(f"domain {domain!r}: {len(order)} annotated sessions leave none for train")
    return assignment


def build_tasks(request: BuildRequest, log: Callable[[str], None] = print) -> dict[str, Any]:
    import babyvlm

    scheme = request.scheme()
    if scheme not in DOMAINS.values():
        raise ConfigError(f"domain {request.domain!r}: split scheme must be one of {sorted(set(DOMAINS.values()))}, "
                          f"got {list(scheme)}")
    splits = list(request.splits) or list(scheme)
    unknown = set(splits) - set(scheme)
    if unknown:
        raise ConfigError(f"domain {request.domain!r} has splits {list(scheme)}, not {sorted(unknown)}")
    names = list(request.tasks) or registry.names("task")  # the registry is the only task list
    tasks = {name: babyvlm.build("task", dict(type=name, **request.task_options)) for name in names}
    folder = Path(request.out) / request.domain
    with WriterLock(folder, "building DevCV tasks"):
        manifest = _open_manifest(folder, request)
        recordings: list[Recording] | None = None
        with progress_bar(len(tasks), f"tasks build {request.domain}", unit="task") as bar:
            for name, task in tasks.items():
                recordings = _build_task(request, folder, manifest, name, task, splits, recordings, log)
                bar.update()
    return manifest


def _build_task(request: BuildRequest, folder: Path, manifest: dict[str, Any], name: str, task: Any,
                splits: Sequence[str], recordings: list[Recording] | None, log) -> list[Recording] | None:
    """One task's splits (skipped when built already or not for this domain); returns the recordings, read
    on the first task that needs them."""
    if request.domain not in task.domains and not request.tasks:
        log(f"{name}: not built for domain {request.domain} (its domains: {list(task.domains)}), left out")
        return recordings
    wanted = [s for s in splits if s in task.builds_splits]
    if _done(folder, manifest, name, task, wanted):
        log(f"{name}: done already ({', '.join(wanted)}), not rebuilt")
        return recordings
    if recordings is None:
        recordings = _recordings(request, log)
        manifest["split_of"] = assign_splits(recordings, request.domain, request.seed,
                                             request.split_fractions, request.scheme())
        manifest["annotations"] = annotation_counts(recordings, log)
    started = time.perf_counter()
    subset = {rid: split for rid, split in manifest["split_of"].items() if split in wanted}
    built = task.build(recordings, subset, seed=request.seed, log=lambda line: log(f"  {line}"))
    entry = manifest["tasks"].setdefault(name, {"splits": {}})
    entry.update(options=task.options(), report=task.report.to_dict())
    for split in wanted:
        items = built.get(split, [])
        path = task.save(folder, split, items)
        entry["splits"][split] = {"items": len(items), "file": path.name, "sha256": _digest(path),
                                  "answers": task.answer_distribution(items),
                                  "chance": task.chance(items)}
    _write_manifest(folder, manifest)
    log(f"{name}: {', '.join(f'{s} {len(built.get(s, []))}' for s in wanted)} items "
        f"in {time.perf_counter() - started:.1f} s; {_skipped(task.report)}")
    return recordings


def _recordings(request: BuildRequest, log) -> list[Recording]:
    import babyvlm

    source = babyvlm.build("source", dict(type=request.source, root=str(request.root), **request.source_options))
    recordings = list(source.recordings())
    annotated = sum(r.annotations_path is not None for r in recordings)
    log(f"source {request.source}: {len(recordings)} recordings, {annotated} with object annotations; "
        f"the source {source.report.summary()}")
    return recordings


def annotation_counts(recordings: Sequence[Recording], log: Callable[[str], None]) -> dict[str, Any]:
    """Every annotation file read once: frames and boxes kept, and each record left out, by reason
    (the tasks read the same files; this is the build's count, each record once)."""
    report, frames, boxes = SkipReport(), 0, 0
    files = [recording for recording in recordings if recording.annotations_path is not None]
    for recording in files:
        read = read_recording_annotations(recording, report)
        frames += len(read)
        boxes += sum(len(frame.boxes) for frame in read)
    log(f"annotations: {len(files)} files, {frames} frames, {boxes} boxes kept; records {report.summary()}")
    return {"files": len(files), "frames": frames, "boxes": boxes, "skipped": report.to_dict()}


def _skipped(report: SkipReport) -> str:
    """``skipped: N (reason count, ...)``: a task's line stays short; the examples are in the manifest."""
    if not report.total:
        return "skipped: 0"
    return f"skipped: {report.total} ({', '.join(f'{r} {n}' for r, n in report.counts.most_common())})"


def _open_manifest(folder: Path, request: BuildRequest) -> dict[str, Any]:
    path = folder / MANIFEST
    identity = {"seed": request.seed, "source": request.source, "domain": request.domain,
                "source_options": request.source_options, "split_fractions": request.split_fractions}
    if not path.is_file():
        return {**identity, "root": str(request.root), "tasks": {}, "split_of": {}}
    manifest = load_json(path)
    recorded = {key: manifest.get(key) for key in identity}
    recorded["split_fractions"] = manifest.get("split_fractions") or {}
    if recorded != identity:
        raise ConfigError(f"{path}: built with {recorded}, not {identity}; build into a fresh --out")
    return manifest


def _done(folder: Path, manifest: dict, name: str, task: Any, splits: Sequence[str]) -> bool:
    entry = manifest["tasks"].get(name)
    if not entry or entry.get("options") != task.options():
        return False
    for split in splits:
        record = entry["splits"].get(split)
        path = task.item_path(folder, split)
        if record is None or not path.is_file() or _digest(path) != record["sha256"]:
            return False
    return True


def _write_manifest(folder: Path, manifest: dict) -> None:
    atomic_write_text(folder / MANIFEST, dumps(manifest))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
