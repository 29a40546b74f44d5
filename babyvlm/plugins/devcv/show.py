"""``babyvlm tasks show``: one item as a PNG contact sheet (its images in order, labelled, with the prompt
and the gold answer underneath), so a person can look at what a task asks."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw

from babyvlm.core.errors import DataError
from babyvlm.core.io import atomic_write_bytes
from babyvlm.media import decode_image

TILE = 160


def find_item(folder: Path, task, item_id: str, split: str | None):
    splits = [split] if split else [s for s in ("train", "val", "test") if f"_{s}_" in item_id] + ["test", "val", "train"]
    for name in dict.fromkeys(splits):
        if task.item_path(folder, name).is_file():
            for item in task.load(folder, name):
                if item.item_id == item_id:
                    return item
    raise DataError(f"{folder}: {task.name} has no item {item_id!r} (splits looked in: {list(dict.fromkeys(splits))})")


def show_item(folder: str | Path, task_name: str, item_id: str, out: str | Path, split: str | None = None) -> Path:
    import babyvlm

    task = babyvlm.build("task", task_name)
    item = find_item(Path(folder), task, item_id, split)
    images = [Image.fromarray(decode_image(data, f"{task_name} item {item_id!r}: {path}"))
              for data, path in zip(item.images, image_files(item), strict=True)]
    columns = min(6, max(1, len(images)))
    rows = (len(images) + columns - 1) // columns
    text = _text(item)
    lines = [line for paragraph in text.split("\n") for line in (textwrap.wrap(paragraph, 24 * columns) or [""])]
    width, height = columns * (TILE + 8) + 8, rows * (TILE + 24) + 12 * len(lines) + 24
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for number, image in enumerate(images):
        image.thumbnail((TILE, TILE))
        x, y = 8 + (number % columns) * (TILE + 8), 8 + (number // columns) * (TILE + 24)
        sheet.paste(image, (x, y + 14))
        draw.text((x, y), f"image {number + 1}", fill=(0, 0, 0))
    y = rows * (TILE + 24) + 12
    for line in lines:
        draw.text((8, y), line, fill=(0, 0, 0))
        y += 12
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return atomic_write_bytes(out, buffer.getvalue())


def image_files(item) -> list[str]:
    """The file each of the item's images came from (its position when the item names none)."""
    paths = item.extras.get("image_paths") or []
    return [paths[n] if n < len(paths) else f"image {n + 1}" for n in range(len(item.images))]


def _text(item) -> str:
    turns = [f"{turn['from']}: {turn['value']}" for turn in item.conversations]
    return f"{item.task} {item.item_id}\n" + "\n".join(turns) + f"\nANSWER: {item.answer}"
