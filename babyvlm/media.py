"""Video and image I/O shared by plugins: mp4 encode/decode with PyAV, JPEG bytes with Pillow.

Decoding is sequential (one pass per video); corrupt or truncated files raise ``DataError`` naming
the file instead of a traceback from inside FFmpeg.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from babyvlm.core.errors import DataError


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: float
    num_frames: int
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps else 0.0


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: int, *, codec: str = "libx264",
                crf: int = 23) -> Path:
    """Encode HxWx3 uint8 frames to an mp4, atomically (a temp file renamed into place)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = None
        for frame in frames:
            if stream is None:
                height, width = frame.shape[:2]
                stream = container.add_stream(codec, rate=fps)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                if codec == "libx264":
                    stream.options = {"crf": str(crf), "preset": "veryfast"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        if stream is None:
            raise ValueError(f"no frames to write to {target}")
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, target)
    return target


def _open(path: Path):
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise DataError(f"{path}: cannot open video ({exc})") from exc


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, frame count and size, read from the container header."""
    path = Path(path)
    with _open(path) as container:
        if not container.streams.video:
            raise DataError(f"{path}: no video stream")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        frames = stream.frames
        if not frames and stream.duration and stream.time_base:
            frames = round(float(stream.duration * stream.time_base) * fps)
        return VideoInfo(path, fps, int(frames or 0), stream.codec_context.width, stream.codec_context.height)


def iter_frames(path: str | os.PathLike, *, rotation: int = 0, threads: int = 1) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(time_sec, rgb_frame)`` for every frame, in one sequential pass."""
    path = Path(path)
    if rotation not in (0, 180):
        raise DataError(f"{path}: rotation must be 0 or 180, got {rotation}")
    with _open(path) as container:
        if not container.streams.video:
            raise DataError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO" if threads > 1 else "SLICE"
        stream.thread_count = threads
        decoded = 0
        try:
            for frame in container.decode(stream):
                array = frame.to_ndarray(format="rgb24")
                if rotation == 180:
                    array = np.ascontiguousarray(array[::-1, ::-1])
                decoded += 1
                yield float(frame.time if frame.time is not None else 0.0), array
        except av.FFmpegError as exc:
            raise DataError(f"{path}: corrupt video after {decoded} frames ({exc})") from exc
        if decoded == 0:
            raise DataError(f"{path}: video decodes to no frames (truncated or corrupt)")


def encode_jpeg(image: np.ndarray | Image.Image, quality: int = 90) -> bytes:
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buffer = io.BytesIO()
    pil.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def decode_jpeg(data: bytes, where: str = "image") -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except Exception as exc:  # Pillow raises several types for corrupt data
        raise DataError(f"{where}: cannot decode JPEG ({type(exc).__name__}: {exc})") from exc
