"""Placing detector output on videos and writing one ``<stem>.objects.json`` per recording.

``VideoIndex`` knows the videos (one ``--video``, or every video under ``--videos``) and places each
``Observation`` on a (recording, frame index) by ``FrameNumbering``: frame index = (the number in the
name, or the given frame number, - ``first``) x ``step`` + ``offset``. Ultralytics numbers the frames it
read from 1 and reads every ``vid_stride``-th frame, the last of each stride (``first=1, step=S,
offset=S-1``); an ffmpeg dump of every S-th frame numbered from 1 is ``first=1, step=S``. What cannot be
placed is counted: ``unnamed_frame`` (no number in the name),
``unknown_recording`` (no video of that name), ``unknown_image`` (a result for an image the dataset
does not list). ``write_objects`` checks every target before writing any (a file another tool wrote is
replaced only with ``overwrite``), writes each recording's file and returns the run's report.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import atomic_write_json
from babyvlm.plugins.annotation_import.objects import (
    ImportSettings,
    ObjectsCollector,
    VideoGeometry,
    check_replaceable,
)
from babyvlm.plugins.annotation_import.readers import Observation, frame_key


@dataclass(frozen=True)
class FrameNumbering:
    """How the numbers in frame names map to the video's frame indices (see the module docstring)."""

    first: int = 0
    step: int = 1
    offset: int = 0

    def __post_init__(self) -> None:
        if self.step < 1 or self.offset < 0:
            raise ConfigError(f"--frame-step must be >= 1 and --frame-offset >= 0, got {self.step} and {self.offset}")

    def index(self, number: int) -> int:
        return (number - self.first) * self.step + self.offset

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")
OBJECTS_SUFFIX = ".objects.json"

Log = Callable[[str], None]


class VideoIndex:
    """The videos detector output can be placed on, by stem."""

    def __init__(self, videos: dict[str, Path], single: str | None = None):
        self.videos, self.single = videos, single

    @classmethod
    def of(cls, video: str | os.PathLike | None = None, videos: str | os.PathLike | None = None) -> VideoIndex:
        if (video is None) == (videos is None):
            raise ConfigError("give the video the detections belong to (--video FILE) or a folder of videos "
                              "(--videos DIR), one of the two")
        if video is not None:
            path = Path(video)
            if not path.is_file():
                raise ConfigError(f"--video {path}: no such file")
            return cls({path.stem: path}, single=path.stem)
        return cls(find_videos(Path(videos)))

    def locate(self, found: Observation, numbering: FrameNumbering) -> tuple[str, int] | str:
        """``(recording, frame index)``, or the reason it cannot be placed."""
        if found.name is None:
            if found.frame is None:
                return found.dropped or "unknown_image"
            if self.single is None:
                raise ConfigError("detections name frames by number only (no --images dataset): give the one "
                                  "video they belong to with --video")
            return self.single, numbering.index(found.frame)
        key = frame_key(found.name)
        if key is None:
            return "unnamed_frame"
        prefix, folder, number = key
        if self.single is not None:
            return self.single, numbering.index(number)
        for candidate in (prefix, folder):
            if candidate in self.videos:
                return candidate, numbering.index(number)
        return "unknown_recording"


def find_videos(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        raise ConfigError(f"--videos {root}: not a folder")
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file():
            if path.stem in found:
                raise ConfigError(f"--videos {root}: two videos named {path.stem!r} ({found[path.stem]} and {path}); "
                                  f"which one the boxes belong to is ambiguous")
            found[path.stem] = path
    if not found:
        raise ConfigError(f"--videos {root}: no video files ({', '.join(VIDEO_SUFFIXES)}) under it")
    return found


def place(observations: Iterable[Observation], index: VideoIndex, settings: ImportSettings, importer: str,
          numbering: FrameNumbering = FrameNumbering()) -> tuple[dict[str, ObjectsCollector], ObjectsCollector]:
    """Every observation on its recording's collector; the ones that fit no recording on ``unplaced``."""
    collectors: dict[str, ObjectsCollector] = {}
    unplaced = ObjectsCollector(VideoGeometry("", 0.0, 1, 1), settings, importer)
    for found in observations:
        located = index.locate(found, numbering)
        if isinstance(located, str):
            if found.found is None and not found.dropped:  # a frame without boxes
                unplaced.drop_frame(located, found.input_file, found.where)
            else:
                unplaced.drop(located, found.input_file, found.where)
            continue
        stem, frame = located
        if stem not in collectors:
            collectors[stem] = ObjectsCollector(VideoGeometry.probe(index.videos[stem]), settings, importer)
        collector = collectors[stem]
        if found.dropped:
            collector.reject(frame, found.dropped, found.input_file, found.where)
        elif found.found is None:
            collector.add_frame(frame, found.input_file, found.where)
        else:
            collector.add(frame, found.found, found.input_file, found.where, found.image_size)
    return collectors, unplaced


def write_objects(collectors: dict[str, ObjectsCollector], out_dir: str | os.PathLike, inputs: list[str],
                  unplaced: ObjectsCollector | None = None, overwrite: bool = False, report: str | None = None,
                  log: Log = print) -> dict[str, Any]:
    """Write ``OUT/<stem>.objects.json`` per recording (see the module docstring); returns the report."""
    if not collectors:
        dropped = unplaced.report.summary() if unplaced else "nothing read"
        raise DataError(f"no detection could be placed on a video ({dropped}); check the file names and "
                        f"--video/--videos")
    out = Path(out_dir)
    targets = {stem: out / f"{stem}{OBJECTS_SUFFIX}" for stem in sorted(collectors)}
    for path in targets.values():
        check_replaceable(path, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    recordings = {}
    for stem, path in targets.items():
        recordings[stem] = {"path": str(path), **collectors[stem].write(path, inputs, overwrite=True)}
        log(collectors[stem].summary(path))
    summary: dict[str, Any] = {"inputs": inputs, "recordings": recordings}
    if unplaced is not None and (unplaced.report.total or unplaced.frame_report.total):
        counts = unplaced.counts()
        summary["unplaced"] = {key: counts[key] for key in ("dropped", "frames_dropped", "per_input")}
        summary["unplaced"]["examples"] = {**unplaced.report.examples, **unplaced.frame_report.examples}
        log(f"not placed on any video: boxes {unplaced.report.summary()}; frames {unplaced.frame_report.summary()}")
    if report:
        atomic_write_json(report, summary)
        log(f"report: {report}")
    return summary
