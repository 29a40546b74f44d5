"""What both corpus writers share: splitting the length into videos, rendering a world to mp4 + COCO
objects, and writing a corpus folder under its ground-truth manifest.

Rerun policy (documented for users in ``babyvlm synth --help``): ``OUT/synthetic.json`` is written first
(``"complete": false``) and last (``"complete": true``, with every file's sha256).

* same options, complete, every file present with its recorded hash -> nothing is rewritten (skip);
* same options otherwise (an interrupted run, a deleted or edited file) -> every file is regenerated;
  generation is deterministic, so regenerated files are byte-identical to the lost ones;
* different options -> refused with a ``ConfigError`` unless ``overwrite=True``, which also deletes the
  files the old manifest lists that the new corpus does not have;
* a non-empty folder without a manifest is refused unless ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from babyvlm import __version__
from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import atomic_write_text, load_json
from babyvlm.media import write_video
from babyvlm.plugins.synthetic.fileio import MANIFEST_NAME, sha256_of, write_json
from babyvlm.plugins.synthetic.vocabulary import categories_json
from babyvlm.plugins.synthetic.world import VideoWorld, Visible

MANIFEST_SCHEMA = "babyvlm.synthetic/1"
GENERATOR = f"babyvlm {__version__} synthetic/1"
MIN_VIDEO_SECONDS = 4.0
# Videos rendered at once. Each video has its own seed and its own files, so the output is byte-identical
# to a serial run; x264 and the large numpy operations release the GIL, so threads use both cores.
VIDEO_THREADS = max(1, min(2, os.cpu_count() or 1))


def write_corpus(out: Path, corpus_format: str, options: dict[str, Any],
                 write_files: Callable[[Path], tuple[dict[str, Any], list[str]]], *, overwrite: bool,
                 progress: Callable[[str], None] | None) -> dict[str, Any]:
    """Generate (or verify) a corpus in ``out`` under the rerun policy above; returns the manifest.

    ``write_files(out)`` writes every file and returns the manifest's body and the files it wrote
    (relative to ``out``); it is not called when the folder already holds this corpus.
    """
    guard = ManifestGuard(out, corpus_format, options, overwrite=overwrite)
    existing = guard.start(progress)
    if existing is not None:
        return existing
    body, written = write_files(out)
    return guard.finish(body, written)


def split_frames(rng: np.random.Generator, minutes: float, fps: int, wanted: int) -> np.ndarray:
    """Frame counts of ``wanted`` videos (fewer where they would be under ``MIN_VIDEO_SECONDS``) summing
    to ``minutes`` of video, each within about 30 % of the mean length."""
    total = max(1, round(minutes * 60 * fps))
    count = max(1, min(wanted, int(total // (MIN_VIDEO_SECONDS * fps))))
    weights = rng.uniform(0.7, 1.3, count)
    frames = np.floor(weights / weights.sum() * total).astype(int)
    frames[: total - int(frames.sum())] += 1
    return frames


def map_videos(write_one: Callable[..., Any], *arguments: Iterable[Any]) -> Iterator[Any]:
    """``write_one`` over the videos' arguments on ``VIDEO_THREADS`` threads; results in video order."""
    if VIDEO_THREADS == 1:
        yield from map(write_one, *arguments)
        return
    pool = ThreadPoolExecutor(VIDEO_THREADS, thread_name_prefix="babyvlm-video")
    try:
        yield from pool.map(write_one, *arguments)
    finally:  # a failed video (a full disk) stops the videos not yet started instead of rendering them all
        pool.shutdown(wait=True, cancel_futures=True)


def render_video(world: VideoWorld, path: Path) -> list[list[Visible]]:
    """Encode every frame of ``world`` to ``path``; return what was visible in each frame."""
    visibility: list[list[Visible]] = []

    def frames():
        for frame, visible in world.frames():
            visibility.append(visible)
            yield frame

    write_video(path, frames(), int(world.fps))
    return visibility


def render_annotated(world: VideoWorld, video: Path, objects: Path) -> list[list[Visible]]:
    """Write ``world`` as the mp4 ``video`` and its object annotations as ``objects``; return what was visible
    in each frame."""
    visibility = render_video(world, video)
    write_objects(objects, objects_json(video.name, world, visibility))
    return visibility


def objects_json(video_name: str, world: VideoWorld, visibility: list[list[Visible]]) -> dict[str, Any]:
    """COCO-style per-frame object annotations (only objects that are really visible)."""
    size, fps = world.size, world.fps
    images, annotations = [], []
    for index, visible in enumerate(visibility):
        images.append({"id": index, "frame_index": index, "time_sec": round(index / fps, 3), "width": size, "height": size})
        for v in visible:
            annotations.append({"id": len(annotations), "image_id": index, "category_id": v.category_id,
                                "bbox": list(v.bbox), "area": float(v.area), "track_id": v.track_id,
                                "visible_fraction": v.fraction})
    return {"video": video_name, "fps": fps, "width": size, "height": size, "categories": categories_json(),
            "images": images, "annotations": annotations, "tracks": world.track_table()}


