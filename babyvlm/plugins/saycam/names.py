"""SAYCam file names: video stems ``{S|A|Y}_{YYYYMMDD}_{AAAA}_{NN}``, ``… part N`` transcript names,
``Video Name`` cell references and ASR derived-frame names, parsed into child, date, age and segment."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from babyvlm.core.constants import DAYS_PER_MONTH  # AAAA ages are months + days

CHILDREN: tuple[str, ...] = ("S", "A", "Y")
VIDEO_SUFFIX = ".mp4"
# Anything with these suffixes "looks like a video": if its name does not parse, it is counted, not ignored.
VIDEO_LIKE_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv"})
NAME_PATTERN_TEXT = "{S|A|Y}_{YYYYMMDD}_{AAAA}_{NN}.mp4"

_VIDEO_STEM = re.compile(r"(?P<child>[SAY])_(?P<date>\d{8})_(?P<months>\d{2})(?P<days>\d{2})_(?P<segment>\d{2})")
_PART_NAME = re.compile(r"(?P<base>[SAY]_\d{8}_\d{4})[\s_-]*part[\s_-]*(?P<part>\d{1,2})", re.IGNORECASE)
_FRAME_NAME = re.compile(
    r"(?P<stem>[SAY]_\d{8}_\d{4}_\d{2})_(?P<start>\d+)_(?P<end>\d+)_frame_(?P<index>\d+)\.(?:jpe?g|png)",
    re.IGNORECASE,
)
_MAX_AGE_DAYS = 31


@dataclass(frozen=True)
class VideoName:
    """What a SAYCam video name says about its recording."""

    stem: str
    child: str
    date: str  # ISO yyyy-mm-dd
    age_months: float
    segment: int

    @property
    def filename(self) -> str:
        return self.stem + VIDEO_SUFFIX


@dataclass(frozen=True)
class FrameName:
    """A derived frame name ``{stem}_{start_ms}_{end_ms}_frame_{k}.jpg`` from the released ASR data."""

    stem: str
    start_ms: int
    end_ms: int
    index: int


def parse_video_stem(stem: str) -> VideoName:
    """Parse ``S_20141029_2412_02``; raises ``ValueError`` saying what is wrong."""
    match = _VIDEO_STEM.fullmatch(stem)
    if match is None:
        raise ValueError(f"name does not match {NAME_PATTERN_TEXT}")
    try:
        date = dt.datetime.strptime(match["date"], "%Y%m%d").date()
    except ValueError:
        raise ValueError(f"{match['date']} is not a calendar date (YYYYMMDD)") from None
    days = int(match["days"])
    if days > _MAX_AGE_DAYS:
        raise ValueError(f"age {match['months']}{match['days']} has {days} days (AAAA is months + days, days <= 31)")
    age_months = int(match["months"]) + days / DAYS_PER_MONTH
    return VideoName(stem, match["child"], date.isoformat(), age_months, int(match["segment"]))


def format_video_stem(child: str, date: dt.date | str, months: int, days: int, segment: int) -> str:
    """The inverse of ``parse_video_stem`` (``date`` as a ``date`` or ISO/YYYYMMDD string)."""
    if isinstance(date, str):
        date = dt.date.fromisoformat(date) if "-" in date else dt.datetime.strptime(date, "%Y%m%d").date()
    stem = f"{child}_{date:%Y%m%d}_{months:02d}{days:02d}_{segment:02d}"
    parse_video_stem(stem)  # refuse to write a name the reader would reject
    return stem


def transcript_target(file_stem: str) -> str | None:
    """The video stem a transcript file name identifies (``{stem}`` or ``{S}_{date}_{age} part N``)."""
    stem = file_stem.strip()
    if _VIDEO_STEM.fullmatch(stem):
        return stem
    part = _PART_NAME.fullmatch(stem)
    if part:
        return f"{part['base']}_{int(part['part']):02d}"
    return None


def video_reference(value: str) -> str | None:
    """The video stem a ``Video Name`` cell refers to (any folder and extension dropped), or None.

    The value is only used as a lookup key, never opened, so a path in it cannot escape the root.
    """
    text = value.strip()
    if not text:
        return None
    name = PureWindowsPath(PurePosixPath(text).name).name
    for suffix in sorted(VIDEO_LIKE_SUFFIXES | {".csv"}):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name[:1] in {c.lower() for c in CHILDREN}:
        name = name[0].upper() + name[1:]
    return transcript_target(name)


def parse_frame_name(name: str) -> FrameName:
    """Parse ``S_20141029_2412_02_1200_3400_frame_0.jpg``; raises ``ValueError``."""
    match = _FRAME_NAME.fullmatch(PurePosixPath(name.strip()).name)
    if match is None:
        raise ValueError(f"frame name {name!r} does not match {{stem}}_{{start_ms}}_{{end_ms}}_frame_{{k}}.jpg")
    start, end = int(match["start"]), int(match["end"])
    if end < start:
        raise ValueError(f"frame name {name!r} ends ({end} ms) before it starts ({start} ms)")
    return FrameName(match["stem"], start, end, int(match["index"]))
