"""Frames and crops for the DevCV builders: one split's annotated recordings as ``SplitMaterial``.

Frames are decoded with ``babyvlm.media.iter_lazy_frames`` in one sequential pass per recording and
kept in a bounded process-wide cache, so the twelve builders of one ``tasks build`` share the decoding:
a miss decodes the frames asked for plus every keyframe (one per ``keyframe_sec``). Frames are shrunk so
the longer side is at most ``frame_size``; boxes are scaled to match. Crops are square (the box grown by
``context``), padded with the frame's mean colour where they leave the frame, resized to ``crop_size``.
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from babyvlm.core.records import Recording, SkipReport
from babyvlm.plugins.devcv.annotations import FrameObjects, ObjectBox, read_recording_annotations

_CACHE: OrderedDict[tuple, dict[int, np.ndarray]] = OrderedDict()
CACHE_RECORDINGS = 48  # recordings whose decoded frames stay cached (keyframes at 224 px: ~8 MB a minute)


# parsed annotation files, shared by the builders of one process like the frames: (frames, the skips parsing
# reported), keyed by the annotation file and the video (its frame count bounds the frame indices) as they are now
_ANNOTATIONS: OrderedDict[tuple, tuple[list[FrameObjects], SkipReport]] = OrderedDict()
CACHE_ANNOTATIONS = 512


def clear_cache() -> None:
    _CACHE.clear()
    _ANNOTATIONS.clear()


def recording_annotations(recording: Recording, report: SkipReport) -> list[FrameObjects]:
    """``read_recording_annotations``, parsed once per process while the files stay as they are; the
    parse's skips go into ``report`` on every call."""
    key = (*_file_state(recording.annotations_path), *_file_state(recording.video_path))
    if key not in _ANNOTATIONS:
        parsed = SkipReport()
        _ANNOTATIONS[key] = (read_recording_annotations(recording, parsed), parsed)
        while len(_ANNOTATIONS) > CACHE_ANNOTATIONS:
            _ANNOTATIONS.popitem(last=False)
    frames, skips = _ANNOTATIONS[key]
    report.merge(skips)
    return frames


def _file_state(path) -> tuple:
    try:
        stat = os.stat(path)
    except OSError:  # a missing video: read_recording_annotations says what it makes of that
        return str(path), None, None
    return str(path), stat.st_mtime_ns, stat.st_size


@dataclass(frozen=True)
class Instance:
    """One usable object box on one frame of one recording."""

    recording: AnnotatedRecording
    frame: FrameObjects
    box: ObjectBox

    @property
    def key(self) -> tuple[str, int, int | None]:
        return self.recording.recording_id, self.frame.frame_index, self.box.track_id


def provenance(sources: Sequence[Instance | tuple[AnnotatedRecording, FrameObjects]]) -> dict[str, object]:
    """Where an item's pictures come from: ``recording`` (the first source's recording, the unit the
    evaluator's confidence intervals resample) and ``sources`` (every object or frame used, as
    ``recording:frame[:track]``)."""
    recordings, keys = [], []
    for source in sources:
        if isinstance(source, Instance):
            recording_id, frame, track = source.key
            keys.append(f"{recording_id}:{frame}:{track}")
        else:
            recording, frame = source
            recording_id = recording.recording_id
            keys.append(f"{recording_id}:{frame.frame_index}")
        recordings.append(recording_id)
    return {"recording": recordings[0] if recordings else None, "sources": list(dict.fromkeys(keys))}


