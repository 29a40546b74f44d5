"""Planning: utterances -> clip windows and the frame times each output format needs.

Every clip is planned before a video is decoded, so one sequential pass can serve all of them.
Defaults (the paper's values are unknown; all are settings):

* a clip spans its utterance: ``start`` to ``end``; an utterance without an end (human transcripts)
  runs until the next utterance starts, capped at ``max_clip_sec`` and at the video's end;
* clips shorter than ``min_clip_sec`` (1 s) are skipped, and so are clips whose *given* end makes
  them longer than ``max_clip_sec`` (10 s) — mean SAYCam utterance clips are ~2.7 s (138 h / 181k);
* video samples take up to ``video_frames`` (8) frames, centred in equal slices of the clip
  (fewer when the clip holds fewer frames);
* image samples take ``image_fps`` (1) frames per second of clip: ``round(length)`` frames, at least
  one, centred in equal slices;
* interleaved sequences slide a window of ``window_min``..``window_max`` (4..8) consecutive kept
  clips with ``stride`` 3 (≈ the published 63k sequences per 181k clips), not across silences longer
  than ``max_gap_sec`` (30 s); each window's length is drawn deterministically from its position.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from babyvlm.core.errors import ConfigError
from babyvlm.core.records import SAMPLE_FORMATS, SkipReport, Utterance


@dataclass(frozen=True)
class BuildSettings:
    """Everything that changes the built samples (resumed builds must keep them identical)."""

    formats: tuple[str, ...] = SAMPLE_FORMATS
    min_clip_sec: float = 1.0
    max_clip_sec: float = 10.0
    video_frames: int = 8
    image_fps: float = 1.0
    image_size: int = 224  # longer side in pixels; 0 keeps the video's size (never upscaled)
    jpeg_quality: int = 90
    window_min: int = 4
    window_max: int = 8
    stride: int = 3
    max_gap_sec: float = 30.0

    def __post_init__(self) -> None:
        problems = []
        if not self.formats or any(f not in SAMPLE_FORMATS for f in self.formats):
            problems.append(f"formats must be a non-empty subset of {SAMPLE_FORMATS}, got {self.formats}")
        if not 0 < self.min_clip_sec <= self.max_clip_sec:
            problems.append(f"need 0 < min_clip_sec <= max_clip_sec, got {self.min_clip_sec}, {self.max_clip_sec}")
        if self.video_frames < 1 or self.image_fps <= 0:
            problems.append("video_frames must be >= 1 and image_fps > 0")
        if self.image_size < 0 or not 1 <= self.jpeg_quality <= 100:
            problems.append("image_size must be >= 0 and jpeg_quality in 1..100")
        if not 1 <= self.window_min <= self.window_max or self.stride < 1:
            problems.append(f"need 1 <= window_min <= window_max and stride >= 1, got "
                            f"{self.window_min}..{self.window_max}, stride {self.stride}")
        if self.max_gap_sec < 0:
            problems.append("max_gap_sec must be >= 0")
        if problems:
            raise ConfigError("build settings: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["formats"] = list(self.formats)
        return data


@dataclass(frozen=True)
class PlannedClip:
    index: int  # position of the utterance in start order: a stable part of the sample keys
    start: float
    end: float
    text: str
    speaker: str
    video_times: tuple[float, ...]
    image_times: tuple[float, ...]
    middle_time: float

    @property
    def length(self) -> float:
        return self.end - self.start

    def target_times(self) -> set[float]:
        return {*self.video_times, *self.image_times, self.middle_time}


def centred_times(start: float, length: float, count: int) -> tuple[float, ...]:
    """``count`` times at the centres of equal slices of ``[start, start + length)``."""
    return tuple(round(start + (i + 0.5) * length / count, 6) for i in range(count))


def plan_clips(utterances: Sequence[Utterance], *, duration: float, fps: float, settings: BuildSettings,
               report: SkipReport, where: str) -> list[PlannedClip]:
    """Clip windows for a recording's utterances; each rejected utterance is counted by reason."""
    ordered = sorted(utterances, key=lambda u: u.start if _finite(u.start) else math.inf)
    starts = [u.start for u in ordered]
    clips = []
    for index, utterance in enumerate(ordered):
        clip = _plan_one(index, utterance, starts, duration, fps, settings, report, f"{where}@{utterance.start}s")
        if clip is not None:
            clips.append(clip)
    return clips


def _plan_one(index: int, utt: Utterance, starts: list[float], duration: float, fps: float,
              settings: BuildSettings, report: SkipReport, where: str) -> PlannedClip | None:
    if not _finite(utt.start) or utt.start < 0 or (utt.end is not None and not (_finite(utt.end) and utt.end > utt.start)):
        report.skip("bad_utterance_time", f"{where} (end {utt.end})")
        return None
    text = (utt.text or "").strip()
    if not text:
        report.skip("empty_utterance", where)
        return None
    if duration > 0 and utt.start >= duration:
        report.skip("utterance_after_video_end", where)
        return None
    if utt.end is None:
        later = [s for s in starts[index + 1:] if _finite(s) and s > utt.start]
        end = min(later[0] if later else math.inf, utt.start + settings.max_clip_sec)
    else:
        end = utt.end
        if end - utt.start > settings.max_clip_sec:
            report.skip("clip_too_long", where)
            return None
    if duration > 0:
        end = min(end, duration)
    length = end - utt.start
    if not _finite(length) or length < settings.min_clip_sec:
        report.skip("clip_too_short", where)
        return None
    frames_in_clip = max(1, int(length * fps)) if fps > 0 else settings.video_frames
    return PlannedClip(
        index=index, start=round(utt.start, 6), end=round(end, 6), text=text, speaker=utt.speaker or "",
        video_times=centred_times(utt.start, length, min(settings.video_frames, frames_in_clip)),
        image_times=centred_times(utt.start, length, max(1, round(length * settings.image_fps))),
        middle_time=round(utt.start + length / 2, 6),
    )


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def plan_windows(clips: Sequence[PlannedClip], settings: BuildSettings, recording_id: str) -> list[list[int]]:
    """Positions (into ``clips``) of each interleaved window over consecutive kept clips."""
    windows: list[list[int]] = []
    for run in _runs(clips, settings.max_gap_sec):
        start = 0
        while start + settings.window_min <= len(run):
            first = clips[run[start]].index
            length = random.Random(f"{recording_id}:{first}").randint(settings.window_min, settings.window_max)
            windows.append(run[start:start + min(length, len(run) - start)])
            start += settings.stride
    return windows


def _runs(clips: Sequence[PlannedClip], max_gap: float) -> list[list[int]]:
    """Split clip positions where the silence between two clips exceeds ``max_gap``."""
    runs: list[list[int]] = []
    for pos, clip in enumerate(clips):
        if runs and clip.start - clips[runs[-1][-1]].end <= max_gap:
            runs[-1].append(pos)
        else:
            runs.append([pos])
    return runs
