"""One recording's object boxes, from any detector, checked and written as babyvlm's ``*.objects.json``.

Importers (``coco_results``, ``yolo``) and annotators (run in-process) all hand their boxes to an
``ObjectsCollector``: ``add_frame`` for every frame the detector looked at (a frame with no box is
still an annotated frame), ``add`` for every box, in the detector's image pixels (scaled here to the
video's pixels and, for videos babyvlm turns upside down, rotated with them). Each box is kept or
dropped for one counted reason, per input file:

- ``low_score``: below ``min_score`` (or its category's ``min_scores`` entry); a box without a score
  (ground truth, a detector run without confidences) passes every threshold;
- ``category_not_kept``: not among ``keep`` (after ``rename``);
- ``bad_box``: not four finite numbers, or a width or height that is not positive;
- ``bad_value``: a score or visible fraction that is not a finite number, a track id that is not whole;
- ``outside_frame``: nothing of it inside the frame (a box reaching past an edge is clipped and kept,
  counted as ``clipped``);
- ``frame_out_of_range``: a frame index below 0 or past the video's last frame;
- readers add their own (``unknown_category``, ``unknown_image``, ``unknown_recording``).

``write`` writes the COCO-style file of docs/data-formats.md §1.6 atomically, with a ``babyvlm_import``
block (what was read, the settings, kept/dropped counts overall and per input file), then reads it
back with the DevCV builders' own reader (``devcv.annotations.read_annotations``): a file that reader
would not take is never left behind.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import atomic_write_json, load_json
from babyvlm.core.records import SkipReport

IMPORT_KEY = "babyvlm_import"
ROTATIONS = (0, 180)


@dataclass(frozen=True)
class DetectedObject:
    """One box a detector found: ``bbox`` is ``[x, y, w, h]`` in the pixels of the image it looked at."""

    category: str
    bbox: tuple[float, float, float, float]
    score: float | None = None
    track_id: int | None = None
    visible_fraction: float | None = None  # ground truth may know it (the synthetic world does)

    @classmethod
    def of(cls, value: Any, where: str) -> DetectedObject:
        """A ``DetectedObject`` or a mapping with the same keys (third-party annotators may return either)."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping) or "category" not in value or "bbox" not in value:
            raise DataError(f"{where}: expected a DetectedObject or a mapping with 'category' and 'bbox', "
                            f"got {type(value).__name__}")
        bbox = value["bbox"]
        return cls(str(value["category"]), tuple(bbox) if isinstance(bbox, (list, tuple)) else bbox,
                   value.get("score"), value.get("track_id"), value.get("visible_fraction"))


@dataclass(frozen=True)
class AnnotatorFrame:
    """A frame an annotator looks at: its index in the video, its time, and its RGB pixels (H x W x 3)."""

    frame_index: int
    time_sec: float
    rgb: Any


@dataclass(frozen=True)
class VideoGeometry:
    """What the objects file says about its video; boxes are stored in these pixels."""

    video: str  # the video's file name
    fps: float
    width: int
    height: int
    num_frames: int = 0  # 0: unknown (frame indices are then not checked against it)

    @classmethod
    def probe(cls, path: str | os.PathLike) -> VideoGeometry:
        from babyvlm.media import probe_video

        info = probe_video(path)
        if not info.width or not info.height:
            raise DataError(f"{path}: the video header gives no frame size")
        return cls(Path(path).name, info.fps, info.width, info.height, info.num_frames)


@dataclass
class ImportSettings:
    """Thresholds and category choices, the same for every importer and annotator."""

    min_score: float = 0.0
    min_scores: dict[str, float] = field(default_factory=dict)  # per category (after ``rename``)
    keep: frozenset[str] | None = None  # None: every category
    rename: dict[str, str] = field(default_factory=dict)  # detector name -> babyvlm name
    rotation: int = 0  # the rotation babyvlm applies to the video's frames (the source's ``rotation``)

    def __post_init__(self) -> None:
        for name, value in [("min_score", self.min_score), *self.min_scores.items()]:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f"score threshold {name}: must be a number in [0, 1], got {value!r}")
        if self.rotation not in ROTATIONS:
            raise ConfigError(f"rotation must be 0 or 180, got {self.rotation!r}")

    def threshold(self, category: str) -> float:
        return float(self.min_scores.get(category, self.min_score))

    def to_dict(self) -> dict[str, Any]:
        return {"min_score": self.min_score, "min_scores": dict(self.min_scores),
                "keep": sorted(self.keep) if self.keep is not None else None, "rename": dict(self.rename),
                "rotation": self.rotation}


@dataclass
class _Counts:
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)  # boxes, by reason
    frames_dropped: Counter = field(default_factory=Counter)  # frames without a box that fit no video frame

    def add(self, other: _Counts) -> None:
        self.kept += other.kept
        self.dropped.update(other.dropped)
        self.frames_dropped.update(other.frames_dropped)

    def to_dict(self) -> dict[str, Any]:
        return {"kept": self.kept, "dropped": dict(sorted(self.dropped.items())),
                "frames_dropped": dict(sorted(self.frames_dropped.items()))}


