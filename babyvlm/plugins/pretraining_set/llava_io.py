"""LLaVA conversation JSON + JPEG folder <-> sample store.

Export writes ``OUT/data.json`` (a list of ``{"id", "image": [paths], "conversations", "format",
"meta"}``; each ``<image>`` consumes the next path) and ``OUT/images/NNNNN/*.jpg`` (the stored JPEG
bytes, unchanged); the JSON appears only complete (streamed to a unique temp file that is removed if
the export fails). Import reads such a JSON: image paths are relative to the JSON's folder, and a
path that is absolute or leaves that folder is refused, naming the record and the path. Every record
is checked — every image fully decoded — before the store is created or opened, so bad input leaves
nothing behind; imports resume like builds (groups of records).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from babyvlm.core.errors import DataError
from babyvlm.core.io import load_json, path_inside
from babyvlm.core.records import IMAGE_TOKEN, SAMPLE_FORMATS, Sample, SkipReport
from babyvlm.media import encode_jpeg
from babyvlm.plugins.pretraining_set.stores import open_store, write_build_config

EXPORT_JSON = "data.json"
IMAGES_DIR = "images"
JPEG_MAGIC = b"\xff\xd8\xff"
IMPORT_GROUP_SIZE = 1000

Log = Callable[[str], None]


def export_llava(store_path: str | os.PathLike, out: str | os.PathLike, log: Log = print) -> Path:
    """Write the store as LLaVA JSON + JPEG files; the JSON appears (atomically) only when complete."""
    store, out = open_store(store_path), Path(out)
    target = out / EXPORT_JSON
    count = 0
    with _streamed_file(target) as handle:
        handle.write("[")
        for count, (_, sample) in enumerate(store.iter_samples(), start=1):
            paths = _write_images(out, count - 1, sample.images)
            record = {"id": sample.sample_id, "image": paths, "conversations": sample.conversations,
                      "format": sample.format, "meta": sample.meta}
            handle.write(("\n" if count == 1 else ",\n") + json.dumps(record, ensure_ascii=False))
        handle.write("\n]\n")
    log(f"exported {count} samples to {target}")
    return target


@contextlib.contextmanager
def _streamed_file(target: Path) -> Iterator[io.TextIOBase]:
    """Like ``core.io.atomic_write_text``, for output too large to hold in memory: written to a unique
    temp file in the target's folder, renamed over the target when complete, removed on any failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            yield stream
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _write_images(out: Path, ordinal: int, images: list[bytes]) -> list[str]:
    folder = Path(IMAGES_DIR) / f"{ordinal // 1000:05d}"
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


def read_llava_json(json_path: str | os.PathLike, report: SkipReport) -> list[_Record]:
    """Parse and check every record; DataError names the file, the record and what is wrong."""
    json_path = Path(json_path)
    data = load_json(json_path)
    if not isinstance(data, list):
        raise DataError(f"{json_path}: expected a JSON list of records, got {type(data).__name__}")
    root = json_path.resolve().parent
    records, owners = [], {}
    for position, raw in enumerate(data):
        record = _check_record(raw, position, json_path, root, report)
        if record is None:
            continue
        if record.sample_id in owners:
            raise DataError(f"{json_path}: id {record.sample_id!r} is used by records #{owners[record.sample_id]} "
                            f"and #{position}")
        owners[record.sample_id] = position
        records.append(record)
    return records


def _check_record(raw: Any, position: int, json_path: Path, root: Path, report: SkipReport) -> _Record | None:
    where = f"{json_path} record #{position}"
    if not isinstance(raw, dict) or "id" not in raw or not isinstance(raw["id"], (str, int)):
        raise DataError(f"{where}: expected an object with an 'id'")
    sample_id = str(raw["id"])
    where = f"{json_path} record {sample_id!r} (#{position})"
    turns = raw.get("conversations")
    if not isinstance(turns, list) or not turns or not all(
        isinstance(t, dict) and isinstance(t.get("from"), str) and isinstance(t.get("value"), str) for t in turns
    ):
        raise DataError(f"{where}: 'conversations' must be a non-empty list of {{'from', 'value'}} strings")
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
    meta = raw.get("meta") if isinstance(raw.get("meta"), dict) else {}
    return _Record(position, sample_id, fmt, images, conversations, meta)


def _image_file(root: Path, name: str, where: str) -> Path:
    """The image file, refusing absolute paths and paths (or links) that lead out of ``root``."""
    resolved = path_inside(root, name, f"{where}: image")
    if not resolved.is_file():
        raise DataError(f"{where}: image {name!r} not found under {root}")
    return resolved


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
                 commit_every: int = 256, log: Log = print) -> dict[str, Any]:
    """Build a store from LLaVA JSON; returns its manifest."""
    json_path = Path(json_path)
    report = SkipReport()
    records = read_llava_json(json_path, report)
    fingerprint = "sha256:" + hashlib.sha256(json_path.read_bytes()).hexdigest()
    settings = {"importer": "llava", "json_sha256": fingerprint, "store": store}
    target = open_store(out, store) if Path(out).is_dir() else _new_store(out, store)
    writer = target.writer(settings=settings, commit_every=commit_every)
    write_build_config(out, {**settings, "json": str(json_path), "commit_every": commit_every})
    groups = [records[i:i + IMPORT_GROUP_SIZE] for i in range(0, len(records), IMPORT_GROUP_SIZE)]
    group_ids = {f"llava-{n:06d}" for n in range(len(groups))}
    try:
        done = writer.done_groups()
        for number, chunk in enumerate(groups):
            group = f"llava-{number:06d}"
            if group not in done:
                _import_group(writer, group, chunk, json_path)
        source = {"name": "llava-json", "root": str(json_path), "options": {}, "recordings_total": len(groups),
                  "recordings_digest": fingerprint, "report": report.to_dict()}
        manifest = writer.finalize(build={**settings, "shard": "0/1"}, source=source, expected_groups=group_ids)
    finally:
        writer.close()
    log(f"imported {manifest['counts']['total']} samples from {json_path} ({report.summary()})")
    return manifest


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
