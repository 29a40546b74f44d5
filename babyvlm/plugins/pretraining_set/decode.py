"""One sequential decode pass per video that converts to RGB only the frames somebody uses.

``babyvlm.media.iter_frames`` converts every decoded frame to an RGB array; at 30 fps with one frame
kept per second that conversion is about half of the decode cost. ``iter_lazy_frames`` is the same
pass (same errors, same rotation handling) yielding ``LazyFrame``s instead, and a used frame is
scaled and converted in one swscale call (area averaging: an antialiased downscale, ~7x cheaper than
converting at full size and resizing with Pillow). If ``media.iter_frames`` gains such a mode, this
module can go.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from babyvlm.core.errors import DataError


def scaled_size(width: int, height: int, longer_side: int) -> tuple[int, int]:
    """``(width, height)`` shrunk so the longer side is ``longer_side``; never enlarged; 0 keeps the size."""
    longer = max(width, height)
    if longer_side <= 0 or longer <= longer_side:
        return width, height
    scale = longer_side / longer
    return max(1, round(width * scale)), max(1, round(height * scale))


class LazyFrame:
    """A decoded frame in the decoder's pixel format; ``rgb()`` scales, converts and rotates on demand."""

    __slots__ = ("_frame", "_rotation")

    def __init__(self, frame: av.VideoFrame, rotation: int):
        self._frame, self._rotation = frame, rotation

    def rgb(self, longer_side: int = 0) -> np.ndarray:
        width, height = scaled_size(self._frame.width, self._frame.height, longer_side)
        if (width, height) == (self._frame.width, self._frame.height):
            array = self._frame.to_ndarray(format="rgb24")
        else:
            array = self._frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
        return np.ascontiguousarray(array[::-1, ::-1]) if self._rotation == 180 else array


def iter_lazy_frames(path: str | os.PathLike, *, rotation: int = 0) -> Iterator[tuple[float, LazyFrame]]:
    """Yield ``(time_sec, LazyFrame)`` for every frame, in one single-threaded sequential pass."""
    path = Path(path)
    if rotation not in (0, 180):
        raise DataError(f"{path}: rotation must be 0 or 180, got {rotation}")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise DataError(f"{path}: cannot open video ({exc})") from exc
    with container:
        if not container.streams.video:
            raise DataError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type, stream.thread_count = "SLICE", 1
        decoded = 0
        try:
            for frame in container.decode(stream):
                decoded += 1
                yield float(frame.time if frame.time is not None else 0.0), LazyFrame(frame, rotation)
        except av.FFmpegError as exc:
            raise DataError(f"{path}: corrupt video after {decoded} frames ({exc})") from exc
        if decoded == 0:
            raise DataError(f"{path}: video decodes to no frames (truncated or corrupt)")