class ObjectsCollector:
    """One recording's frames and boxes on their way to ``<stem>.objects.json`` (see the module docstring)."""

    def __init__(self, geometry: VideoGeometry, settings: ImportSettings, importer: str):
        self.geometry, self.settings, self.importer = geometry, settings, importer
        self.frames: set[int] = set()
        self.boxes: list[tuple[int, DetectedObject]] = []
        self.report = SkipReport()  # dropped boxes by reason, with examples naming file and line
        self.frame_report = SkipReport()  # frames (without boxes) that cannot be placed
        self.per_input: dict[str, _Counts] = {}
        self.clipped = 0

    # ---- input -------------------------------------------------------------------------------------
    def add_frame(self, frame_index: int, input_file: str, where: str) -> bool:
        """Mark a frame as looked at; False (counted under ``frames_dropped``) when the video has no such frame."""
        if not self._in_range(frame_index):
            self.drop_frame("frame_out_of_range", input_file, self._out_of_range(where, frame_index))
            return False
        self.frames.add(frame_index)
        self._counts(input_file)
        return True

    def add(self, frame_index: int, found: DetectedObject, input_file: str, where: str,
            image_size: tuple[float, float] | None = None) -> bool:
        """One box on a frame, in the pixels of an image of ``image_size`` (None: the video's size;
        ``(1, 1)``: normalised coordinates). Returns whether it was kept."""
        if not self._in_range(frame_index):
            self.drop("frame_out_of_range", input_file, self._out_of_range(where, frame_index))
            return False
        self.frames.add(frame_index)
        category = self.settings.rename.get(str(found.category).strip(), str(found.category).strip())
        box = _as_box(found.bbox)
        reason = "bad_box" if box is None else self._refusal(category, found)
        bbox = None if reason else self._frame_box(box, image_size)
        if bbox is None and not reason:
            reason = "outside_frame"
        if reason:
            self.drop(reason, input_file, where)
            return False
        self.boxes.append((frame_index, DetectedObject(category, bbox, _plain(found.score, float),
                                                       _plain(found.track_id, int),
                                                       _plain(found.visible_fraction, float))))
        self._counts(input_file).kept += 1
        return True

    def reject(self, frame_index: int, reason: str, input_file: str, where: str) -> None:
        """A box a reader could not use (e.g. an unknown class) on a frame the detector looked at."""
        if not self._in_range(frame_index):
            reason, where = "frame_out_of_range", self._out_of_range(where, frame_index)
        else:
            self.frames.add(frame_index)
        self.drop(reason, input_file, where)

    def drop(self, reason: str, input_file: str, where: str) -> None:
        self.report.skip(reason, where)
        self._counts(input_file).dropped[reason] += 1

    def drop_frame(self, reason: str, input_file: str, where: str) -> None:
        self.frame_report.skip(reason, where)
        self._counts(input_file).frames_dropped[reason] += 1

    def _in_range(self, frame_index: int) -> bool:
        return frame_index >= 0 and not (self.geometry.num_frames and frame_index >= self.geometry.num_frames)

    def _out_of_range(self, where: str, frame_index: int) -> str:
        return f"{where} (frame {frame_index}; the video has {self.geometry.num_frames or 'an unknown number of'} frames)"

    def _counts(self, input_file: str) -> _Counts:
        return self.per_input.setdefault(input_file, _Counts())

    def _refusal(self, category: str, found: DetectedObject) -> str | None:
        if not category:
            return "unknown_category"
        if not all(_number_or_none(value, kind) for value, kind in ((found.score, float), (found.track_id, int),
                                                                    (found.visible_fraction, float))):
            return "bad_value"
        if self.settings.keep is not None and category not in self.settings.keep:
            return "category_not_kept"
        if found.score is not None and float(found.score) < self.settings.threshold(category):
            return "low_score"
        return None

    def _frame_box(self, bbox: Sequence[float], image_size: tuple[float, float] | None) -> tuple[float, ...] | None:
        """The box in video pixels (scaled, rotated, clipped to the frame), or None when nothing is left."""
        width, height = self.geometry.width, self.geometry.height
        scale_x, scale_y = (1.0, 1.0) if image_size is None else (width / image_size[0], height / image_size[1])
        x, y, w, h = (float(bbox[0]) * scale_x, float(bbox[1]) * scale_y, float(bbox[2]) * scale_x,
                      float(bbox[3]) * scale_y)
        if self.settings.rotation == 180:  # the detector saw the frame as stored; babyvlm turns it over
            x, y = width - x - w, height - y - h
        x0, y0, x1, y1 = max(0.0, x), max(0.0, y), min(float(width), x + w), min(float(height), y + h)
        if x1 - x0 < 1 or y1 - y0 < 1:
            return None
        if (x0, y0, x1, y1) != (x, y, x + w, y + h):
            self.clipped += 1
        return tuple(round(v, 2) for v in (x0, y0, x1 - x0, y1 - y0))

    # ---- output ------------------------------------------------------------------------------------
    def counts(self) -> dict[str, Any]:
        total = _Counts()
        for counts in self.per_input.values():
            total.add(counts)
        return {**total.to_dict(), "clipped": self.clipped, "frames": len(self.frames),
                "per_input": {name: counts.to_dict() for name, counts in sorted(self.per_input.items())}}

    def document(self, inputs: Sequence[str]) -> dict[str, Any]:
        geometry = self.geometry
        names = sorted({found.category for _, found in self.boxes})
        category_ids = {name: number for number, name in enumerate(names, start=1)}
        images = [{"id": index, "frame_index": index, "time_sec": round(index / geometry.fps, 4) if geometry.fps
                   else float(index), "width": geometry.width, "height": geometry.height}
                  for index in sorted(self.frames)]
        annotations = []
        for frame_index, found in sorted(self.boxes, key=lambda pair: pair[0]):
            entry = {"id": len(annotations), "image_id": frame_index, "category_id": category_ids[found.category],
                     "bbox": list(found.bbox), "area": round(found.bbox[2] * found.bbox[3], 2)}
            for key in ("score", "track_id", "visible_fraction"):
                if getattr(found, key) is not None:
                    entry[key] = getattr(found, key)
            annotations.append(entry)
        return {"video": geometry.video, "fps": geometry.fps, "width": geometry.width, "height": geometry.height,
                "categories": [{"id": number, "name": name} for name, number in category_ids.items()],
                "images": images, "annotations": annotations,
                IMPORT_KEY: {"importer": self.importer, "inputs": list(inputs), "settings": self.settings.to_dict(),
                             **self.counts()}}

    def write(self, path: str | os.PathLike, inputs: Sequence[str], overwrite: bool = False) -> dict[str, Any]:
        """Write the file (see the module docstring); returns its ``babyvlm_import`` block."""
        path = Path(path)
        check_replaceable(path, overwrite)
        document = self.document(inputs)
        atomic_write_json(path, document, indent=None)
        _check_readable(path, len(document["annotations"]), len(document["images"]))
        return document[IMPORT_KEY]

    def summary(self, path: str | os.PathLike) -> str:
        counts = self.counts()
        dropped = ", ".join(f"{reason} {count}" for reason, count in counts["dropped"].items()) or "none"
        frames = "".join(f"; frames dropped: {reason} {count}" for reason, count in counts["frames_dropped"].items())
        return (f"{path}: {counts['frames']} frames, kept {counts['kept']} boxes, dropped {sum(counts['dropped'].values())}"
                f" ({dropped}), clipped {counts['clipped']}{frames}")


