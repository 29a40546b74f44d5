"""Video and image I/O shared by plugins: mp4 encode/decode with PyAV, JPEG bytes with Pillow.

Images from outside (task items, served requests, study stimuli) are decoded by ``decode_image`` only,
which refuses one whose header declares more than ``MAX_IMAGE_PIXELS`` before decoding it (a PNG
decompression bomb). Video decoding is sequential (one pass per video); corrupt or truncated files raise ``DataError`` naming
the file instead of a traceback from inside FFmpeg, and a FIFO or device is refused before FFmpeg
opens it. ``iter_frames`` yields every frame as an RGB array; ``iter_lazy_frames`` is the same pass
yielding ``LazyFrame``s that are converted (and scaled) only when used, for passes that keep few of
the frames they decode.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from babyvlm.core.errors import DataError
from babyvlm.core.io import atomic_output, regular_file


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


# Byte-reproducible x264 output (same frames -> same file): single-threaded (output depends on the
# thread count), macroblock-tree rate control off (repeated encodes differed with it on, ~1.5x size
# cost at 224 px), and frames handed over already in yuv420p so no FFmpeg colour conversion varies.
X264_OPTIONS = {"crf": "23", "preset": "veryfast", "threads": "1", "x264-params": "mbtree=0"}


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: int) -> Path:
    """Encode HxWx3 uint8 RGB frames (even sizes) to an H.264 mp4, reproducibly and atomically."""
    target = Path(path)
    with atomic_output(target) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = None
        for frame in frames:
            if stream is None:
                height, width = frame.shape[:2]
                stream = container.add_stream("libx264", rate=fps)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.options = dict(X264_OPTIONS)
                stream.codec_context.thread_count = 1
            video_frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(frame), format="yuv420p")
            for packet in stream.encode(video_frame):
                container.mux(packet)
        if stream is None:
            raise ValueError(f"no frames to write to {target}")
        for packet in stream.encode():
            container.mux(packet)
    return target


def rgb_to_yuv420p(frame: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB (even H, W) -> the (H*3/2, W) planar yuv420p array, BT.601 limited range, bit-exact."""
    height, width = frame.shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"yuv420p needs even frame sizes, got {width}x{height}")
    # narrow integers, exact: luma sums reach 56,228 (uint16), chroma sums lie within +-28,688 (int16); the
    # results stay in 16..235 / 16..240, so nothing needs clipping
    rgb = frame.astype(np.uint16)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    pixels = height * width
    planes = np.empty(pixels * 3 // 2, np.uint8)
    luma = 66 * r + 129 * g + 25 * b
    luma += 128
    luma >>= 8
    luma += 16
    planes[:pixels] = luma.ravel()
    # chroma from the rounded 2x2 average of RGB, one sample per block
    pooled = ((rgb[0::2, 0::2] + rgb[1::2, 0::2] + rgb[0::2, 1::2] + rgb[1::2, 1::2] + 2) >> 2).astype(np.int16)
    pr, pg, pb = pooled[..., 0], pooled[..., 1], pooled[..., 2]
    quarter = pixels // 4
    planes[pixels:pixels + quarter] = (((-38 * pr - 74 * pg + 112 * pb + 128) >> 8) + 128).ravel()
    planes[pixels + quarter:] = (((112 * pr - 94 * pg - 18 * pb + 128) >> 8) + 128).ravel()
    return planes.reshape(height * 3 // 2, width)


def _open(path: Path):
    if os.path.exists(path):  # (a missing file is FFmpeg's "cannot open video" below)
        regular_file(path)  # FFmpeg would block forever on a FIFO and read a device without end
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
        if not math.isfinite(fps) or fps < 0:
            raise DataError(f"{path}: unusable frame rate {fps!r} in the video header")
        frames = stream.frames
        if not frames and stream.duration and stream.time_base:
            frames = round(float(stream.duration * stream.time_base) * fps)
        return VideoInfo(path, fps, int(frames or 0), stream.codec_context.width, stream.codec_context.height)


def scaled_size(width: int, height: int, longer_side: int) -> tuple[int, int]:
    """``(width, height)`` shrunk so the longer side is ``longer_side``; never enlarged; 0 keeps the size."""
    longer = max(width, height)
    if longer_side <= 0 or longer <= longer_side:
        return width, height
    scale = longer_side / longer
    return max(1, round(width * scale)), max(1, round(height * scale))


class LazyFrame:
    """A decoded frame still in the decoder's pixel format; ``to_rgb`` converts (and scales) it on demand.

    Converting a frame to RGB costs about as much as decoding it, so a pass that keeps one frame in 30
    converts only those. A scaled frame is converted in the same swscale call (area averaging: an
    antialiased downscale, several times cheaper than converting at full size and resizing after).
    """

    __slots__ = ("_frame", "_path", "_rotation")

    def __init__(self, frame: av.VideoFrame, rotation: int, path: Path):
        self._frame, self._rotation, self._path = frame, rotation, path

    def to_rgb(self, longer_side: int = 0) -> np.ndarray:
        """HxWx3 uint8 RGB, shrunk so the longer side is at most ``longer_side`` (0: full size)."""
        frame = self._frame
        width, height = scaled_size(frame.width, frame.height, longer_side)
        try:
            if (width, height) == (frame.width, frame.height):
                array = frame.to_ndarray(format="rgb24")
            else:
                array = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
        except av.FFmpegError as exc:
            raise DataError(f"{self._path}: cannot convert the frame at {frame.time}s to RGB ({exc})") from exc
        return np.ascontiguousarray(array[::-1, ::-1]) if self._rotation == 180 else array


def iter_lazy_frames(path: str | os.PathLike, *, rotation: int = 0, threads: int = 1) -> Iterator[tuple[float, LazyFrame]]:
    """Yield ``(time_sec, LazyFrame)`` for every frame, in one sequential pass; nothing is converted."""
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
                decoded += 1
                yield float(frame.time if frame.time is not None else 0.0), LazyFrame(frame, rotation, path)
        except av.FFmpegError as exc:
            raise DataError(f"{path}: corrupt video after {decoded} frames ({exc})") from exc
        if decoded == 0:
            raise DataError(f"{path}: video decodes to no frames (truncated or corrupt)")


def iter_frames(path: str | os.PathLike, *, rotation: int = 0, threads: int = 1) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(time_sec, rgb_frame)`` for every frame, in one sequential pass."""
    with contextlib.closing(iter_lazy_frames(path, rotation=rotation, threads=threads)) as frames:
        for time, frame in frames:
            yield time, frame.to_rgb()


def encode_jpeg(image: np.ndarray | Image.Image, quality: int = 90) -> bytes:
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buffer = io.BytesIO()
    pil.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# the most pixels an image from outside may have (about 8000 x 8000); a small PNG can declare 100000 x 100000
MAX_IMAGE_PIXELS = 64 * 1024 * 1024


class ImageTooLarge(DataError):
    """An image whose header declares more pixels than allowed (a decompression bomb, or just too big)."""


def decode_image(data: bytes, where: str = "image", max_pixels: int = MAX_IMAGE_PIXELS, kind: str = "image") -> np.ndarray:
    """Image bytes (JPEG, PNG, ...) from anywhere -> HxWx3 uint8 RGB (read-only): the one decoder every path
    that reads untrusted images uses. The size is read from the header first and an image of more than
    ``max_pixels`` is refused (``ImageTooLarge``) before a pixel is decoded; anything undecodable is a
    ``DataError`` naming ``where``. An RGB image is not converted: ``convert`` would copy it."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ImageTooLarge(f"{where}: image of {width} x {height} pixels is larger than the "
                                    f"{max_pixels:,} pixels allowed; refused before decoding")
            img.load()
            return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    except DataError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own limit, met while reading the header
        raise ImageTooLarge(f"{where}: image larger than the {max_pixels:,} pixels allowed (its header declares "
                            f"more than Pillow's own limit); refused before decoding") from exc
    except Exception as exc:  # Pillow raises several types for corrupt data
        raise DataError(f"{where}: cannot decode {kind} ({type(exc).__name__}: {exc})") from exc


def decode_jpeg(data: bytes, where: str = "image") -> np.ndarray:
    """JPEG bytes -> HxWx3 uint8 RGB (``decode_image``, under the name store readers use)."""
    return decode_image(data, where, kind="JPEG")


BLANK_KINDS = ("grey", "mean_colour")
BLANK_SIZE = 224
BLANK_GREY = 128


def constant_blank() -> np.ndarray:
    """The one picture a blind baseline sees in every slot: ``BLANK_SIZE``² of grey ``BLANK_GREY``
    (read-only; identical for every image, so no statistic of the real picture reaches the model)."""
    global _CONSTANT_BLANK
    if _CONSTANT_BLANK is None:
        _CONSTANT_BLANK = np.full((BLANK_SIZE, BLANK_SIZE, 3), BLANK_GREY, dtype=np.uint8)
        _CONSTANT_BLANK.flags.writeable = False
    return _CONSTANT_BLANK


_CONSTANT_BLANK: np.ndarray | None = None


def blank_image(rgb: np.ndarray, kind: str = "grey") -> np.ndarray:
    """What a blind twin trains on instead of ``rgb``: ``grey`` (the default: a true blind baseline), an
    image of ``rgb``'s size filled with ``BLANK_GREY`` — every picture the same grey, so after the
    encoder's pad-and-resize every slot is one identical tensor (the ``blind`` eval adapter goes further and
    passes ``constant_blank()`` itself); ``mean_colour``, filled with ``rgb``'s own mean colour (a named
    option only — equal pictures get equal blanks, so it leaks which options match)."""
    if kind == "grey":
        return np.full_like(rgb, BLANK_GREY)
    if kind != "mean_colour":
        raise ValueError(f"blank kind must be one of {BLANK_KINDS}, got {kind!r}")
    colour = np.round(rgb.reshape(-1, rgb.shape[-1]).mean(axis=0)).astype(np.uint8)
    canvas = np.empty_like(rgb)
    canvas[:] = colour
    return canvas


def blank_images(item: dict, kind: str = "grey") -> dict:
    """A dataset item (``{"images": [arrays], ...}``) with every image blanked (see ``blank_image``)."""
    return dict(item, images=[blank_image(image, kind) for image in item["images"]])
