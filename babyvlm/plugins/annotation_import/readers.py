"""Readers for common detector outputs, turned into ``Observation``s for ``ObjectsCollector``.

- **COCO results** (``read_coco_results``): a JSON list of ``{"image_id", "category_id", "bbox": [x, y, w,
  h], "score"}`` (pixels; ``track_id`` kept when a tracker wrote one), what detectron2, mmdetection and
  ``pycocotools`` write. With ``images`` (the COCO dataset file the detector ran on: ``images`` with
  ``id``, ``file_name``, ``width``, ``height``, and ``categories``) each image's file name says its
  recording and frame and its size scales the box to the video's pixels; every listed image counts as
  a frame the detector looked at. Without it, ``image_id`` is the frame number in one ``--video``.
- **YOLO txt** (``read_yolo``): a folder of ``.txt`` files, one per frame (Ultralytics ``save_txt``),
  each line ``class cx cy w h [conf] [track_id]``, normalised to 0-1 (6 columns: the 6th is the
  confidence; a tracker's id is the 7th, after a confidence). An empty file is a frame with no box.

Frame names (``frame_key``): the number is the last run of digits of the file's stem; the recording is
what precedes it (``S_20141029_2412_02_000123.jpg``, Ultralytics' ``{video}_{frame}.txt``) or else the
folder holding it (``S_20141029_2412_02/frame_000123.jpg``). Structural problems (not JSON, a line that
is not numbers) raise ``DataError`` naming the file and line; unusable entries are counted by reason.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from babyvlm.core.errors import DataError
from babyvlm.core.io import load_json, regular_file
from babyvlm.plugins.annotation_import.names import categories_of
from babyvlm.plugins.annotation_import.objects import DetectedObject

FRAME_NAME = re.compile(r"^(?P<prefix>.*?)[_-]?(?:frame[_-]?)?(?P<number>\d+)$", re.IGNORECASE)
CLASS_FILES = {"classes.txt", "labels.txt"}  # names files that may sit among YOLO label files


@dataclass(frozen=True)
class Observation:
    """One frame or one box from a detector's output file."""

    input_file: str  # for the per-file counts
    where: str  # file and line/entry, for the examples of each drop reason
    name: str | None  # the image/label file name giving recording and frame (None: ``frame`` is given)
    frame: int | None = None
    image_size: tuple[float, float] | None = None  # the detector's image size (None: the video's)
    found: DetectedObject | None = None  # None: the frame itself (looked at, maybe without boxes)
    dropped: str | None = None  # a reason the reader already knows (unknown_category, unknown_image)


def frame_key(name: str) -> tuple[str, str, int] | None:
    """``(prefix, folder name, frame number)`` of an image or label file name, None without a number."""
    path = PurePosixPath(name.replace("\\", "/"))
    match = FRAME_NAME.match(path.stem)
    if not match:
        return None
    return match["prefix"].rstrip("_-"), path.parent.name, int(match["number"])


# ---- COCO results ----------------------------------------------------------------------------------
def read_coco_results(results_path: Path, images_path: Path | None,
                      classes: Mapping[int, str] | None) -> Iterator[Observation]:
    """Observations of a COCO results file (see the module docstring)."""
    results = load_json(results_path)
    if not isinstance(results, list):
        raise DataError(f"{results_path}: expected a JSON list of detections "
                        f"({{image_id, category_id, bbox, score}}), got {type(results).__name__}")
    images: dict[int, dict[str, Any]] | None = None
    table = dict(classes) if classes else None
    if images_path is not None:
        dataset = load_json(images_path)
        images = _images_of(dataset, images_path)
        table = table or categories_of(dataset, images_path)
    if not table:
        raise DataError(f"{results_path}: no category names: give --classes (a names file, or 'coco' for the "
                        f"COCO ids) or an --images dataset with 'categories'")
    source = results_path.name
    for image_id, image in (images or {}).items():
        yield Observation(source, f"{images_path.name} image {image_id}", image["file_name"],
                          image_size=image["size"])
    for number, entry in enumerate(results):
        where = f"{source} #{number}"
        image_id, category_id, bbox, score = _result_fields(entry, results_path, number)
        track = entry.get("track_id")
        found = DetectedObject(table.get(category_id, ""), bbox, score,
                               int(track) if isinstance(track, int) and not isinstance(track, bool) else None)
        if images is None:
            yield Observation(source, where, None, frame=image_id, found=found,
                              dropped=None if category_id in table else "unknown_category")
        elif image_id not in images:
            yield Observation(source, where, None, dropped="unknown_image")
        else:
            yield Observation(source, where, images[image_id]["file_name"], image_size=images[image_id]["size"],
                              found=found, dropped=None if category_id in table else "unknown_category")


