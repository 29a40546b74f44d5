"""Deterministic, atomic file output for the synthetic corpora: JSON, CSV text and mp4 video.

Every file is written through ``babyvlm.core.io`` (a unique hidden temp name in its folder, moved into
place with ``os.replace``, removed on failure), so an interrupted run never leaves a half-written file
under a name a loader would pick up. This module adds the corpora's JSON layout and file hashing.

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
import os
from pathlib import Path

from babyvlm.core.io import atomic_write_json

MANIFEST_NAME = "synthetic.json"  # a corpus's ground truth, with its "complete" flag


def write_json(path: str | os.PathLike, data: object) -> Path:
    """The corpora's JSON layout (``indent=1``), written atomically by ``core.io``."""
    return atomic_write_json(path, data, indent=1)


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
