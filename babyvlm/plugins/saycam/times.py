"""Time cells of human SAYCam transcripts: every messy form real spreadsheets contain, parsed to seconds.

Accepted (see docs/data-formats.md): ``M:SS``, ``MM:SS``, ``H:MM:SS``, ``:45``, a single seconds digit
meaning tens (``1:3`` = 1:30), fractional seconds (``1:05.5``), ranges ``01:05-01:09`` (start, end),
Excel clock exports with ``AM``/``PM``, and bare numbers (seconds, or Excel day fractions).
"""

from __future__ import annotations

import math
import re

NUMERIC_TIME_MODES = ("auto", "seconds", "excel_days")
SECONDS_PER_DAY = 86400.0
# A bare number below 1 with this many decimals is an Excel day fraction (65 s = 0.000752314...);
# a person typing seconds writes "0.5", not "0.00075".
_EXCEL_MIN_DECIMALS = 5

_RANGE = re.compile(r"(?P<start>.+?)\s*(?:-|–|—|\bto\b)\s*(?P<end>.+)", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:\.(?P<fraction>\d+))?")
_SECONDS_FIELD = re.compile(r"(?P<whole>\d{1,2})(?P<fraction>\.\d+)?")
_MERIDIEM = re.compile(r"(?P<clock>.+?)\s*(?P<half>[AaPp])\.?[Mm]\.?")


class TimeFormatError(ValueError):
    """A time cell that cannot be read; the message quotes the cell and says why."""


def parse_time(cell: str, numeric_times: str = "auto") -> tuple[float, float | None]:
    """``(start_sec, end_sec or None)`` from one transcript time cell; raises ``TimeFormatError``."""
    text = cell.strip()
    if not text:
        raise TimeFormatError("blank time")
    if numeric_times not in NUMERIC_TIME_MODES:
        raise ValueError(f"numeric_times must be one of {NUMERIC_TIME_MODES}, got {numeric_times!r}")
    span = _RANGE.fullmatch(text)
    if span and _looks_like_time(span["start"]) and _looks_like_time(span["end"]):
        start = _point(span["start"], numeric_times, text)
        end = _point(span["end"], numeric_times, text)
        if end < start:
            raise TimeFormatError(f"time {text!r}: range ends before it starts")
        return start, end
    return _point(text, numeric_times, text), None


def format_time(seconds: float) -> str:
    """``M:SS`` (or ``M:SS.s``) for messages."""
    minutes, rest = divmod(seconds, 60.0)
    shown = f"{rest:04.1f}" if rest != int(rest) else f"{int(rest):02d}"
    return f"{int(minutes)}:{shown}"


def _looks_like_time(part: str) -> bool:
    return bool(part.strip()) and part.strip()[0] in "0123456789:"


def _point(part: str, numeric_times: str, cell: str) -> float:
    text = part.strip()
    if _NUMBER.fullmatch(text):
        return _numeric(text, numeric_times)
    meridiem = _MERIDIEM.fullmatch(text)
    if meridiem:
        return _twelve_hour(meridiem["clock"], meridiem["half"].lower() == "p", cell)
    if ":" in text:
        return _clock(text, cell)
    raise TimeFormatError(f"time {cell!r}: not M:SS, H:MM:SS, a range or a number")


def _numeric(text: str, numeric_times: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # hundreds of digits overflow to inf
        raise TimeFormatError(f"time {text[:20]!r}...: not a finite number of seconds")
    fraction = _NUMBER.fullmatch(text)["fraction"] or ""
    excel = numeric_times == "excel_days" or (
        numeric_times == "auto" and value < 1.0 and len(fraction) >= _EXCEL_MIN_DECIMALS
    )
    return round(value * SECONDS_PER_DAY, 3) if excel else value


def _clock(text: str, cell: str) -> float:
    fields = text.split(":")
    if len(fields) == 2:
        hours, minutes, seconds = "0", fields[0] or "0", fields[1]
        minutes_limit = None  # "75:10" is a valid offset into a long recording
    elif len(fields) == 3:
        hours, minutes, seconds = fields
        minutes_limit = 60
    else:
        raise TimeFormatError(f"time {cell!r}: too many ':' fields")
    if not (hours.isdigit() and minutes.isdigit()):
        raise TimeFormatError(f"time {cell!r}: hours and minutes must be digits")
    if minutes_limit is not None and int(minutes) >= minutes_limit:
        raise TimeFormatError(f"time {cell!r}: minutes must be below 60 in H:MM:SS")
    return int(hours) * 3600 + int(minutes) * 60 + _seconds(seconds, cell)


def _seconds(field: str, cell: str) -> float:
    match = _SECONDS_FIELD.fullmatch(field)
    if match is None:
        raise TimeFormatError(f"time {cell!r}: seconds must be 1-2 digits")
    whole = int(match["whole"])
    if len(match["whole"]) == 1 and not match["fraction"]:
        whole *= 10  # transcribers drop the trailing zero: "1:3" means 1:30
    value = whole + float(match["fraction"] or 0.0)
    if value >= 60:
        raise TimeFormatError(f"time {cell!r}: seconds must be below 60")
    return value


def _twelve_hour(clock: str, afternoon: bool, cell: str) -> float:
    # Excel shows a 0:01:05 duration as "12:01:05 AM"; only H:MM:SS makes sense with AM/PM.
    fields = clock.split(":")
    if len(fields) != 3:
        raise TimeFormatError(f"time {cell!r}: AM/PM times must be H:MM:SS")
    hour = int(fields[0]) if fields[0].isdigit() else -1
    if not 1 <= hour <= 12:
        raise TimeFormatError(f"time {cell!r}: hour must be 1-12 with AM/PM")
    hour = hour % 12 + (12 if afternoon else 0)
    return _clock(f"{hour}:{fields[1]}:{fields[2]}", cell)
