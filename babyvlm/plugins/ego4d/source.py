"""The ``ego4d`` source: an Ego4D-format root (``ego4d.json``, ``narration.json``, ``<video_uid>.mp4``)
read into one ``Recording`` per narrated video, each narration a short utterance window around its
timestamp. Unusable entries are counted in ``.report``; malformed JSON raises ``DataError`` naming the
file and the key inside it. docs/data-formats.md has the rules.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import load_json
from babyvlm.core.records import Recording, Utterance
from babyvlm.core.sources import DEFAULT_MAX_UTTERANCE_CHARS, ScannedSource, time_problem
from babyvlm.plugins.ego4d.narration import DEFAULT_CAMERA_WEARER, clean_narration, is_summary

if TYPE_CHECKING:
    from babyvlm.media import VideoInfo

SOURCE_NAME = "ego4d"
METADATA_NAME = "ego4d.json"
NARRATION_NAME = "narration.json"
ANNOTATIONS_SUFFIX = ".objects.json"
SPEAKER = "narrator"
DEFAULT_PASSES = ("narration_pass_1",)
DEFAULT_WINDOW = (1.0, 2.0)  # seconds before / after a narration's timestamp
SEARCH_FOLDERS = (".", "annotations", "v1/annotations", "v1", "v2/annotations", "v2")

STRICT_REASONS: dict[str, str] = {
    "narrations_without_video": "narrated video is missing",
    "unknown_video_uid": "narrations for a video_uid that ego4d.json does not list",
    "video_without_narrations": "video has no narrations in the requested passes",
    "duplicate_video": "a video with the same uid was found earlier",
    "bad_narration": "malformed narration",
    "unreadable_video": "video cannot be probed (truncated or corrupt)",
    "duplicate_video_uid": "ego4d.json lists the same video_uid twice",
    "bad_duration": "a video's duration (or fps) is NaN, infinite, zero or negative",
    "bad_video_uid": "a video_uid that cannot name a recording (NUL byte or '/')",
}


@dataclass(frozen=True)
class VideoMeta:
    uid: str
    duration: float | None
    fps: float | None
    width: int | None
    height: int | None
    scenarios: tuple[str, ...]


@dataclass
class _Index:
    metadata: dict[str, VideoMeta] = field(default_factory=dict)
    narrated: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)  # uid -> [(key path, entry)]
    videos: dict[str, Path] = field(default_factory=dict)
    annotations: dict[str, Path] = field(default_factory=dict)
    recordings: list[Recording] = field(default_factory=list)
    unusable: set[str] = field(default_factory=set)  # uids whose metadata was counted as unusable


class Ego4DSource(ScannedSource[_Index]):
    """Ego4D-format root -> ``Recording`` per narrated video present on disk, sorted by video_uid.

    Options (stable names): ``narration_passes`` which passes to read (default ``("narration_pass_1",)``);
    ``window`` (before, after) seconds around each timestamp (default (1.0, 2.0)), clamped to
    [0, duration]; ``camera_wearer`` the phrase replacing the subject ``C`` (default "the person");
    ``strict`` raise ``DataError`` on missing/unknown videos and malformed narrations instead of counting;
    ``metadata_path`` / ``narration_path`` explicit files (relative to the root) instead of searching
    root, root/annotations, root/v1/annotations, ...; ``probe`` read each video header while iterating;
    ``follow_symlinks`` read files whose symlinks lead out of the root (default: counted); ``max_utterance_chars``
    longer narrations are counted as ``utterance_too_long``.
    """

    name = SOURCE_NAME
    root_label = "Ego4D root"
    strict_reasons = STRICT_REASONS

    def __init__(self, root: str | os.PathLike, *, narration_passes: str | Sequence[str] = DEFAULT_PASSES,
                 window: Sequence[float] = DEFAULT_WINDOW, camera_wearer: str = DEFAULT_CAMERA_WEARER,
                 strict: bool = False, metadata_path: str | os.PathLike | None = None,
                 narration_path: str | os.PathLike | None = None, probe: bool = False,
                 follow_symlinks: bool = False, max_utterance_chars: int = DEFAULT_MAX_UTTERANCE_CHARS) -> None:
        super().__init__(root, strict=strict, probe=probe, follow_symlinks=follow_symlinks,
                         max_utterance_chars=max_utterance_chars)
        self.narration_passes = _passes(narration_passes)
        self.window = _window(window)
        if not isinstance(camera_wearer, str) or not camera_wearer.strip():
            raise ConfigError(f"camera_wearer must be a non-empty phrase, got {camera_wearer!r}")
        self.camera_wearer = camera_wearer.strip()
        self.metadata_path = self._locate(METADATA_NAME, metadata_path)
        self.narration_path = self._locate(NARRATION_NAME, narration_path)

    # ---- describing ----------------------------------------------------------------------
    def _describe(self, index: _Index) -> dict[str, Any]:
        return {
            "metadata": self._rel(self.metadata_path),
            "narrations": self._rel(self.narration_path),
            "options": self.options(),
            "videos_listed": len(index.metadata),
            "videos_found": len(index.videos),
            "videos_narrated": len(index.narrated),
            "recordings": len(index.recordings),
            "utterances": sum(len(r.utterances) for r in index.recordings),
            "scenarios": dict(Counter(s for r in index.recordings for s in r.meta["scenarios"]).most_common(10)),
        }

    def summary(self) -> str:
        info = self.describe()
        return (f"ego4d {info['root']}: {info['recordings']} recordings, {info['utterances']} narrations "
                f"({info['videos_found']} videos found, {info['videos_narrated']} narrated, "
                f"{info['videos_listed']} listed)\n  {self.report.summary()}")

    def options(self) -> dict[str, Any]:
        return {"narration_passes": list(self.narration_passes), "window": list(self.window),
                "camera_wearer": self.camera_wearer, "strict": self.strict, "probe": self.probe,
                "follow_symlinks": self.follow_symlinks, "max_utterance_chars": self.max_utterance_chars}

    # ---- scanning ------------------------------------------------------------------------
    def _locate(self, name: str, explicit: str | os.PathLike | None) -> Path:
        if explicit is not None:
            path = self.root / explicit
            if not path.exists():
                raise DataError(f"{path}: {name} not found")
            return path
        for folder in SEARCH_FOLDERS:
            path = self.root / folder / name if folder != "." else self.root / name
            if path.exists() and not path.is_dir():  # a FIFO or device found here is refused when read
                return path
        looked = ", ".join(str(Path(folder) / name) for folder in SEARCH_FOLDERS)
        raise DataError(f"{self.root}: no {name} found (looked in {looked})")

    def _scan_root(self) -> _Index:
        index = _Index()
        index.metadata = self._read_metadata(index)
        index.narrated = self._read_narrations()
        self._find_files(index)
        self._build(index)
        return index

    def _video_paths(self, index: _Index) -> Iterable[Path]:
        return index.videos.values()

    def _read_metadata(self, index: _Index) -> dict[str, VideoMeta]:
        path = self.metadata_path
        data = load_json(path, encoding="utf-8-sig")
        videos = data.get("videos") if isinstance(data, dict) else None
        if not isinstance(videos, list):
            raise DataError(f"{path}: key 'videos': expected a list of video entries")
        where = self._rel(path)
        metadata: dict[str, VideoMeta] = {}
        for position, entry in enumerate(videos):
            meta = _video_meta(entry, path, f"videos[{position}]")
            at = f"{where}:videos[{position}]"
            problem = _uid_problem(meta.uid) or _duration_problem(meta)
            if meta.uid in metadata or meta.uid in index.unusable:
                self._skip("duplicate_video_uid", at, f"video_uid {meta.uid!r} is listed earlier; the first entry is used")
            elif problem:
                self._skip(problem[0], at, problem[1])
                index.unusable.add(meta.uid)
            else:
                metadata[meta.uid] = meta
        return metadata

    def _read_narrations(self) -> dict[str, list[tuple[str, Any]]]:
        path = self.narration_path
        data = load_json(path, encoding="utf-8-sig")
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected an object mapping video_uid to narration passes")
        narrated: dict[str, list[tuple[str, Any]]] = {}
        for uid, passes in data.items():
            if not isinstance(passes, dict):
                raise DataError(f"{path}: key {uid}: expected an object of narration passes")
            entries = [item for name in self.narration_passes for item in _pass_entries(passes, uid, name, path)]
            if entries:
                narrated[uid] = entries
        return narrated

    def _find_files(self, index: _Index) -> None:
        for path in self._walk_files():  # regular files, sorted: sorted path order decides which duplicate wins
            if path.name.lower().endswith(ANNOTATIONS_SUFFIX):
                index.annotations.setdefault(path.name[: -len(ANNOTATIONS_SUFFIX)], path)
            elif path.suffix.lower() == ".mp4":
                self._add_video(index, path)

    def _add_video(self, index: _Index, path: Path) -> None:
        first = index.videos.setdefault(path.stem, path)
        if first is not path:
            self._skip_file("duplicate_video", path, f"same uid as {self._rel(first)}")

    # ---- building records -----------------------------------------------------------------
    def _build(self, index: _Index) -> None:
        where = self._rel(self.narration_path)
        for uid, entries in sorted(index.narrated.items()):
            if uid in index.unusable:
                continue  # counted once, where its metadata was read
            if uid not in index.metadata:
                self._skip("unknown_video_uid", f"{where}:{uid}", f"not listed in {self._rel(self.metadata_path)}")
            elif uid not in index.videos:
                self._skip("narrations_without_video", f"{where}:{uid}", f"no {uid}.mp4 under the root")
            else:
                self._add_recording(index, uid, entries)
        for uid, path in sorted(index.videos.items()):
            if uid not in index.narrated:
                self._skip_file("video_without_narrations", path, f"no {', '.join(self.narration_passes)}")

    def _add_recording(self, index: _Index, uid: str, entries: list[tuple[str, Any]]) -> None:
        meta = index.metadata[uid]
        where = self._rel(self.narration_path)
        utterances = [u for key, entry in entries if (u := self._utterance(entry, f"{where}:{key}", meta))]
        if not utterances:
            self.report.skip("no_usable_narrations", f"{where}:{uid}")
            return
        utterances.sort(key=lambda u: (u.start, u.end))
        path = index.videos[uid]
        index.recordings.append(Recording(
            recording_id=uid, video_path=path, utterances=utterances, source=SOURCE_NAME,
            annotations_path=index.annotations.get(uid),
            meta={"video": self._rel(path), "scenarios": list(meta.scenarios), "duration_sec": meta.duration,
                  "fps": meta.fps, "width": meta.width, "height": meta.height,
                  "narration_passes": list(self.narration_passes)},
        ))

    def _utterance(self, entry: Any, at: str, meta: VideoMeta) -> Utterance | None:
        """One narration as an utterance window, or None (counted by reason)."""
        problem = _narration_problem(entry)
        if problem:
            self._skip("bad_narration", at, problem)
            return None
        timestamp, raw = float(entry["timestamp_sec"]), entry["narration_text"]
        problem = time_problem(timestamp, "timestamp_sec") if not math.isfinite(timestamp) else None
        problem = problem or self._text_problem(raw)
        if problem:
            self._skip(problem[0], at, problem[1])
            return None
        if is_summary(raw):
            self.report.skip("summary_narration", f"{at} ({raw!r})")
            return None
        text = clean_narration(raw, self.camera_wearer)
        if not text:
            self.report.skip("empty_narration", f"{at} ({raw!r})")
            return None
        if timestamp < 0 or (meta.duration is not None and timestamp > meta.duration):
            self.report.skip("timestamp_out_of_range", f"{at} ({timestamp:g} s not in [0, {meta.duration:g}])"
                             if meta.duration is not None else f"{at} ({timestamp:g} s < 0)")
            return None
        before, after = self.window
        end = timestamp + after if meta.duration is None else min(meta.duration, timestamp + after)
        # rounded to microseconds so 1.9 - 1.0 is 0.9, not 0.8999999999999999
        start, end = round(max(0.0, timestamp - before), 6), round(end, 6)
        if end <= start:  # window=(0, x) at the very end of the video
            self.report.skip("timestamp_out_of_range", f"{at} ({timestamp:g} s leaves an empty window)")
            return None
        return Utterance(start, end, text, SPEAKER)

    def _with_video_info(self, recording: Recording, info: VideoInfo) -> Recording:
        meta = {**recording.meta, "probed_fps": info.fps, "probed_num_frames": info.num_frames,
                "probed_duration_sec": info.duration}
        return dataclasses.replace(recording, meta=meta)


def _passes(value: str | Sequence[str]) -> tuple[str, ...]:
    passes = (value,) if isinstance(value, str) else tuple(value)
    if not passes or not all(isinstance(p, str) and p for p in passes):
        raise ConfigError(f"narration_passes must name one or more passes, got {value!r}")
    return passes


def _window(value: Sequence[float]) -> tuple[float, float]:
    try:
        before, after = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"window must be (seconds_before, seconds_after), got {value!r}") from None
    if before < 0 or after < 0 or before + after <= 0:
        raise ConfigError(f"window must be two non-negative seconds, not both 0, got {value!r}")
    return before, after


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _video_meta(entry: Any, path: Path, key: str) -> VideoMeta:
    if not isinstance(entry, dict):
        raise DataError(f"{path}: {key}: expected an object")
    uid = entry.get("video_uid")
    if not isinstance(uid, str) or not uid:
        raise DataError(f"{path}: {key}.video_uid: expected a non-empty string, got {uid!r}")
    video_metadata = entry.get("video_metadata") or {}
    if not isinstance(video_metadata, dict):
        raise DataError(f"{path}: {key}.video_metadata: expected an object")
    for name, value in (("duration_sec", entry.get("duration_sec")),
                        *((f"video_metadata.{k}", video_metadata.get(k)) for k in ("fps", "num_frames"))):
        if value is not None and not _is_number(value):
            raise DataError(f"{path}: {key}.{name}: expected a number, got {value!r}")
    scenarios = entry.get("scenarios") or []
    if not isinstance(scenarios, list):
        raise DataError(f"{path}: {key}.scenarios: expected a list")
    fps, frames = video_metadata.get("fps"), video_metadata.get("num_frames")
    duration = entry.get("duration_sec")
    if duration is None and fps and frames is not None:
        duration = frames / fps
    return VideoMeta(uid, None if duration is None else float(duration), fps,
                     video_metadata.get("display_resolution_width"), video_metadata.get("display_resolution_height"),
                     tuple(str(s) for s in scenarios))


def _uid_problem(uid: str) -> tuple[str, str] | None:
    """A uid becomes a recording id (a store key prefix), so NUL bytes and '/' are refused."""
    if "\x00" in uid or "/" in uid:
        return "bad_video_uid", f"video_uid {uid!r} contains a NUL byte or '/'"
    return None


def _duration_problem(meta: VideoMeta) -> tuple[str, str] | None:
    """NaN/inf/zero/negative durations or frame rates are not data: the video's narrations cannot be placed."""
    for name, value in (("duration_sec", meta.duration), ("video_metadata.fps", meta.fps)):
        if value is not None and (not math.isfinite(value) or value <= 0):
            return "bad_duration", f"{name} is {value!r}; expected a finite number > 0"
    return None


def _pass_entries(passes: dict, uid: str, name: str, path: Path) -> Iterable[tuple[str, Any]]:
    block = passes.get(name)
    if block is None:
        return []
    if not isinstance(block, dict):
        raise DataError(f"{path}: key {uid}.{name}: expected an object with a 'narrations' list")
    narrations = block.get("narrations", [])
    if not isinstance(narrations, list):
        raise DataError(f"{path}: key {uid}.{name}.narrations: expected a list")
    return [(f"{uid}.{name}.narrations[{i}]", entry) for i, entry in enumerate(narrations)]


def _narration_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return f"expected an object, got {type(entry).__name__}"
    if not _is_number(entry.get("timestamp_sec")):
        return f"timestamp_sec: expected a number, got {entry.get('timestamp_sec')!r}"
    if not isinstance(entry.get("narration_text"), str):
        return f"narration_text: expected a string, got {entry.get('narration_text')!r}"
    return None