def check_replaceable(path: Path, overwrite: bool) -> None:
    """An objects file babyvlm imported is replaced by a new import; any other only with ``overwrite``."""
    if not path.exists() or overwrite:
        return
    try:
        data = load_json(path)
    except DataError:
        data = None
    if not (isinstance(data, dict) and IMPORT_KEY in data):
        raise ConfigError(f"{path} exists and was not written by `babyvlm annotations`; pass --overwrite to "
                          f"replace it")


def _as_box(bbox: Any) -> tuple[float, float, float, float] | None:
    """Four finite numbers with a positive width and height (lists, tuples, numpy or torch values), else None."""
    if hasattr(bbox, "tolist"):
        bbox = bbox.tolist()
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or any(isinstance(v, (bool, str)) for v in bbox):
        return None
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        return None
    return x, y, w, h


def _number_or_none(value: Any, kind: type) -> bool:
    """None, or a finite number (a whole one for ``int``): a score or track id that can be stored."""
    if value is None:
        return True
    if isinstance(value, (bool, str)):
        return False
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(number) and (kind is not int or number.is_integer())


def _plain(value: Any, kind: type) -> Any:
    """A detector's numpy/torch scalar as a plain JSON number (None stays None)."""
    return None if value is None else kind(value)


def _check_readable(path: Path, boxes: int, frames: int) -> None:
    """Read the file back as the DevCV builders will; anything they would skip is a bug here, not data."""
    from babyvlm.plugins.devcv.annotations import read_annotations

    report = SkipReport()
    read = read_annotations(path, report)
    found = sum(len(frame.boxes) for frame in read)
    if report.total or found != boxes or len(read) != frames:
        path.unlink(missing_ok=True)
        raise DataError(f"{path}: the written file does not read back as written ({found} of {boxes} boxes, "
                        f"{len(read)} of {frames} frames; {report.summary()}); removed")