def _images_of(dataset: Any, path: Path) -> dict[int, dict[str, Any]]:
    if not isinstance(dataset, Mapping) or not isinstance(dataset.get("images"), list):
        raise DataError(f"{path}: expected a COCO dataset with an 'images' list")
    images = {}
    for number, image in enumerate(dataset["images"]):
        if not isinstance(image, Mapping) or not _is_int(image.get("id")) or not isinstance(image.get("file_name"), str):
            raise DataError(f"{path}: images[{number}] needs an integer 'id' and a 'file_name'")
        width, height = image.get("width"), image.get("height")
        size = (float(width), float(height)) if _positive(width) and _positive(height) else None
        images[int(image["id"])] = {"file_name": image["file_name"], "size": size}
    return images


def _result_fields(entry: Any, path: Path, number: int) -> tuple[int, int, Any, float | None]:
    if not isinstance(entry, Mapping):
        raise DataError(f"{path}: detection #{number} must be an object, got {type(entry).__name__}")
    for key in ("image_id", "category_id"):
        if not _is_int(entry.get(key)):
            raise DataError(f"{path}: detection #{number} needs an integer {key!r}, got {entry.get(key)!r:.40}")
    if "bbox" not in entry:
        raise DataError(f"{path}: detection #{number} has no 'bbox'")
    score = entry.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise DataError(f"{path}: detection #{number}: 'score' must be a number, got {score!r:.40}")
    return int(entry["image_id"]), int(entry["category_id"]), entry["bbox"], score


# ---- YOLO txt --------------------------------------------------------------------------------------
def read_yolo(labels: Path, classes: Mapping[int, str]) -> Iterator[Observation]:
    """Observations of a folder of YOLO label files (see the module docstring)."""
    if not labels.is_dir():
        raise DataError(f"{labels}: not a folder of YOLO label files")
    files = sorted(p for p in labels.rglob("*.txt") if p.name not in CLASS_FILES)
    if not files:
        raise DataError(f"{labels}: no .txt label files in it")
    for path in files:
        name = path.relative_to(labels).as_posix()
        yield Observation(name, name, name, image_size=(1.0, 1.0))
        for line_number, line in enumerate(regular_file(path).read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                yield _yolo_line(line, name, line_number, classes)


def _yolo_line(line: str, name: str, line_number: int, classes: Mapping[int, str]) -> Observation:
    where = f"{name}:{line_number}"
    fields = line.split()
    if len(fields) not in (5, 6, 7):
        raise DataError(f"{where}: expected `class cx cy w h [conf] [track_id]`, got {len(fields)} fields")
    try:
        values = [float(field) for field in fields]
    except ValueError as exc:
        raise DataError(f"{where}: expected numbers, got {line.strip()!r:.80}") from exc
    if not values[0].is_integer() or (len(values) == 7 and not values[6].is_integer()):
        raise DataError(f"{where}: the class (and a track id) must be whole numbers, got {line.strip()!r:.80}")
    cls, cx, cy, w, h = int(values[0]), *values[1:5]
    score = values[5] if len(values) >= 6 else None
    track = int(values[6]) if len(values) == 7 else None
    found = DetectedObject(classes.get(cls, ""), (cx - w / 2, cy - h / 2, w, h), score, track)
    return Observation(name, where, name, image_size=(1.0, 1.0), found=found,
                       dropped=None if cls in classes else "unknown_category")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
