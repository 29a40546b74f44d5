"""Human SAYCam transcripts: CSV files read into rows, rows turned into utterances.

Every row that cannot become an utterance is counted by reason with ``file:line`` (see
docs/data-formats.md for the rules): ``missing_time``, ``unparsable_time``, ``time_out_of_order``,
``empty_utterance``, ``excluded_speaker``, and values that are not data: ``nul_byte`` (a NUL in any
cell), ``utterance_too_long`` (over the source's ``max_utterance_chars``), ``bad_time`` (not finite).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.records import Utterance
from babyvlm.core.sources import DEFAULT_MAX_UTTERANCE_CHARS, text_problem, time_problem
from babyvlm.plugins.saycam.speakers import speaker_key
from babyvlm.plugins.saycam.text import clean_utterance
from babyvlm.plugins.saycam.times import TimeFormatError, format_time, parse_time

COLUMNS = {"time": "Time", "utterance": "Utterance", "speaker": "Speaker", "videoname": "Video Name"}
REQUIRED_COLUMNS = ("time", "utterance")
_DELIMITERS = (",", ";", "\t")

Skip = Callable[[str, str], None]


@dataclass(frozen=True)
class TranscriptRow:
    """One data row of a transcript CSV, cells as written; ``line`` is its 1-based line in the file."""

    line: int
    time: str
    text: str
    speaker: str = ""
    video: str = ""

    @property
    def is_blank(self) -> bool:
        return not (self.time.strip() or self.text.strip() or self.speaker.strip())


@dataclass
class TranscriptFile:
    path: Path
    rows: list[TranscriptRow]
    has_video_column: bool


@dataclass
class Candidate:
    """An utterance before text cleaning and the speaker filter; ``where`` locates it for the report."""

    start: float
    end: float | None
    text: str
    speaker: str
    where: str


@dataclass
class RowPolicy:
    """How rows become utterances, and where skips and speaker statistics go."""

    keep_roles: frozenset[str]
    speaker_table: Mapping[str, str]
    skip: Skip
    numeric_times: str = "auto"
    max_chars: int = DEFAULT_MAX_UTTERANCE_CHARS
    unrecognized_speakers: Counter = field(default_factory=Counter)
    merged_continuations: int = 0


def check_encoding(encoding: str) -> str:
    """The codec to decode transcripts with; plain UTF-8 also strips a byte-order mark."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ConfigError(f"encoding: unknown text encoding {encoding!r}") from None
    return "utf-8-sig" if name == "utf-8" else name


