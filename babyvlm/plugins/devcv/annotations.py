"""The COCO-style object annotation reader (``*.objects.json``, docs/data-formats.md §1.6).

``read_annotations`` turns one file into ``FrameObjects`` per annotated frame (frame index, time, size and
its ``ObjectBox``es with category name, ``[x, y, w, h]`` box and track id). A file that is not COCO-shaped
(not an object, ``images``/``annotations``/``categories`` not lists) raises ``DataError`` naming it.

Every value is checked where it is read, so nothing malformed becomes a gold answer; each record left out
is counted in the caller's ``SkipReport`` under its reason, with ``file:images[N]`` naming it:

- categories: an id that is not a number or string, a missing or empty name, a repeated id;
- frames: ``frame_index`` not a whole number >= 0 (NaN, a string, +-1e6 past the video's last frame),
  ``time_sec`` not a finite number >= 0, a width or height that is not a positive number, a repeated id
  or frame index: the frame is left out;
- boxes: on an unknown frame or category; values that are not four finite numbers (NaN, Infinity,
  strings): the whole frame is left out, since an object of unknown place or size would make its counts
  and positions wrong; no width or height: the box is dropped; a box entirely outside the frame is dropped
  (the object is not in view) and one partly outside is clipped to it; a malformed ``track_id`` or ``visible_fraction``
  is counted and replaced by "untracked" / "hidden" (never "fully visible").
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babyvlm.core.errors import DataError
from babyvlm.core.io import load_json
from babyvlm.core.records import Recording, SkipReport


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


def read_recording_annotations(recording: Recording, report: SkipReport) -> list[FrameObjects]:
    """A recording's annotated frames, frame indices checked against its video's frame count."""
    return read_annotations(recording.annotations_path, report, frame_count=_frame_count(recording))


def _frame_count(recording: Recording) -> int | None:
    """The video's frame count from its header (None when the header does not say)."""
    from babyvlm.media import probe_video

    try:
        count = probe_video(recording.video_path).num_frames
    except DataError:  # an unreadable video is reported when its frames are decoded
        return None
    return count or None


def read_annotations(path: str | os.PathLike, report: SkipReport | None = None,
                     frame_count: int | None = None) -> list[FrameObjects]:
    """Every annotated frame of one file, sorted by frame index (frames without boxes included);
    ``frame_count`` (the video's) bounds the frame indices."""
    path = Path(path)
    report = report if report is not None else SkipReport()
    data = load_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: key {key!r} must be a list")
    reader = _Reader(path, data, report, frame_count)
    return reader.frames()