def write_objects(path: Path, data: dict[str, Any]) -> None:
    """Annotation files are large: compact JSON, still one deterministic byte string."""
    atomic_write_text(path, json.dumps(data, separators=(",", ":")) + "\n")


def seed_for(seed: int, *keys: int) -> np.random.SeedSequence:
    """Independent, reproducible streams per video (and per purpose within a video)."""
    return np.random.SeedSequence([seed, *keys])


def check_video_options(minutes: float, fps: int, size: int, video_minutes: float) -> None:
    """The options every synthetic corpus shares: its length, frame rate, frame size and video length."""
    if not minutes > 0:
        raise ConfigError(f"minutes must be > 0, got {minutes!r}")
    if not 1 <= fps <= 60:
        raise ConfigError(f"fps must be 1-60, got {fps!r}")
    if not 32 <= size <= 1024 or size % 2:
        raise ConfigError(f"size must be an even number of pixels in 32-1024, got {size!r}")
    if not video_minutes > 0:
        raise ConfigError(f"video_minutes must be > 0, got {video_minutes!r}")


class ManifestGuard:
    """Decides whether a corpus folder can be (re)written, and records the manifest around the writes."""

    def __init__(self, out: Path, corpus_format: str, options: dict[str, Any], *, overwrite: bool):
        self.out, self.format, self.options, self.overwrite = out, corpus_format, options, overwrite
        self.path = out / MANIFEST_NAME
        self.previous = self._read_previous()

    def _read_previous(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            data = load_json(self.path)
        except DataError as exc:
            raise DataError(f"{exc}; delete it or the folder") from exc
        if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
            raise DataError(f"{self.path}: not a babyvlm synthetic manifest (schema {MANIFEST_SCHEMA!r} expected)")
        return data

    def start(self, progress: Callable[[str], None] | None = None) -> dict[str, Any] | None:
        """Check the folder; return its manifest if it already holds this corpus (nothing to write), else
        begin the (re)write and return None."""
        self.check()
        if self.up_to_date():
            if progress:
                progress(f"{self.out}: already holds this corpus (all files match {self.path.name}); nothing rewritten")
            return self.previous
        self.begin()
        return None

    def check(self) -> None:
        """Refuse to mix two different corpora in one folder."""
        previous = self.previous
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"{self.out} is a file, not a folder for a corpus")
        if previous is None:
            if self.out.exists() and any(self.out.iterdir()) and not self.overwrite:
                raise ConfigError(f"{self.out} is not empty and holds no {MANIFEST_NAME}; choose an empty folder "
                                  f"or pass --overwrite")
            return
        same = previous.get("format") == self.format and previous.get("options") == self.options
        if not same and not self.overwrite:
            raise ConfigError(f"{self.out} holds a {previous.get('format')} corpus made with options "
                              f"{previous.get('options')}, not {self.options}; choose another folder or pass --overwrite")

    def up_to_date(self) -> bool:
        """True when the folder already holds exactly this corpus (every file with its recorded hash)."""
        previous = self.previous
        if not previous or not previous.get("complete") or previous.get("options") != self.options:
            return False
        if previous.get("format") != self.format or previous.get("generator") != GENERATOR:
            return False
        for rel, digest in previous.get("sha256", {}).items():
            path = self.out / rel
            if not path.is_file() or sha256_of(path) != digest:
                return False
        return True

    def _owned_before(self) -> set[str]:
        """Files an earlier corpus in this folder wrote (kept across interrupted runs until removed)."""
        previous = self.previous or {}
        return set(previous.get("sha256", {})) | set(previous.get("earlier_files", []))

    def begin(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        for leftover in [*self.out.rglob(".*.tmp"), *self.out.rglob("*.partial")]:  # from an interrupted run
            leftover.unlink(missing_ok=True)
        header = self._header(complete=False)
        header["earlier_files"] = sorted(self._owned_before())
        write_json(self.path, header)

    def finish(self, body: dict[str, Any], written: list[str]) -> dict[str, Any]:
        self._remove_stale(set(written))
        manifest = self._header(complete=True)
        manifest["sha256"] = {rel: sha256_of(self.out / rel) for rel in sorted(written)}
        manifest.update(body)
        write_json(self.path, manifest)
        return manifest

    def _header(self, *, complete: bool) -> dict[str, Any]:
        return {"schema": MANIFEST_SCHEMA, "format": self.format, "generator": GENERATOR,
                "seed": self.options["seed"], "options": self.options, "complete": complete}

    def _remove_stale(self, keep: set[str]) -> None:
        for rel in sorted(self._owned_before()):
            path = (self.out / rel).resolve()
            if rel not in keep and path.is_file() and self.out.resolve() in path.parents:
                os.remove(path)
