"""Item file I/O in the released DevCV layout: ``FOLDER/<short>_<split>.json`` + ``FOLDER/images/``.

Each item is LLaVA JSON: ``id``, ``image`` (a list of paths relative to the folder; a single string is
accepted), ``conversations`` (human/gpt turns, the gold answer in the last gpt turn) and task extras
(``bb``, ``notes``, ``labels``, ...) at the top level. What babyvlm builds is written the same way, with
content-addressed image names (``images/<short>_<sha256>.jpg``: identical pictures share one file), sorted
keys and atomic writes, so the same seed gives byte-identical folders. Reading refuses image paths that
leave the folder, naming the file and the item.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from babyvlm.core.constants import IMAGE_TOKEN
from babyvlm.core.errors import DataError
from babyvlm.core.io import atomic_write_text, load_json, path_inside
from babyvlm.core.records import TaskItem

CORE_KEYS = ("id", "image", "conversations", "choices")
WINOGROUND_FILE = "baby_winoground.csv"
WINOGROUND_COLUMNS = ("instance_id", "positive_phrase", "negative_phrase", "image", "image_tag")


def item_file(folder: str | os.PathLike, short: str, split: str) -> Path:
    return Path(folder) / f"{short}_{split}.json"


def image_name(short: str, data: bytes) -> str:
    return f"images/{short}_{hashlib.sha256(data).hexdigest()[:24]}.jpg"


def dumps(data: Any) -> str:
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def write_images(folder: Path, short: str, images: Sequence[bytes]) -> list[str]:
    """Each image renamed into place (readers never see a part); one ``os.sync`` for the batch instead of
    an fsync per file (thousands of small files: ~4 ms each), before the item file that names them."""
    names, written = _place_images(folder, short, images)
    if written:
        os.sync()
    return names


def _place_images(folder: Path, short: str, images: Sequence[bytes]) -> tuple[list[str], bool]:
    """``write_images`` without the sync: (the names, whether any file was written)."""
    names, written = [], False
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for data in images:
        name = image_name(short, data)
        target = folder / name
        if not target.is_file() or target.stat().st_size != len(data):
            _rename_into_place(target, data)
            written = True
        names.append(name)
    return names, written


def _rename_into_place(target: Path, data: bytes) -> None:
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_items(folder: str | os.PathLike, short: str, split: str, items: Sequence[TaskItem]) -> Path:
    """Images first (one ``os.sync`` for the whole file's images), then the item file (atomically): a file
    that exists is complete."""
    folder = Path(folder)
    records, any_written = [], False
    for item in items:
        record = dict(item.extras)
        names, written = _place_images(folder, short, item.images)
        any_written |= written
        record.update(id=item.item_id, image=names, conversations=item.conversations)
        if item.choices:
            record["choices"] = list(item.choices)
        records.append(record)
    if any_written:
        os.sync()
    return atomic_write_text(item_file(folder, short, split), dumps(records))


def read_items(folder: str | os.PathLike, short: str, split: str, task: str) -> list[TaskItem]:
    """A released (or built) item file as ``TaskItem``s; ``DataError`` names the file and item."""
    folder = Path(folder)
    path = item_file(folder, short, split)
    if not path.is_file():
        raise DataError(f"{path}: no {task} items for split {split!r} (expected {path.name} in {folder})")
    records = load_json(path)
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of items")
    return [_item(folder, path, number, record, task) for number, record in enumerate(records)]


def _item(folder: Path, path: Path, number: int, record: Any, task: str) -> TaskItem:
    if not isinstance(record, dict):
        raise DataError(f"{path}: item {number} is not a JSON object")
    item_id = str(record.get("id", number))
    where = f"{path}: item {item_id!r}"
    paths = record.get("image", [])
    paths = [paths] if isinstance(paths, str) else paths
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise DataError(f"{where}: 'image' must be a path or a list of paths")
    conversations = record.get("conversations")
    if not isinstance(conversations, list) or not conversations or not all(
            isinstance(turn, dict) and isinstance(turn.get("value"), str) for turn in conversations):
        raise DataError(f"{where}: 'conversations' must be a non-empty list of {{from, value}} turns")
    conversations = with_image_tokens([dict(turn) for turn in conversations], len(paths))
    gpt = [turn["value"] for turn in conversations if turn.get("from") == "gpt"]
    if not gpt:
        raise DataError(f"{where}: no gpt turn holding the answer")
    choices = record.get("choices", [])
    if "choices" in record and (not isinstance(choices, list) or not choices):
        # an empty list would silently score the item over the task's default answer space
        raise DataError(f"{where}: 'choices' must be a non-empty list of the answers the item may take (or left "
                        f"out for the task's default answer space), got {choices!r:.80}")
    extras = {key: value for key, value in record.items() if key not in CORE_KEYS}
    extras["image_paths"] = paths
    return TaskItem(item_id=item_id, task=task, images=[read_image(folder, p, where) for p in paths],
                    conversations=conversations, answer=gpt[-1].strip(),
                    choices=[str(c) for c in choices], extras=extras)


def with_image_tokens(conversations: list[dict[str, str]], visuals: int) -> list[dict[str, str]]:
    """As the leaderboard does: a prompt with no ``<image>`` gets one per visual, joined by spaces, then a
    newline, in front of the first human turn."""
    if visuals and not any(IMAGE_TOKEN in turn["value"] for turn in conversations):
        first = next((turn for turn in conversations if turn.get("from") == "human"), conversations[0])
        first["value"] = " ".join([IMAGE_TOKEN] * visuals) + "\n" + first["value"]
    return conversations


def read_image(folder: Path, relative: str, where: str) -> bytes:
    """An image path relative to the folder (or to its ``images/``), refused if it leaves the folder."""
    candidate = path_inside(folder, relative, where)
    if not candidate.is_file():
        in_images = path_inside(folder, os.path.join("images", relative), where)
        candidate = in_images if in_images.is_file() else candidate
    try:
        return candidate.read_bytes()
    except OSError as exc:
        raise DataError(f"{where}: cannot read image {relative!r} ({exc.strerror or exc})") from exc


def write_winoground(folder: str | os.PathLike, rows: Sequence[dict[str, str]], images: Sequence[bytes],
                     name: str = WINOGROUND_FILE) -> Path:
    """The released CSV: two rows per instance (its positive frame, then its negative image)."""
    folder = Path(folder)
    names = write_images(folder, "winoground", images)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=WINOGROUND_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row, image in zip(rows, names, strict=True):
        writer.writerow({**row, "image": image})
    return atomic_write_text(folder / name, buffer.getvalue())


def read_winoground(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError(f"{path}: no Looking While Listening file")
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = set(WINOGROUND_COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise DataError(f"{path}: missing columns {sorted(missing)}")
            return [dict(row) for row in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: unreadable CSV ({exc})") from exc


def load_json_list(path: Path) -> list[Any]:
    data = load_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list")
    return data
