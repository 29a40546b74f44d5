"""Routing decoded frames to planned clips in one sequential pass over a video.

Each target time gets the last frame shown at or before it. Frames nobody needs are dropped
without being resized; a needed frame is resized and JPEG-encoded once, however many samples use it.
Clips are handed out as soon as the stream has passed their last target, so memory holds only the
frames of clips still open; decoding stops once every target is served.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from babyvlm.media import LazyFrame, encode_jpeg, scaled_size
from babyvlm.plugins.pretraining_set.clips import PlannedClip


def resize_longer_side(frame: np.ndarray, size: int) -> np.ndarray:
    """Shrink an RGB array so the longer side is ``size`` (Pillow bicubic, antialiased); never enlarges."""
    height, width = frame.shape[:2]
    target = scaled_size(width, height, size)
    if target == (width, height):
        return frame
    return np.asarray(Image.fromarray(frame).resize(target, Image.Resampling.BICUBIC))


def storage_pixels(frame: np.ndarray | LazyFrame, size: int) -> np.ndarray:
    """A decoded frame (array or lazy decoder frame) as the RGB array to store, longer side ``size``."""
    if isinstance(frame, LazyFrame):
        return frame.to_rgb(size)
    return resize_longer_side(frame, size)


@dataclass
class RoutedFrame:
    """One decoded frame, resized for storage; its JPEG is made on first use and reused."""

    index: int
    time: float
    pixels: np.ndarray
    quality: int = 90
    _jpeg: bytes | None = field(default=None, repr=False)

    def jpeg(self) -> bytes:
        if self._jpeg is None:
            self._jpeg = encode_jpeg(self.pixels, quality=self.quality)
        return self._jpeg


class _Decoded:
    """A frame as decoded; turned into a ``RoutedFrame`` only if some target needs it."""

    __slots__ = ("index", "time", "raw", "routed")

    def __init__(self, index: int, time: float, raw: Any):
        self.index, self.time, self.raw, self.routed = index, time, raw, None

    def route(self, prepare: Callable[[Any], np.ndarray], quality: int) -> RoutedFrame:
        if self.routed is None:
            self.routed = RoutedFrame(self.index, self.time, prepare(self.raw), quality)
            self.raw = None
        return self.routed


def route_frames(frames: Iterable[tuple[float, Any]], clips: list[PlannedClip], *,
                 prepare: Callable[[Any], np.ndarray], quality: int = 90,
                 frame_period: float = 0.0) -> Iterator[tuple[PlannedClip, dict[float, RoutedFrame] | None]]:
    """Yield ``(clip, {target_time: frame})`` per clip; ``None`` for clips past the end of the video.

    Frames may be arrays or lazy decoder frames: ``prepare`` (convert + resize) runs only on used ones.
    ``frame_period`` (1/fps) bounds how far past the last frame a target may still use it.
    """
    targets = sorted((t, pos) for pos, clip in enumerate(clips) for t in clip.target_times())
    assigned: list[dict[float, RoutedFrame]] = [{} for _ in clips]
    remaining = [len(clip.target_times()) for clip in clips]
    cursor, previous, last_delta = 0, None, frame_period
    iterator = iter(frames)
    for index, (time, raw) in enumerate(iterator):
        current = _Decoded(index, time, raw)
        done = []
        while cursor < len(targets) and targets[cursor][0] < time:
            target, pos = targets[cursor]
            assigned[pos][target] = (previous or current).route(prepare, quality)
            remaining[pos] -= 1
            if remaining[pos] == 0:
                done.append(pos)
            cursor += 1
        for pos in sorted(done):
            yield clips[pos], assigned[pos]
            assigned[pos] = {}
        if previous is not None and time > previous.time:
            last_delta = frame_period or time - previous.time
        previous = current
        if cursor == len(targets):
            break
    yield from _finish(targets[cursor:], clips, assigned, remaining, previous, last_delta, prepare, quality)
    close = getattr(iterator, "close", None)
    if close is not None:
        close()  # stop the decoder early when every target is served


def _finish(targets, clips, assigned, remaining, last: _Decoded | None, period: float, prepare, quality):
    """Targets at or after the last frame: within one frame period they use it, beyond it the clip is lost."""
    done, lost = [], set()
    for target, pos in targets:
        if last is not None and target < last.time + max(period, 1e-6):
            assigned[pos][target] = last.route(prepare, quality)
            remaining[pos] -= 1
            if remaining[pos] == 0:
                done.append(pos)
        else:
            lost.add(pos)
    for pos in sorted(set(done) | lost):
        yield clips[pos], (None if pos in lost else assigned[pos])
