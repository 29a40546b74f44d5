"""The COCO-style object annotation reader (``*.objects.json``, docs/data-formats.md §1.6).

``read_annotations`` turns one file into ``FrameObjects`` per annotated frame (frame index, time, size and
its ``ObjectBox``es with category name, ``[x, y, w, h]`` box and track id). Malformed files raise
``DataError`` naming the file and the offending record; annotations pointing at unknown frames or
categories are skipped and counted in the caller's ``SkipReport``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from babyvlm.core.errors import DataError
from babyvlm.core.io import load_json
from babyvlm.core.records import SkipReport


@dataclass(frozen=True)
class ObjectBox:
    category: str
    bbox: tuple[float, float, float, float]  # x, y, width, height in pixels of the annotated frame
    track_id: int | None = None
    visible_fraction: float | None = None  # synthetic corpora add it; real detector output does not

    @property
    def centre(self) -> tuple[float, float]:
        x, y, w, h = self.bbox
        return x + w / 2, y + h / 2


@dataclass
class FrameObjects:
    frame_index: int
    time_sec: float
    width: int
    height: int
    boxes: list[ObjectBox] = field(default_factory=list)

    def count(self, category: str) -> int:
        return sum(box.category == category for box in self.boxes)

    def categories(self) -> set[str]:
        return {box.category for box in self.boxes}


def read_annotations(path: str | os.PathLike, report: SkipReport | None = None) -> list[FrameObjects]:
    """Every annotated frame of one file, sorted by frame index (frames without boxes included)."""
    path = Path(path)
    report = report if report is not None else SkipReport()
    data = load_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: key {key!r} must be a list")
    categories = {_field(c, "id", path, "categories"): str(_field(c, "name", path, "categories")).strip()
                  for c in data["categories"]}
    frames: dict[object, FrameObjects] = {}
    fps = float(data.get("fps") or 0)
    for number, image in enumerate(data["images"]):
        where = f"images[{number}]"
        index = int(_field(image, "frame_index", path, where))
        # detector output may leave out the time: it follows from the frame rate, else the index itself
        time_sec = image.get("time_sec")
        frames[_field(image, "id", path, where)] = FrameObjects(
            frame_index=index,
            time_sec=float(time_sec) if time_sec is not None else (index / fps if fps else float(index)),
            width=int(image.get("width") or data.get("width") or 0),
            height=int(image.get("height") or data.get("height") or 0))
    for number, annotation in enumerate(data["annotations"]):
        where = f"{path.name}:annotations[{number}]"
        frame = frames.get(_field(annotation, "image_id", path, where))
        category = categories.get(_field(annotation, "category_id", path, where))
        bbox = annotation.get("bbox")
        if frame is None:
            report.skip("annotation_unknown_image", where)
        elif category is None:
            report.skip("annotation_unknown_category", where)
        elif not _valid_bbox(bbox):
            report.skip("annotation_bad_bbox", where)
        else:
            track = annotation.get("track_id")
            visible = annotation.get("visible_fraction")
            frame.boxes.append(ObjectBox(category, tuple(float(v) for v in bbox),
                                         None if track is None else int(track),
                                         None if visible is None else float(visible)))
    return sorted(frames.values(), key=lambda frame: frame.frame_index)


def _field(record: object, key: str, path: Path, where: str) -> object:
    if not isinstance(record, dict) or key not in record:
        raise DataError(f"{path}: {where} has no {key!r}")
    return record[key]


def _valid_bbox(bbox: object) -> bool:
    return (isinstance(bbox, list | tuple) and len(bbox) == 4
            and all(isinstance(v, int | float) for v in bbox) and bbox[2] > 0 and bbox[3] > 0)
