"""LLaVA conversation JSON + JPEG folder <-> sample store.

Export writes ``OUT/data.json`` (a list of ``{"id", "image", "conversations", "format", "meta"}``; a
single image is a path string, LLaVA-1.5's form, several are a list — ``image_lists`` writes a list
always; each ``<image>`` consumes the next path), ``OUT/images/NNNNN/*.jpg`` (the stored JPEG bytes,
unchanged) and the marker ``OUT/export.json``. The whole folder is written aside and swapped in when
complete (``core.io.replaced_folder``): a failed export (a full disk, a damaged store) leaves nothing,
and exporting over an older export replaces it whole; a folder that is not an export is refused. One
exporter per folder (a ``WriterLock`` beside it).

Import reads such a JSON: image paths are relative to the JSON's folder, and a path that is absolute or
leaves that folder is refused, naming the record and the path. Every record is checked — every image
fully decoded, every conversation alternating human/gpt with ``<image>`` only in human turns — before
the store is created or opened, so bad input leaves nothing behind; records with a conversation that
is not usable (empty, unknown roles, gpt first, turns not alternating, no final gpt answer, a NUL
byte, ``<image>`` in a gpt turn) are counted by reason (``strict`` refuses the file instead). Records are
grouped by recording, so held-out-recording splits survive an export/import round trip: by
``meta.recording_id`` where a record has one (babyvlm's own export writes it), else when its images all
carry one SAYCam-style frame name (``{stem}_{start_ms}_{end_ms}_frame_{k}.jpg``: the recording, with its
child, date and age added to ``meta``); the rest in chunks of 1000. Imports resume like builds (by group).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from PIL import Image

from babyvlm.core.constants import IMAGE_TOKEN
from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import (
    WriterLock,
    atomic_write_json,
    disk_errors,
    load_json,
    path_inside,
    regular_file,
    replaced_folder,
)
from babyvlm.core.records import SAMPLE_FORMATS, Sample, SkipReport
from babyvlm.media import encode_jpeg
from babyvlm.plugins.pretraining_set.stores import open_store, write_build_config
from babyvlm.plugins.saycam.names import parse_frame_name, parse_video_stem

EXPORT_JSON = "data.json"
EXPORT_MARKER = "export.json"
EXPORT_SCHEMA = "babyvlm.llava_export"
IMAGES_DIR = "images"
JPEG_MAGIC = b"\xff\xd8\xff"
IMPORT_GROUP_SIZE = 1000
LOOSE_GROUP_PREFIX = "llava-"  # groups of records that name no recording
ROLES = ("human", "gpt")

Log = Callable[[str], None]


def export_llava(store_path: str | os.PathLike, out: str | os.PathLike, log: Log = print,
                 image_lists: bool = False) -> Path:
    """Write the store as LLaVA JSON + JPEG files into ``out``, swapped in whole when complete."""
    if not isinstance(image_lists, bool):
        raise ConfigError(f"export: image_lists must be true or false, got {image_lists!r}")
    store, out = open_store(store_path), Path(out)
    count = 0
    with WriterLock(out, "exporting into it", beside=True) as lock:
        if lock.stale_note():
            log(lock.stale_note())
        then = "no partial export was left; an older export there is unchanged"
        with disk_errors(out, then=then), replaced_folder(out, marker=EXPORT_MARKER, what="LLaVA export") as stage:
            with open(stage / EXPORT_JSON, "w", encoding="utf-8") as handle:
                handle.write("[")
                for count, (_, sample) in enumerate(store.iter_samples(), start=1):
                    paths = _write_images(stage, count - 1, sample.images)
                    image: str | list[str] = paths[0] if len(paths) == 1 and not image_lists else paths
                    record = {"id": sample.sample_id, "image": image, "conversations": sample.conversations,
                              "format": sample.format, "meta": sample.meta}
                    handle.write(("\n" if count == 1 else ",\n") + json.dumps(record, ensure_ascii=False))
                handle.write("\n]\n")
            atomic_write_json(stage / EXPORT_MARKER, {"schema": EXPORT_SCHEMA, "version": 1, "store": str(store_path),
                                                      "samples": count, "image_lists": image_lists})
    target = out / EXPORT_JSON
    log(f"exported {count} samples to {target}")
    return target


def _write_images(out: Path, ordinal: int, images: list[bytes]) -> list[str]:
    folder = Path(IMAGES_DIR) / f"{ordinal // IMPORT_GROUP_SIZE:05d}"
    (out / folder).mkdir(parents=True, exist_ok=True)
    paths = []
    for number, data in enumerate(images):
        relative = folder / f"{ordinal:08d}_{number:02d}.jpg"
        (out / relative).write_bytes(data)
        paths.append(relative.as_posix())
    return paths


@dataclass
class _Record:
    position: int
    sample_id: str
    format: str
    images: list[Path]
    conversations: list[dict[str, str]]
    meta: dict[str, Any]
    group: str | None = None  # the SAYCam recording its frame names name, if any


def read_llava_json(json_path: str | os.PathLike, report: SkipReport, strict: bool = False,
                    task: str | None = None) -> list[_Record]:
    """Parse and check every record; DataError names the file, the record and what is wrong.
    Records with unusable conversations are counted in ``report`` (raised with ``strict``). With ``task``,
    only the records whose ``task`` field says so are read (one task of a mixed DevCV instruction file)."""
    json_path = Path(json_path)
    data = load_json(json_path)
    if not isinstance(data, list):
        raise DataError(f"{json_path}: expected a JSON list of records, got {type(data).__name__}")
    if not data:
        raise DataError(f"{json_path}: the list of records is empty; nothing to import")
    root = json_path.resolve().parent
    records, owners = [], {}
    for position, raw in enumerate(data):
        if task is not None and not (isinstance(raw, dict) and raw.get("task") == task):
            continue
        record = _check_record(raw, position, json_path, root, report, strict)
        if record is None:
            continue
        if record.sample_id in owners:
            raise DataError(f"{json_path}: id {record.sample_id!r} is used by records #{owners[record.sample_id]} "
                            f"and #{position}")
        owners[record.sample_id] = position
        records.append(record)
    if not records:
        which = f" of task {task!r}" if task is not None else ""
        raise DataError(f"{json_path}: no usable record{which} ({report.summary()}); nothing to import")
    return records


def _check_record(raw: Any, position: int, json_path: Path, root: Path, report: SkipReport,
                  strict: bool) -> _Record | None:
    where = f"{json_path} record #{position}"
    if not isinstance(raw, dict) or "id" not in raw or not isinstance(raw["id"], (str, int)):
        raise DataError(f"{where}: expected an object with an 'id'")
    sample_id = str(raw["id"])
    where = f"{json_path} record {sample_id!r} (#{position})"
    turns = raw.get("conversations")
    if not isinstance(turns, list) or not all(
        isinstance(t, dict) and isinstance(t.get("from"), str) and isinstance(t.get("value"), str) for t in turns
    ):
        raise DataError(f"{where}: 'conversations' must be a list of {{'from', 'value'}} strings")
    problem = conversation_problem(turns)
    if problem is not None:
        reason, detail = problem
        if strict:
            raise DataError(f"{where}: {detail} (strict: refused; without --strict it is counted as {reason})")
        report.skip(reason, f"{where} ({detail})")
        return None
    image_field = raw.get("image")
    if image_field is None:
        report.skip("text_only_record", where)
        return None
    names = [image_field] if isinstance(image_field, str) else image_field
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DataError(f"{where}: 'image' must be a path or a non-empty list of paths")
    images = [_image_file(root, name, where) for name in names]
    conversations = [{"from": t["from"], "value": t["value"]} for t in turns]
    tokens = sum(t["value"].count(IMAGE_TOKEN) for t in conversations)
    if tokens != len(images):
        raise DataError(f"{where}: {tokens} {IMAGE_TOKEN} tokens but {len(images)} image paths")
    for name, path in zip(names, images, strict=True):
        _check_decodes(path, f"{where}: image {name!r}")
    fmt = raw.get("format") if raw.get("format") in SAMPLE_FORMATS else _infer_format(conversations, len(images))
    meta = dict(raw.get("meta")) if isinstance(raw.get("meta"), dict) else {}
    group = _recording_of_meta(meta, where) or _recording_of_frames(names, meta)
    return _Record(position, sample_id, fmt, images, conversations, meta, group)


def _recording_of_meta(meta: dict[str, Any], where: str) -> str | None:
    """The record's own ``meta.recording_id`` (as babyvlm's export writes it), or None when it has none."""
    recording = meta.get("recording_id")
    if recording is None:
        return None
    if isinstance(recording, bool) or not isinstance(recording, (str, int)):
        raise DataError(f"{where}: meta.recording_id must be a string, got {type(recording).__name__}")
    recording = str(recording)
    if not recording.strip() or "/" in recording or recording.startswith(LOOSE_GROUP_PREFIX):
        raise DataError(f"{where}: meta.recording_id {recording!r} cannot name a recording (it must be non-empty, "
                        f"without '/', and not start with {LOOSE_GROUP_PREFIX!r})")
    meta["recording_id"] = recording
    return recording


def conversation_problem(turns: list[dict[str, str]]) -> tuple[str, str] | None:
    """``(skip reason, detail)`` for a conversation a LLaVA template cannot train on, else None: turns
    must alternate human, gpt, human, gpt ..., start with human, end with gpt, and ``<image>`` only
    appears in human turns."""
    if not turns:
        return "empty_conversation", "no turns"
    unknown = sorted({t["from"] for t in turns} - set(ROLES))
    if unknown:
        return "unknown_role", f"role(s) {', '.join(map(repr, unknown))}; expected 'human' and 'gpt'"
    if turns[0]["from"] != "human":
        return "gpt_turn_first", "the first turn is gpt; conversations start with a human turn"
    for number, (before, after) in enumerate(zip(turns, turns[1:], strict=False), start=1):
        if before["from"] == after["from"]:
            return "turns_not_alternating", f"turns {number - 1} and {number} are both {after['from']!r}"
    if turns[-1]["from"] != "gpt":
        return "no_final_answer", "the last turn is human; conversations end with a gpt answer"
    for number, turn in enumerate(turns):
        if "\x00" in turn["value"]:
            return "nul_byte", f"turn {number} contains a NUL byte"
    for number, turn in enumerate(turns):
        if turn["from"] == "gpt" and IMAGE_TOKEN in turn["value"]:
            return "image_token_in_gpt_turn", f"turn {number} (gpt) contains {IMAGE_TOKEN}"
    return None


def _recording_of_frames(names: list[str], meta: dict[str, Any]) -> str | None:
    """The SAYCam recording all images' frame names belong to (adding its child/date/age and clip to
    ``meta`` where missing), or None when they are not frame names of one recording."""
    try:
        frames = [parse_frame_name(PureWindowsPath(PurePosixPath(name).name).name) for name in names]
        video = parse_video_stem(frames[0].stem)
    except ValueError:
        return None
    if any(frame.stem != video.stem for frame in frames):
        return None
    starts, ends = [f.start_ms for f in frames], [f.end_ms for f in frames]
    recovered = {"recording_id": video.stem, "source": "saycam", "child": video.child, "date": video.date,
                 "age_months": video.age_months, "clip": [min(starts) / 1000.0, max(ends) / 1000.0]}
    for key, value in recovered.items():
        meta.setdefault(key, value)
    return video.stem


def _image_file(root: Path, name: str, where: str) -> Path:
    """The image file, refusing absolute paths and paths (or links) that lead out of ``root``."""
    resolved = path_inside(root, name, f"{where}: image")
    if not resolved.exists():
        raise DataError(f"{where}: image {name!r} not found under {root}")
    return regular_file(resolved, f"{where}: image {name!r}")  # a FIFO would block the import forever


def _check_decodes(path: Path, where: str) -> None:
    """Decode the whole image (a header check passes truncated or fake files)."""
    try:
        with Image.open(path) as image:
            image.load()
    except Exception as exc:  # Pillow raises several types for unreadable files
        raise DataError(f"{where} ({path}) does not decode as an image ({type(exc).__name__}: {exc})") from exc


def _infer_format(conversations: list[dict[str, str]], image_count: int) -> str:
    human_turns_with_images = sum(1 for t in conversations if IMAGE_TOKEN in t["value"])
    if human_turns_with_images > 1:
        return "interleaved"
    return "image" if image_count == 1 else "video"


def _jpeg_bytes(path: Path, where: str) -> bytes:
    data = path.read_bytes()
    if data.startswith(JPEG_MAGIC):
        return data
    try:  # other formats are stored as JPEG, like everything else in a store
        with Image.open(io.BytesIO(data)) as image:
            return encode_jpeg(image.convert("RGB"), quality=95)
    except Exception as exc:  # Pillow raises several types for unreadable files
        raise DataError(f"{where}: cannot read image {path} ({type(exc).__name__}: {exc})") from exc


def import_llava(json_path: str | os.PathLike, out: str | os.PathLike, *, store: str = "lmdb",
                 commit_every: int = 256, strict: bool = False, task: str | None = None,
                 log: Log = print) -> dict[str, Any]:
    """Build a store from LLaVA JSON (with ``task``: only that task's records); returns its manifest."""
    json_path = Path(json_path)
    report = SkipReport()
    records = read_llava_json(json_path, report, strict=strict, task=task)
    fingerprint = "sha256:" + hashlib.sha256(json_path.read_bytes()).hexdigest()
    settings = {"importer": "llava", "json_sha256": fingerprint, "store": store}
    if task is not None:
        settings["task"] = task
    target = open_store(out, store) if Path(out).is_dir() else _new_store(out, store)
    writer = target.writer(settings=settings, commit_every=commit_every)
    for note in getattr(writer, "notes", ()):
        log(note)
    try:
        with disk_errors(out):
            write_build_config(out, {**settings, "json": str(json_path), "commit_every": commit_every})
        groups = _groups(records)
        done = writer.done_groups()
        for group, chunk in groups.items():
            if group not in done:
                _import_group(writer, group, chunk, json_path)
        source = {"name": "llava-json", "root": str(json_path), "options": {}, "recordings_total": len(groups),
                  "recordings_digest": fingerprint, "report": report.to_dict()}
        manifest = writer.finalize(build={**settings, "shard": "0/1"}, source=source, expected_groups=set(groups))
    finally:
        writer.close()
    recovered = sum(1 for group in groups if not group.startswith(LOOSE_GROUP_PREFIX))
    note = f"; {recovered} recording(s) recovered from meta.recording_id or frame names" if recovered else ""
    which = f" (task {task})" if task is not None else ""
    log(f"imported {manifest['counts']['total']} samples from {json_path}{which}{note} ({report.summary()})")
    return manifest


def _groups(records: list[_Record]) -> dict[str, list[_Record]]:
    """Records by recording (``meta.recording_id`` or frame names), in order of first appearance; the
    rest in chunks."""
    groups: dict[str, list[_Record]] = {}
    loose = [r for r in records if r.group is None]
    for record in records:
        if record.group is not None:
            groups.setdefault(record.group, []).append(record)
    for number, start in enumerate(range(0, len(loose), IMPORT_GROUP_SIZE)):
        groups[f"{LOOSE_GROUP_PREFIX}{number:06d}"] = loose[start:start + IMPORT_GROUP_SIZE]
    return groups


def _new_store(out: str | os.PathLike, store: str) -> Any:
    Path(out).mkdir(parents=True, exist_ok=True)
    return open_store(out, store)


def _import_group(writer: Any, group: str, chunk: list[_Record], json_path: Path) -> None:
    writer.begin_group(group)
    for record in chunk:
        where = f"{json_path} record {record.sample_id!r}"
        images = [_jpeg_bytes(path, where) for path in record.images]
        sample = Sample(record.sample_id, record.format, images, record.conversations, record.meta)
        writer.add(record.format, f"{record.position:09d}", sample)
    writer.finish_group({})
