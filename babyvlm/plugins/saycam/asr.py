"""ASR transcripts (``*.asr.json``): the ``babyvlm.asr/1`` object form and the released derived-frame
list form, read into per-video utterance candidates. Bad entries are counted as ``bad_asr_utterance``."""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from babyvlm.core.errors import DataError
from babyvlm.core.io import load_json
from babyvlm.core.sources import time_problem
from babyvlm.plugins.saycam.names import parse_frame_name, transcript_target, video_reference
from babyvlm.plugins.saycam.transcripts import Candidate, Skip

ASR_SCHEMA = "babyvlm.asr/1"
ASR_SUFFIX = ".asr.json"


def read_asr(path: Path, where: str, skip: Skip) -> dict[str, list[Candidate]]:
    """``{video stem: candidates sorted by time}``; raises ``DataError`` if the file is unusable."""
    data = load_json(path, encoding="utf-8-sig")  # a BOM is tolerated
    if isinstance(data, dict):
        stem, candidates = _object_form(data, path, where, skip)
        return {stem: _sorted_unique(candidates)}
    if isinstance(data, list):
        return {stem: _sorted_unique(found) for stem, found in _frame_form(data, where, skip).items()}
    raise DataError(f"{path}: expected a {ASR_SCHEMA} object or a list of frame entries, got {type(data).__name__}")


def _object_form(data: dict, path: Path, where: str, skip: Skip) -> tuple[str, list[Candidate]]:
    schema = data.get("schema", ASR_SCHEMA)
    if schema != ASR_SCHEMA:
        raise DataError(f"{path}: key 'schema': unsupported {schema!r} (expected {ASR_SCHEMA!r})")
    stem = _object_video(data, path)
    utterances = data.get("utterances")
    if not isinstance(utterances, list):
        raise DataError(f"{path}: key 'utterances': expected a list, got {type(utterances).__name__}")
    candidates = []
    for index, entry in enumerate(utterances):
        at = f"{where}:utterances[{index}]"
        try:
            candidates.append(_object_entry(entry, at))
        except ValueError as exc:
            skip(getattr(exc, "reason", "bad_asr_utterance"), f"{at} ({exc})")
    return stem, candidates


def _object_video(data: dict, path: Path) -> str:
    """The video an object-form file belongs to: its ``video`` key, else its own file name."""
    video = data.get("video")
    if video is None:
        stem = transcript_target(path.name[: -len(ASR_SUFFIX)])
        if stem is None:
            raise DataError(f"{path}: no 'video' key and the file name is not {{video stem}}{ASR_SUFFIX}")
        return stem
    if not isinstance(video, str):
        raise DataError(f"{path}: key 'video': expected a file name, got {type(video).__name__}")
    if _escapes(video):
        raise DataError(f"{path}: key 'video': {video!r} must be a plain name inside the corpus root")
    stem = video_reference(video)
    if stem is None:
        raise DataError(f"{path}: key 'video': {video!r} is not a SAYCam video name")
    return stem


def _escapes(name: str) -> bool:
    for pure in (PurePosixPath(name), PureWindowsPath(name)):
        if pure.is_absolute() or pure.anchor or ".." in pure.parts:
            return True
    return False


def _object_entry(entry: Any, at: str) -> Candidate:
    if not isinstance(entry, dict):
        raise ValueError(f"expected an object, got {type(entry).__name__}")
    start = _milliseconds(entry.get("start_ms"), "start_ms", required=True)
    end = _milliseconds(entry.get("end_ms"), "end_ms", required=False)
    if end is not None and end < start:
        raise ValueError(f"end_ms {end:g} is before start_ms {start:g}")
    text, speaker = entry.get("text"), entry.get("speaker") or ""
    if not isinstance(text, str):
        raise ValueError(f"'text' must be a string, got {type(text).__name__}")
    if not isinstance(speaker, str):
        raise ValueError(f"'speaker' must be a string, got {type(speaker).__name__}")
    if end == start:
        end = None  # zero-length: ends where the next utterance starts, like a missing end_ms
    return Candidate(start / 1000.0, None if end is None else end / 1000.0, text, speaker, at)


class EntryProblem(ValueError):
    """An ASR entry that is not data, counted under its own ``reason`` instead of ``bad_asr_utterance``."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def _milliseconds(value: Any, key: str, *, required: bool) -> float | None:
    if value is None and not required:
        return None
    if isinstance(value, float) and not math.isfinite(value):  # Python's json reads NaN/Infinity as numbers
        raise EntryProblem(*time_problem(value, key))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{key!r} must be a number of milliseconds >= 0, got {value!r}")
    return float(value)


def _frame_form(data: list, where: str, skip: Skip) -> dict[str, list[Candidate]]:
    found: dict[str, list[Candidate]] = {}
    for index, entry in enumerate(data):
        at = f"{where}:[{index}]"
        try:
            stem, candidate = _frame_entry(entry, at)
        except ValueError as exc:
            skip("bad_asr_utterance", f"{at} ({exc})")
            continue
        found.setdefault(stem, []).append(candidate)
    return found


def _frame_entry(entry: Any, at: str) -> tuple[str, Candidate]:
    if not isinstance(entry, dict):
        raise ValueError(f"expected an object with 'frame' and 'utterance', got {type(entry).__name__}")
    frame, text = entry.get("frame"), entry.get("utterance")
    if not isinstance(frame, str) or not isinstance(text, str):
        raise ValueError("'frame' and 'utterance' must be strings")
    parsed = parse_frame_name(frame)
    return parsed.stem, Candidate(parsed.start_ms / 1000.0, parsed.end_ms / 1000.0, text, "", at)


def _sorted_unique(candidates: list[Candidate]) -> list[Candidate]:
    # The frame form repeats an utterance once per derived frame (frame_0, frame_1, ...).
    unique: dict[tuple, Candidate] = {}
    for candidate in candidates:
        unique.setdefault((candidate.start, candidate.end, candidate.text, candidate.speaker), candidate)
    return sorted(unique.values(), key=lambda c: (c.start, c.end if c.end is not None else float("inf")))