class AnnotatedRecording:
    """A recording with its parsed annotations and cached frame access."""

    def __init__(self, recording: Recording, frames: list[FrameObjects], frame_size: int, keyframe_sec: float):
        self.recording = recording
        self.recording_id = recording.recording_id
        self.frames = frames
        self.by_index = {frame.frame_index: frame for frame in frames}
        self.frame_size = frame_size
        self.keyframes = _every(frames, keyframe_sec)

    def image(self, frame: FrameObjects) -> np.ndarray:
        return self.images([frame.frame_index])[frame.frame_index]

    def images(self, indices: Iterable[int]) -> dict[int, np.ndarray]:
        key = (str(self.recording.video_path), self.recording.rotation, self.frame_size)
        cached = _CACHE.setdefault(key, {})
        _CACHE.move_to_end(key)
        wanted = set(indices)
        missing = wanted - cached.keys()
        if missing:
            cached.update(self._decode(missing | {f.frame_index for f in self.keyframes}))
            while len(_CACHE) > CACHE_RECORDINGS:
                _CACHE.popitem(last=False)
        return {index: cached[index] for index in wanted if index in cached}

    def _decode(self, indices: set[int]) -> dict[int, np.ndarray]:
        from babyvlm.media import iter_lazy_frames

        last = max(indices)
        decoded: dict[int, np.ndarray] = {}
        frames = iter_lazy_frames(self.recording.video_path, rotation=self.recording.rotation)
        with contextlib.closing(frames):
            for index, (_time, frame) in enumerate(frames):
                if index in indices:
                    decoded[index] = frame.to_rgb(self.frame_size)
                if index >= last:
                    break
        return decoded

    def scale(self, frame: FrameObjects) -> float:
        """Factor from annotation pixels to pixels of the decoded (shrunk) frame."""
        longer = max(frame.width, frame.height)
        return min(1.0, self.frame_size / longer) if longer and self.frame_size else 1.0


class SplitMaterial:
    """The annotated recordings of one split, with the selections the builders share."""

    def __init__(self, recordings: Sequence[Recording], report: SkipReport, *, frame_size: int = 224,
                 crop_size: int = 96, keyframe_sec: float = 1.0, min_box: int = 12):
        self.report, self.crop_size, self.min_box = report, crop_size, min_box
        self._crops: dict[tuple, np.ndarray] = {}
        self.recordings: list[AnnotatedRecording] = []
        for recording in sorted(recordings, key=lambda r: r.recording_id):
            if recording.annotations_path is None:
                report.skip("recording_without_annotations", recording.recording_id)
                continue
            frames = recording_annotations(recording, report)
            self.recordings.append(AnnotatedRecording(recording, frames, frame_size, keyframe_sec))

    def keyframes(self) -> Iterator[tuple[AnnotatedRecording, FrameObjects]]:
        for recording in self.recordings:
            for frame in recording.keyframes:
                yield recording, frame

    def instances(self) -> list[Instance]:
        """Fully visible, large enough boxes on keyframes (the crop tasks' raw material)."""
        found = []
        for recording, frame in self.keyframes():
            for box in frame.boxes:
                if self.whole(frame, box):
                    found.append(Instance(recording, frame, box))
        return found

    def whole_counts(self, every_sec: float | None = None, min_side: float = 0.035,
                     min_visible: float = 0.6) -> list[tuple[AnnotatedRecording, FrameObjects, str, int]]:
        """(recording, frame, category, count) for every category on a frame whose objects are all
        countable: inside the frame (not cut by its edge), at least ``min_side`` of the frame's longer
        side (8 px at 224) and at least ``min_visible`` unoccluded — a count is only asked where it is
        unambiguous. Frames are the keyframes, or one every ``every_sec`` seconds when given."""
        found = []
        for recording in self.recordings:
            for frame in (recording.keyframes if every_sec is None else _every(recording.frames, every_sec)):
                found += self._counts(recording, frame, min_side, min_visible)
        return found

    def _counts(self, recording: AnnotatedRecording, frame: FrameObjects, min_side: float,
                min_visible: float) -> list[tuple[AnnotatedRecording, FrameObjects, str, int]]:
        found = []
        for category in sorted(frame.categories()):
            boxes = [box for box in frame.boxes if box.category == category]
            if all(self.countable(frame, box, min_side, min_visible) for box in boxes):
                found.append((recording, frame, category, len(boxes)))
        return found

    @staticmethod
    def countable(frame: FrameObjects, box: ObjectBox, min_side: float, min_visible: float) -> bool:
        """Inside the frame, ``min_side`` of its longer side at least, ``min_visible`` unoccluded."""
        x, y, w, h = box.bbox
        inside = x >= 1 and y >= 1 and x + w <= frame.width - 1 and y + h <= frame.height - 1
        visible = box.visible_fraction is None or box.visible_fraction >= min_visible
        return inside and visible and min(w, h) >= min_side * max(frame.width, frame.height)

    def by_category(self) -> dict[str, list[Instance]]:
        grouped: dict[str, list[Instance]] = {}
        for instance in self.instances():
            grouped.setdefault(instance.box.category, []).append(instance)
        return dict(sorted(grouped.items()))

    def whole(self, frame: FrameObjects, box: ObjectBox) -> bool:
        """Inside the frame (not touching an edge), at least ``min_box`` px, mostly unoccluded."""
        x, y, w, h = box.bbox
        inside = x >= 1 and y >= 1 and x + w <= frame.width - 1 and y + h <= frame.height - 1
        visible = box.visible_fraction is None or box.visible_fraction >= 0.9
        return inside and visible and min(w, h) >= self.min_box

    def crop(self, instance: Instance, context: float = 1.15) -> np.ndarray:
        """The instance's square crop; the same array object each time (read-only), so its JPEG is
        encoded once per build."""
        key = (instance.key, instance.box.bbox, context)
        if key not in self._crops:
            self._crops[key] = self._crop(instance, context)
            self._crops[key].flags.writeable = False
        return self._crops[key]

    def _crop(self, instance: Instance, context: float) -> np.ndarray:
        image = instance.recording.image(instance.frame)
        scale = instance.recording.scale(instance.frame)
        x, y, w, h = (v * scale for v in instance.box.bbox)
        side = max(w, h) * context
        left, top = x + w / 2 - side / 2, y + h / 2 - side / 2
        return resize(padded_region(image, left, top, side), self.crop_size)


