"""Messy human-transcript CSVs, the way real SAYCam spreadsheets look after export.

Each file gets its own style: column order and an extra column, speaker codes (``M``, ``Mom``,
``mother``, ``papa`` ...), how times are written (``1:05``, ``01:05``, ranges ``01:05-01:09``), a
UTF-8 byte-order mark or not. Rows deviate from the file's style the way hand-typed cells do:
``1:3`` for 1:30 (only when the time really is x:x0), ``:45`` under a minute, float-like seconds
(``65.0``), Excel day fractions, an occasional typo that no reader can parse, blank rows, utterances
continued on a second row with a blank time, transcriber notes. Times are the utterance start
truncated to the second, the resolution of the real files.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np

from babyvlm.plugins.synthetic.speech import SpokenUtterance, transcriber_line

SPEAKER_STYLES = (
    {"mother": ("M",), "father": ("F", "D"), "child": ("C",)},
    {"mother": ("Mom", "mom"), "father": ("Dad", "dad"), "child": ("Child", "child")},
    {"mother": ("mother", "Mother"), "father": ("father", "papa"), "child": ("baby", "Baby")},
    {"mother": ("Mommy", "MOM", "M"), "father": ("Daddy", "papa", "Papa"), "child": ("kid", "C")},
)
EXTRA_COLUMNS = ("Notes", "Activity", "Comments", "Location")
EXTRA_VALUES = {"Notes": ("", "", "", "overlapping speech", "TV in background"),
                "Activity": ("", "", "playing", "feeding", "reading", "bath"),
                "Comments": ("", "", "", "check", "unclear"),
                "Location": ("", "", "living room", "kitchen", "floor", "outside")}
NOTES = ("[recording paused]", "[background noise]", "*door closes*", "[long pause]", "[TV on]")
TYPO_TIMES = ("{m};{s:02d}", "{m}:{s:02d}:", "{m}.{s:02d}.", "?{m}:{s:02d}")


@dataclass
class FileStyle:
    speakers: dict[str, tuple[str, ...]]
    columns: tuple[str, ...]
    time_style: str  # clock | padded | range
    bom: bool
    video_name_every_row: bool
    video_name_suffix: str

    @classmethod
    def random(cls, rng: np.random.Generator) -> FileStyle:
        extra = str(rng.choice(EXTRA_COLUMNS))
        columns = ("Time", "Video Name", "Utterance", "Speaker", extra) if rng.random() < 0.7 else \
            (extra, "Video Name", "Time", "Speaker", "Utterance")
        return cls(speakers=SPEAKER_STYLES[int(rng.integers(len(SPEAKER_STYLES)))], columns=columns,
                   time_style=("clock", "padded", "range")[int(rng.choice(3, p=[0.5, 0.3, 0.2]))],
                   bom=bool(rng.random() < 0.3), video_name_every_row=bool(rng.random() < 0.8),
                   video_name_suffix=".mp4" if rng.random() < 0.4 else "")


@dataclass
class CsvUtterance:
    """How one true utterance was written into the CSV, and what a correct reader should make of it."""

    time: str
    speaker: str
    text: str  # the first row's Utterance cell
    continuation: str | None  # a second row (blank time) carrying the rest of the words
    transcribed: str  # the words a reader should recover after removing markup ('' for non-speech)
    typo: bool  # the time cell is unreadable on purpose

    def to_dict(self) -> dict[str, object]:
        return {"time": self.time, "speaker": self.speaker, "text": self.text, "continuation": self.continuation,
                "transcribed": self.transcribed, "unparsable_time": self.typo}


@dataclass
class VideoRows:
    stem: str
    rows: list[dict[str, str]] = field(default_factory=list)
    written: list[CsvUtterance] = field(default_factory=list)
    blank_rows: int = 0
    note_rows: int = 0


def time_cell(rng: np.random.Generator, seconds: int, style: str, *, end: int | None = None) -> str:
    """A start time (whole seconds) written the way this file's transcriber writes times, with slips."""
    if style == "range" and end is not None:
        return f"{_padded(seconds)}-{_padded(max(end, seconds))}"
    minutes, secs = divmod(seconds, 60)
    roll = rng.random()
    if roll < 0.04:
        return f"{seconds}.0"  # a float-like cell from a spreadsheet that stored seconds
    if roll < 0.06:
        return f"{seconds / 86400:.10f}"  # an Excel day fraction
    if secs % 10 == 0 and minutes >= 1 and minutes < 60 and roll < 0.4:
        return f"{minutes}:{secs // 10}"  # "1:3" means 1:30 - only ever written for x:x0
    if minutes == 0 and roll < 0.5:
        return f":{secs:02d}"
    return _padded(seconds) if style == "padded" else _clock(seconds)


