"""Deterministic, atomic file output for the synthetic corpora: JSON, CSV text and mp4 video.

Every file is written to a hidden temp name in its folder and moved into place with ``os.replace``, so
an interrupted run never leaves a half-written file under a name a loader would pick up.

Videos are byte-identical for the same frames because of three choices, each found by encoding the
same frames many times in one process (PyAV 18, FFmpeg 8, x264 core 164):

* libx264 runs single-threaded: its output depends on the thread count, which defaults to the CPU count;
* x264's macroblock-tree rate control is off (``mbtree=0``): with it on, repeated single-threaded
  encodes of identical frames gave different bytes (rarely on their own, in most runs once torch had
  been imported into the process). It costs ~1.5x the file size at 224 px, for the same quality (crf 23);
* frames reach the encoder already in yuv420p, converted here with integer BT.601 arithmetic, so no
  colour conversion inside FFmpeg can vary.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np

X264_OPTIONS = {"crf": "23", "preset": "veryfast", "threads": "1", "x264-params": "mbtree=0"}


def _temp_for(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_for(target)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def write_text_atomic(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    return write_bytes_atomic(path, text.encode(encoding))


def write_json_atomic(path: str | os.PathLike, data: object) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def write_video_deterministic(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: int) -> Path:
    """Like ``babyvlm.media.write_video`` (libx264, yuv420p, crf 23, veryfast, atomic), made reproducible."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
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
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def rgb_to_yuv420p(frame: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB (even H, W) -> the (H*3/2, W) planar yuv420p array, BT.601 limited range, bit-exact."""
    height, width = frame.shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"yuv420p needs even frame sizes, got {width}x{height}")
    rgb = frame.astype(np.int32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luma = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    # chroma from the 2x2 average of RGB (rounded), as one sample per block
    pooled = (rgb[0::2, 0::2] + rgb[1::2, 0::2] + rgb[0::2, 1::2] + rgb[1::2, 1::2] + 2) >> 2
    pr, pg, pb = pooled[..., 0], pooled[..., 1], pooled[..., 2]
    cb = ((-38 * pr - 74 * pg + 112 * pb + 128) >> 8) + 128
    cr = ((112 * pr - 94 * pg - 18 * pb + 128) >> 8) + 128
    planes = np.concatenate([luma.ravel(), cb.ravel(), cr.ravel()])
    return np.clip(planes, 0, 255).astype(np.uint8).reshape(height * 3 // 2, width)


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
