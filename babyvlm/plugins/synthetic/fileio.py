"""Deterministic, atomic file output for the synthetic corpora: JSON, CSV text and mp4 video.

Every file is written to a hidden temp name in its folder and moved into place with ``os.replace``, so
an interrupted run never leaves a half-written file under a name a loader would pick up.

Videos go through ``babyvlm.media.write_video``, which is byte-reproducible for the same frames
(its module says how). The choices were found by encoding the same frames many times in one
process (PyAV 18, FFmpeg 8, x264 core 164):

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
from pathlib import Path


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


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