def _clock(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _padded(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _typo(rng: np.random.Generator, seconds: int) -> str:
    minutes, secs = divmod(seconds, 60)
    return str(rng.choice(TYPO_TIMES)).format(m=minutes, s=secs)


def _speaker_code(rng: np.random.Generator, style: FileStyle, role: str) -> str:
    codes = style.speakers[role]
    code = codes[0] if len(codes) == 1 or rng.random() < 0.85 else codes[1 + int(rng.integers(len(codes) - 1))]
    roll = rng.random()
    if roll < 0.03:
        return f"{code}:"
    if roll < 0.06:
        return f" {code} "
    return code


def video_rows(rng: np.random.Generator, stem: str, utterances: list[SpokenUtterance], style: FileStyle) -> VideoRows:
    """The rows of one video's transcript (without header), plus what each utterance became."""
    out = VideoRows(stem)
    video_cell = stem + style.video_name_suffix
    for index, utterance in enumerate(utterances):
        if index > 0 and rng.random() < 0.03:
            out.rows.append({})
            out.blank_rows += 1
        written = _write_utterance(rng, utterance, style, next_start=utterances[index + 1].start
                                   if index + 1 < len(utterances) else None)
        extra = str(rng.choice(EXTRA_VALUES[style.columns[4] if style.columns[0] == "Time" else style.columns[0]]))
        row = {"Time": written.time, "Utterance": written.text, "Speaker": written.speaker, "_extra": extra,
               "Video Name": video_cell if style.video_name_every_row or index == 0 else ""}
        out.rows.append(row)
        out.written.append(written)
        if written.continuation is not None:
            same = written.speaker if rng.random() < 0.5 else ""
            out.rows.append({"Time": "", "Utterance": written.continuation, "Speaker": same, "_extra": "",
                             "Video Name": video_cell if style.video_name_every_row else ""})
        elif index > 0 and not written.typo and rng.random() < 0.03:
            out.rows.append({"Time": "", "Utterance": str(rng.choice(NOTES)), "Speaker": "", "_extra": "",
                             "Video Name": video_cell if style.video_name_every_row else ""})
            out.note_rows += 1
    return out


def _write_utterance(rng: np.random.Generator, utterance: SpokenUtterance, style: FileStyle,
                     next_start: float | None) -> CsvUtterance:
    start = int(utterance.start)
    line = transcriber_line(rng, utterance)
    typo = bool(rng.random() < 0.015)
    time = _typo(rng, start) if typo else time_cell(rng, start, style.time_style, end=int(utterance.end))
    speaker = _speaker_code(rng, style, utterance.role)
    transcribed = _spoken_words(line, utterance)
    words = line.split()
    if not typo and utterance.kind != "babble" and len(words) >= 6 and rng.random() < 0.08:
        cut = len(words) // 2
        return CsvUtterance(time, speaker, " ".join(words[:cut]), " ".join(words[cut:]), transcribed, typo)
    return CsvUtterance(time, speaker, line, None, transcribed, typo)


def _spoken_words(line: str, utterance: SpokenUtterance) -> str:
    """The transcribed words: the utterance minus whatever the transcriber marked as inaudible."""
    if utterance.kind == "babble":
        return ""
    kept = [w for w in line.split() if not (w.startswith(("*", "(", "[")) or w.endswith(("*", ")", "]")) or w == "--")]
    return " ".join(kept)


def render_csv(style: FileStyle, videos: list[VideoRows]) -> bytes:
    """One CSV file (Excel-style CRLF lines) holding the rows of one or more videos."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(style.columns)
    extra_name = style.columns[4] if style.columns[0] == "Time" else style.columns[0]
    for video in videos:
        for row in video.rows:
            if not row:
                writer.writerow([""] * len(style.columns))
                continue
            cells = {**row, extra_name: row["_extra"]}
            writer.writerow([cells[name] for name in style.columns])
    return ("\ufeff" if style.bom else "").encode("utf-8") + buffer.getvalue().encode("utf-8")