class _Reader:
    """One file's records, checked one by one (see the module docstring)."""

    def __init__(self, path: Path, data: dict[str, Any], report: SkipReport, frame_count: int | None):
        self.path, self.data, self.report, self.frame_count = path, data, report, frame_count
        self.fps = _number(data.get("fps"))
        self.fps = self.fps if self.fps and self.fps > 0 else None

    def skip(self, reason: str, where: str, detail: str = "") -> None:
        self.report.skip(reason, f"{self.path.name}:{where}" + (f" ({detail})" if detail else ""))

    def frames(self) -> list[FrameObjects]:
        categories = self.categories()
        frames, left_out = self.images()
        spoiled: set[object] = set()
        for number, annotation in enumerate(self.data["annotations"]):
            self.annotation(number, annotation, frames, left_out, categories, spoiled)
        for image_id in spoiled:
            frames.pop(image_id, None)
        return sorted(frames.values(), key=lambda frame: frame.frame_index)

    # ---- categories and frames ---------------------------------------------------------------------
    def categories(self) -> dict[object, str]:
        found: dict[object, str] = {}
        for number, category in enumerate(self.data["categories"]):
            where = f"categories[{number}]"
            identity = category.get("id") if isinstance(category, dict) else None
            name = category.get("name") if isinstance(category, dict) else None
            if not _is_key(identity):
                self.skip("category_bad_id", where, f"id {_short(identity)}")
            elif not isinstance(name, str) or not name.strip():
                self.skip("category_bad_name", where, f"name {_short(name)}")
            elif identity in found:
                self.skip("category_duplicate_id", where, f"id {_short(identity)}")
            else:
                found[identity] = name.strip()
        return found

    def images(self) -> tuple[dict[object, FrameObjects], set[object]]:
        frames: dict[object, FrameObjects] = {}
        left_out: set[object] = set()
        indices: set[int] = set()
        for number, image in enumerate(self.data["images"]):
            where = f"images[{number}]"
            identity = image.get("id") if isinstance(image, dict) else None
            if not _is_key(identity):
                self.skip("image_bad_id", where, f"id {_short(identity)}")
                continue
            if identity in frames or identity in left_out:
                self.skip("image_duplicate_id", where, f"id {_short(identity)}")
                continue
            frame = self.frame(image, where)
            if frame is not None and frame.frame_index in indices:
                self.skip("image_duplicate_frame_index", where, f"frame_index {frame.frame_index}")
                frame = None
            if frame is None:
                left_out.add(identity)
                continue
            indices.add(frame.frame_index)
            frames[identity] = frame
        return frames, left_out

    def frame(self, image: dict[str, Any], where: str) -> FrameObjects | None:
        raw = image.get("frame_index")
        index = _whole(raw)
        if index is None or index < 0:
            self.skip("image_bad_frame_index", where, f"frame_index {_short(raw)}")
            return None
        if self.frame_count is not None and index >= self.frame_count:
            self.skip("image_frame_outside_video", where, f"frame_index {index} of a {self.frame_count}-frame video")
            return None
        # detector output may leave out the time: it follows from the frame rate, else the index itself
        raw_time = image.get("time_sec")
        time_sec = _number(raw_time) if raw_time is not None else (index / self.fps if self.fps else float(index))
        if time_sec is None or time_sec < 0:
            self.skip("image_bad_time_sec", where, f"time_sec {_short(raw_time)}")
            return None
        size = [self.size(image, key) for key in ("width", "height")]
        if None in size:
            self.skip("image_bad_size", where, f"width {_short(image.get('width', self.data.get('width')))}, "
                                               f"height {_short(image.get('height', self.data.get('height')))}")
            return None
        return FrameObjects(frame_index=index, time_sec=time_sec, width=size[0], height=size[1])

    def size(self, image: dict[str, Any], key: str) -> int | None:
        value = _whole(image[key]) if key in image else _whole(self.data.get(key))
        return value if value is not None and value > 0 else None

    # ---- boxes -------------------------------------------------------------------------------------
    def annotation(self, number: int, annotation: Any, frames: dict[object, FrameObjects], left_out: set[object],
                   categories: dict[object, str], spoiled: set[object]) -> None:
        where = f"annotations[{number}]"
        if not isinstance(annotation, dict):
            self.skip("annotation_not_an_object", where)
            return
        image_id, category_id = annotation.get("image_id"), annotation.get("category_id")
        if not _is_key(image_id):
            self.skip("annotation_bad_image_id", where, f"image_id {_short(image_id)}")
            return
        frame = frames.get(image_id)
        if frame is None:
            reason = "annotation_on_left_out_image" if image_id in left_out else "annotation_unknown_image"
            self.skip(reason, where, f"image_id {_short(image_id)}")
            return
        if not _is_key(category_id):
            self.skip("annotation_bad_category_id", where, f"category_id {_short(category_id)}")
            return
        if category_id not in categories:
            self.skip("annotation_unknown_category", where, f"category_id {_short(category_id)}")
            return
        bbox = annotation.get("bbox")
        values = [_number(v) for v in bbox] if isinstance(bbox, list | tuple) and len(bbox) == 4 else None
        if values is None or None in values:
            self.skip("annotation_bbox_not_numbers", where, f"bbox {_short(bbox)}; its frame is left out")
            spoiled.add(image_id)
            return
        if values[2] <= 0 or values[3] <= 0:
            self.skip("annotation_bad_bbox", where, f"bbox {_short(bbox)}: no width or height")
            return
        box = self.clipped(values, frame, where)
        if box is None:
            return
        frame.boxes.append(ObjectBox(categories[category_id], box, self.track(annotation, where),
                                     self.visible(annotation, where)))

    def clipped(self, values: list[float], frame: FrameObjects, where: str) -> tuple[float, ...] | None:
        """The box clipped to the frame; None (counted) when nothing of it is inside."""
        x, y, w, h = values
        left, top = max(0.0, x), max(0.0, y)
        right, bottom = min(float(frame.width), x + w), min(float(frame.height), y + h)
        if right <= left or bottom <= top:
            self.skip("annotation_box_outside_frame", where,
                      f"bbox {_short(values)} in a {frame.width}x{frame.height} frame")
            return None
        box = (left, top, right - left, bottom - top)
        if box != (x, y, w, h):
            self.skip("annotation_box_clipped", where, f"bbox {_short(values)} in a {frame.width}x{frame.height} frame")
        return box

    def track(self, annotation: dict[str, Any], where: str) -> int | None:
        raw = annotation.get("track_id")
        track = _whole(raw)
        if raw is not None and track is None:
            self.skip("annotation_bad_track_id", where, f"track_id {_short(raw)}; kept untracked")
        return track

    def visible(self, annotation: dict[str, Any], where: str) -> float | None:
        raw = annotation.get("visible_fraction")
        if raw is None:
            return None
        value = _number(raw)
        if value is None or not 0.0 <= value <= 1.0:
            self.skip("annotation_bad_visible_fraction", where, f"visible_fraction {_short(raw)}; kept as hidden")
            return 0.0
        return value


def _number(value: Any) -> float | None:
    """A finite number (not a bool, not a string), as a float; else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _whole(value: Any) -> int | None:
    """A whole number (``3`` or ``3.0``), as an int; else None."""
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None


def _is_key(value: Any) -> bool:
    """An id a COCO file may use: a whole number or a non-empty string."""
    return (isinstance(value, str) and bool(value)) or _whole(value) is not None and not isinstance(value, float)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