def read_transcript_csv(path: Path, encoding: str = "utf-8") -> TranscriptFile:
    """Read a transcript CSV; raises ``DataError`` naming the file (and byte/line) if it is unusable."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    text = _decode(raw, path, check_encoding(encoding))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    try:
        return _parse_rows(reader, path)
    except csv.Error as exc:
        raise DataError(f"{path}: line {reader.line_num}: malformed CSV ({exc})") from exc


def _decode(raw: bytes, path: Path, codec: str) -> str:
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        shown = codec.replace("-sig", "").upper()
        raise DataError(
            f"{path}: not valid {shown} at byte {exc.start} (line {line}, byte 0x{raw[exc.start]:02x}); "
            f"pass encoding='cp1252' (or the file's real encoding) to read it"
        ) from exc


def _delimiter(text: str) -> str:
    header = text.lstrip("\r\n").split("\n", 1)[0]
    return max(_DELIMITERS, key=header.count)  # ties go to ',' (first), the common case


def _header_key(cell: str) -> str:
    return "".join(cell.replace("_", " ").split()).lower().lstrip("\ufeff")


def _parse_rows(reader, path: Path) -> TranscriptFile:
    header: dict[str, int] | None = None
    rows: list[TranscriptRow] = []
    last_line = 0
    for record in reader:
        line, last_line = last_line + 1, reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if header is None:
            header = _header_columns(record, path)
            continue
        cells = {key: record[index].strip() if index < len(record) else "" for key, index in header.items()}
        row = TranscriptRow(line, cells["time"], cells["utterance"], cells.get("speaker", ""),
                            cells.get("videoname", ""))
        if not row.is_blank:
            rows.append(row)
    if header is None:
        raise DataError(f"{path}: empty file (no header row)")
    return TranscriptFile(path, rows, "videoname" in header)


def _header_columns(record: list[str], path: Path) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, cell in enumerate(record):
        key = _header_key(cell)
        if key in COLUMNS and key not in columns:
            columns[key] = index
    missing = [COLUMNS[key] for key in REQUIRED_COLUMNS if key not in columns]
    if missing:
        found = ", ".join(repr(cell) for cell in record)
        raise DataError(f"{path}: missing column(s) {', '.join(map(repr, missing))} (header: {found})")
    return columns


def human_utterances(rows: list[TranscriptRow], where: str, policy: RowPolicy) -> list[Utterance]:
    """Utterances from one video's transcript rows, in order; ``where`` is the file as shown in reports.

    A row without an explicit end (anything but a ``MM:SS-MM:SS`` range) keeps ``end=None``: the next
    start is not a real end, and the builder caps open utterances (next start, ``max_clip_sec``, video end).
    """
    return finalize(_timed_candidates(rows, where, policy), policy)


def _timed_candidates(rows: list[TranscriptRow], where: str, policy: RowPolicy) -> list[Candidate]:
    candidates: list[Candidate] = []
    previous: tuple[TranscriptRow, bool] | None = None  # the last row read and whether it was kept
    for row in rows:
        kept = _timed_row(row, where, policy, candidates, previous)
        previous = (row, kept)
    return candidates


def _timed_row(row: TranscriptRow, where: str, policy: RowPolicy, candidates: list[Candidate],
               previous: tuple[TranscriptRow, bool] | None) -> bool:
    at = f"{where}:{row.line}"
    if any("\x00" in cell for cell in (row.time, row.text, row.speaker, row.video)):
        policy.skip("nul_byte", f"{at} (a cell holds a NUL byte)")
        return False
    if not row.time:
        return _continuation(row, at, policy, candidates, previous)
    try:
        start, end = parse_time(row.time, policy.numeric_times)
    except TimeFormatError as exc:
        policy.skip("unparsable_time", f"{at} ({exc})")
        return False
    problem = time_problem(start, "start") or time_problem(end, "end")
    if problem:
        policy.skip(problem[0], f"{at} ({problem[1]})")
        return False
    if candidates and start < candidates[-1].start:
        policy.skip("time_out_of_order", f"{at} ({format_time(start)} after {format_time(candidates[-1].start)})")
        return False
    if end is not None and end <= start:
        end = None  # a zero-length range ("1:05-1:05") gives only a start
    candidates.append(Candidate(start, end, row.text, row.speaker, at))
    return True


def _continuation(row: TranscriptRow, at: str, policy: RowPolicy, candidates: list[Candidate],
                  previous: tuple[TranscriptRow, bool] | None) -> bool:
    """A blank-time row by the same (or no) speaker continues the row above it: its text is appended."""
    if previous is None:
        policy.skip("missing_time", f"{at} (blank time on the first row)")
        return False
    above, above_kept = previous
    same_speaker = not row.speaker or speaker_key(row.speaker) == speaker_key(above.speaker)
    if not same_speaker:
        policy.skip("missing_time", f"{at} (blank time, speaker differs from line {above.line})")
        return False
    if not above_kept:
        policy.skip("missing_time", f"{at} (blank time continues line {above.line}, which was skipped)")
        return False
    candidates[-1].text = f"{candidates[-1].text} {row.text}".strip()
    policy.merged_continuations += 1
    return True


def finalize(candidates: list[Candidate], policy: RowPolicy) -> list[Utterance]:
    """Clean text and apply the speaker filter, counting what is dropped."""
    utterances = []
    for candidate in candidates:
        problem = text_problem(candidate.text, policy.max_chars)
        if problem:
            policy.skip(problem[0], f"{candidate.where} ({problem[1]})")
            continue
        text = clean_utterance(candidate.text)
        if not text:
            policy.skip("empty_utterance", f"{candidate.where} ({candidate.text!r})")
            continue
        key = speaker_key(candidate.speaker)
        if key not in policy.speaker_table:
            policy.unrecognized_speakers[key] += 1
        role = policy.speaker_table.get(key, "unknown")
        if role not in policy.keep_roles:
            policy.skip("excluded_speaker", f"{candidate.where} (speaker {candidate.speaker!r} = {role})")
            continue
        utterances.append(Utterance(candidate.start, candidate.end, text, role))
    return utterances