def padded_region(image: np.ndarray, left: float, top: float, side: float) -> np.ndarray:
    """The square ``[left, left+side) x [top, top+side)``, filled with the mean colour outside the image."""
    size = max(1, round(side))
    x0, y0 = round(left), round(top)
    out = np.empty((size, size, 3), dtype=np.uint8)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(image.shape[1], x0 + size), min(image.shape[0], y0 + size)
    if (sx0, sy0, sx1, sy1) != (x0, y0, x0 + size, y0 + size):  # only then is any of it outside: the mean is costly
        out[:] = image.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    width, height = (size, size) if isinstance(size, int) else size
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def plain_canvas(height: int, width: int, colour: Sequence[int]) -> np.ndarray:
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = np.asarray(colour, dtype=np.uint8)
    return canvas


def paste(canvas: np.ndarray, sprite: np.ndarray, left: int, top: int) -> None:
    canvas[top:top + sprite.shape[0], left:left + sprite.shape[1]] = sprite


def scatter_positions(rng, count: int, sprite: int, canvas: int, tries: int = 400) -> list[tuple[int, int]] | None:
    """``count`` non-overlapping top-left corners for ``sprite``-px squares on a ``canvas``-px square."""
    placed: list[tuple[int, int]] = []
    for _ in range(tries):
        if len(placed) == count:
            break
        left, top = rng.randrange(0, canvas - sprite + 1), rng.randrange(0, canvas - sprite + 1)
        if all(abs(left - x) >= sprite + 2 or abs(top - y) >= sprite + 2 for x, y in placed):
            placed.append((left, top))
    return placed if len(placed) == count else None


def pastel(rng) -> tuple[int, int, int]:
    return tuple(rng.randrange(150, 246) for _ in range(3))


def _every(frames: list[FrameObjects], seconds: float) -> list[FrameObjects]:
    chosen, next_time = [], float("-inf")
    for frame in frames:
        if frame.time_sec >= next_time - 1e-6:
            chosen.append(frame)
            next_time = frame.time_sec + seconds
    return chosen


def sprite_scene(sprite_source: np.ndarray, count: int, rng, canvas: int = 224, sprite: int = 40) -> np.ndarray | None:
    """``count`` copies of an object crop pasted, not overlapping, on a plain background (None: no room)."""
    corners = scatter_positions(rng, count, sprite, canvas)
    if corners is None:
        return None
    image = plain_canvas(canvas, canvas, pastel(rng))
    small = resize(sprite_source, sprite)
    for left, top in corners:
        paste(image, small, left, top)
    return image
