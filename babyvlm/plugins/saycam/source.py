"""The ``saycam`` source: a SAYCam-format corpus root read into one ``Recording`` per video.

Files are found by name anywhere under the root (videos ``{S|A|Y}_{YYYYMMDD}_{AAAA}_{NN}.mp4``, human
transcripts ``*.csv``, ASR ``*.asr.json``, annotations ``*.objects.json``). The root is scanned once,
on first use; everything not used is counted in ``.report`` by reason. docs/data-formats.md has the rules.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import load_json
from babyvlm.core.records import Recording, SkipReport, Utterance
from babyvlm.core.sources import DEFAULT_MAX_UTTERANCE_CHARS, HOSTILE_REASONS, ScannedSource, error_detail
from babyvlm.plugins.saycam.asr import ASR_SUFFIX, read_asr
from babyvlm.plugins.saycam.names import (
    CHILDREN,
    NAME_PATTERN_TEXT,
    VIDEO_LIKE_SUFFIXES,
    VIDEO_SUFFIX,
    VideoName,
    parse_video_stem,
    transcript_target,
    video_reference,
)
from babyvlm.plugins.saycam.speakers import DEFAULT_SPEAKERS, build_speaker_table, resolve_speakers
from babyvlm.plugins.saycam.times import NUMERIC_TIME_MODES, format_time
from babyvlm.plugins.saycam.transcripts import (
    Candidate,
    RowPolicy,
    TranscriptFile,
    TranscriptRow,
    check_encoding,
    finalize,
    human_utterances,
    read_transcript_csv,
)

if TYPE_CHECKING:
    from babyvlm.media import VideoInfo

SOURCE_NAME = "saycam"
TRANSCRIPT_MODES = ("auto", "human", "asr")
ROTATIONS = (0, 180)
ANNOTATIONS_SUFFIX = ".objects.json"

# Reasons that stop a strict scan: whole files that are unusable or unmatched. Row-level reasons
# (unparsable_time, empty_utterance, ...) are always counted, never raised: real transcripts are full of them.
STRICT_REASONS: dict[str, str] = {
    "bad_video_name": f"looks like a video but is not named {NAME_PATTERN_TEXT}",
    "duplicate_video": "a video with the same name was found earlier",
    "video_without_transcript": "video has no transcript",
    "transcript_without_video": "transcript has no matching video",
    "unreadable_transcript": "unreadable transcript",
    "unreadable_asr": "unreadable ASR transcript",
    "duplicate_transcript": "a second transcript for a video that already has one",
    "unreadable_video": "video cannot be probed (truncated or corrupt)",
    "video_name_mismatch": "a transcript row's Video Name names another video than the file's name",
}


HOSTILE_ROW_REASONS: dict[str, str] = {
    **{reason: HOSTILE_REASONS[reason] for reason in ("nul_byte", "utterance_too_long", "bad_time")},
    "video_name_mismatch": STRICT_REASONS["video_name_mismatch"],
}


@dataclass
class _Transcript:
    kind: str  # "human" or "asr"
    path: Path
    rows: list[TranscriptRow] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)


@dataclass
class _Files:
    videos: list[Path] = field(default_factory=list)
    csvs: list[Path] = field(default_factory=list)
    asr: list[Path] = field(default_factory=list)
    annotations: list[Path] = field(default_factory=list)


@dataclass
class _Index:
    videos: dict[str, tuple[Path, VideoName]] = field(default_factory=dict)
    annotations: dict[str, Path] = field(default_factory=dict)
    human: dict[str, _Transcript] = field(default_factory=dict)
    asr: dict[str, _Transcript] = field(default_factory=dict)
    recordings: list[Recording] = field(default_factory=list)
    filtered_by_children: int = 0


class SaycamSource(ScannedSource[_Index]):
    """SAYCam-format corpus -> ``Recording`` per usable video, with utterances from its transcript, sorted
    by name (child, date, age, segment).

    Options (stable names): ``transcripts`` "auto" (human CSV if present, else ASR) | "human" | "asr";
    ``speakers`` "caregivers" (default) | "not_child" | "all" | roles (list or "mother,father");
    ``speaker_aliases`` {code: role} added to the built-in table; ``rotation`` 0 | 180;
    ``strict`` raise ``DataError`` on unusable/unmatched files instead of counting them;
    ``encoding`` of the CSVs (UTF-8 with or without BOM by default); ``numeric_times`` "auto" |
    "seconds" | "excel_days" for bare-number time cells; ``children`` e.g. "S" or ("S", "Y");
    ``include_untranscribed`` also yield videos without usable utterances (empty list);
    ``probe`` read each video's header while iterating (fps/size/duration into ``meta``, given ends
    clamped to the duration, open ends left ``None``, unreadable videos counted as ``unreadable_video``);
    ``follow_symlinks`` read files (and folders) whose symlinks lead out of the root (default: counted as
    ``symlink_outside_root``); ``max_utterance_chars`` longer utterances are counted as ``utterance_too_long``.
    """

    name = SOURCE_NAME
    root_label = "SAYCam root"
    strict_reasons = STRICT_REASONS

    def __init__(self, root: str | os.PathLike, *, transcripts: str = "auto",
                 speakers: str | Iterable[str] = DEFAULT_SPEAKERS, speaker_aliases: Mapping[str, str] | None = None,
                 rotation: int = 0, strict: bool = False, encoding: str = "utf-8", numeric_times: str = "auto",
                 children: str | Iterable[str] | None = None, include_untranscribed: bool = False,
                 probe: bool = False, follow_symlinks: bool = False,
                 max_utterance_chars: int = DEFAULT_MAX_UTTERANCE_CHARS) -> None:
        super().__init__(root, strict=strict, probe=probe, follow_symlinks=follow_symlinks,
                         max_utterance_chars=max_utterance_chars)
        self.transcripts = _choice("transcripts", transcripts, TRANSCRIPT_MODES)
        self.speakers = resolve_speakers(speakers)
        self.speaker_aliases = dict(speaker_aliases or {})
        self._speaker_table = build_speaker_table(self.speaker_aliases)
        if isinstance(rotation, bool) or rotation not in ROTATIONS:
            raise ConfigError(f"rotation must be 0 or 180 (degrees), got {rotation!r}")
        self.rotation = int(rotation)
        self.encoding = encoding
        check_encoding(encoding)
        self.numeric_times = _choice("numeric_times", numeric_times, NUMERIC_TIME_MODES)
        self.children = _children(children)
        self.include_untranscribed = bool(include_untranscribed)
        self._policy = RowPolicy(self.speakers, self._speaker_table, self._row_skip, self.numeric_times,
                                 max_chars=self.max_utterance_chars)

    # ---- describing ----------------------------------------------------------------------
    def _check_files(self, index: _Index, report: SkipReport) -> None:
        """Every annotation file must be a COCO-style JSON object."""
        for path in index.annotations.values():
            problem = _annotation_problem(path)
            if problem:
                report.skip("unreadable_annotations", f"{self._rel(path)} ({problem})")

    def _describe(self, index: _Index) -> dict[str, Any]:
        ages = [r.age_months for r in index.recordings if r.age_months is not None]
        return {
            "options": self.options(),
            "videos": len(index.videos),
            "recordings": len(index.recordings),
            "utterances": sum(len(r.utterances) for r in index.recordings),
            "transcripts": dict(Counter(r.meta.get("transcript") or "none" for r in index.recordings)),
            "children": dict(sorted(Counter(r.child for r in index.recordings).items())),
            "age_months": [round(min(ages), 2), round(max(ages), 2)] if ages else None,
            "annotated": sum(r.annotations_path is not None for r in index.recordings),
            "filtered_by_children": index.filtered_by_children,
            "merged_continuations": self._policy.merged_continuations,
            "unrecognized_speakers": dict(self._policy.unrecognized_speakers.most_common(10)),
        }

    def summary(self) -> str:
        """A few human-readable lines built from ``describe()``."""
        info = self.describe()
        lines = [
            f"saycam {info['root']}: {info['recordings']} recordings of {info['videos']} videos, "
            f"{info['utterances']} utterances",
            f"  transcripts used: {info['transcripts'] or {}}; children: {info['children'] or {}}",
            f"  {self.report.summary()}",
        ]
        if info["unrecognized_speakers"]:
            lines.append(f"  unrecognised speaker codes (kept as 'unknown'): {info['unrecognized_speakers']}")
        return "\n".join(lines)

    def options(self) -> dict[str, Any]:
        return {
            "transcripts": self.transcripts,
            "speakers": sorted(self.speakers),
            "speaker_aliases": self.speaker_aliases,
            "rotation": self.rotation,
            "strict": self.strict,
            "encoding": self.encoding,
            "numeric_times": self.numeric_times,
            "children": list(self.children),
            "include_untranscribed": self.include_untranscribed,
            "probe": self.probe,
            "follow_symlinks": self.follow_symlinks,
            "max_utterance_chars": self.max_utterance_chars,
        }

    # ---- scanning ------------------------------------------------------------------------
    def _scan_root(self) -> _Index:
        index = _Index()
        files = self._walk()
        self._index_videos(files.videos, index)
        self._index_annotations(files.annotations, index)
        if self.transcripts != "asr":
            self._index_human(files.csvs, index)
        if self.transcripts != "human":
            self._index_asr(files.asr, index)
        self._build(index)
        return index

    def _video_paths(self, index: _Index) -> Iterable[Path]:
        return (path for path, _ in index.videos.values())

    def _walk(self) -> _Files:
        files = _Files()
        for path in self._walk_files():  # regular files only, in sorted order (which decides duplicates)
            _classify(path, files)
        return files

    def _row_skip(self, reason: str, where: str) -> None:
        """Row-level skips are counted; the hostile ones (NUL bytes, overlong text, a row naming another
        video) also stop a strict scan."""
        self.report.skip(reason, where)
        if self.strict and reason in HOSTILE_ROW_REASONS:
            raise DataError(f"{self.root}/{where}: {HOSTILE_ROW_REASONS[reason]} "
                            "(strict=True; strict=False counts it and goes on)")

    def _index_videos(self, paths: list[Path], index: _Index) -> None:
        for path in paths:
            if path.suffix.lower() != VIDEO_SUFFIX:
                self._skip_file("bad_video_name", path, f"only {VIDEO_SUFFIX} videos are read")
                continue
            try:
                name = parse_video_stem(path.stem)
            except ValueError as exc:
                self._skip_file("bad_video_name", path, str(exc))
                continue
            if name.child not in self.children:
                index.filtered_by_children += 1
            elif name.stem in index.videos:
                self._skip_file("duplicate_video", path, f"same name as {self._rel(index.videos[name.stem][0])}")
            else:
                index.videos[name.stem] = (path, name)

    def _index_annotations(self, paths: list[Path], index: _Index) -> None:
        for path in paths:
            stem = path.name[: -len(ANNOTATIONS_SUFFIX)]
            if stem not in index.videos:
                if self._wanted(stem):
                    self.report.skip("annotations_without_video", self._rel(path))
            elif stem in index.annotations:
                self.report.skip("duplicate_annotations",
                                 f"{self._rel(path)} (video {stem} already has {self._rel(index.annotations[stem])})")
            else:
                index.annotations[stem] = path

    def _index_human(self, paths: list[Path], index: _Index) -> None:
        for path in paths:
            try:
                transcript = read_transcript_csv(path, self.encoding)
            except DataError as exc:
                self._skip_file("unreadable_transcript", path, error_detail(exc, path))
                continue
            for stem, rows in self._route(transcript).items():
                self._add_transcript(index.human, stem, _Transcript("human", path, rows=rows))

    def _route(self, transcript: TranscriptFile) -> dict[str, list[TranscriptRow]]:
        """Rows per video: all of them for a file named after its video, else by the Video Name column."""
        path = transcript.path
        target = transcript_target(path.stem)
        if target is not None:
            return {target: self._rows_of(transcript, target)} if self._wanted(target) else {}
        if not transcript.has_video_column:
            self._skip_file("unreadable_transcript", path, "cannot tell which video it transcribes: the name is "
                            "not {stem}.csv or '{S}_{date}_{age} part N.csv' and there is no 'Video Name' column")
            return {}
        routed: dict[str, list[TranscriptRow]] = {}
        current: str | None = None
        for row in transcript.rows:
            if row.video:  # a blank Video Name cell continues the video named above it
                current = video_reference(row.video)
                if current is None:
                    self.report.skip("unknown_video_name", f"{self._rel(path)}:{row.line} ({row.video!r})")
            if current is None:
                if not row.video:
                    self.report.skip("unknown_video_name",
                                     f"{self._rel(path)}:{row.line} (blank Video Name and no video named above)")
                continue
            if self._wanted(current):
                routed.setdefault(current, []).append(row)
        return routed

    def _rows_of(self, transcript: TranscriptFile, target: str) -> list[TranscriptRow]:
        """The rows of a transcript named after ``target``; a row whose Video Name cell names another
        video is counted (``video_name_mismatch``), not silently given to this one."""
        kept = []
        for row in transcript.rows:
            named = video_reference(row.video) if row.video else None
            if row.video and named != target:
                self._row_skip("video_name_mismatch", f"{self._rel(transcript.path)}:{row.line} "
                               f"(Video Name {row.video!r}, but the file is {target}'s transcript)")
                continue
            kept.append(row)
        return kept

    def _index_asr(self, paths: list[Path], index: _Index) -> None:
        for path in paths:
            try:
                found = read_asr(path, self._rel(path), self.report.skip)
            except DataError as exc:
                self._skip_file("unreadable_asr", path, error_detail(exc, path))
                continue
            for stem, candidates in found.items():
                if self._wanted(stem):
                    self._add_transcript(index.asr, stem, _Transcript("asr", path, candidates=candidates))

    def _add_transcript(self, table: dict[str, _Transcript], stem: str, transcript: _Transcript) -> None:
        first = table.setdefault(stem, transcript)
        if first is not transcript:
            self._skip_file("duplicate_transcript", transcript.path,
                            f"video {stem} already transcribed by {self._rel(first.path)}")

    def _wanted(self, stem: str) -> bool:
        """False only for another child's files when the ``children`` option limits the corpus."""
        return stem[:1] not in CHILDREN or stem[:1] in self.children

    # ---- building records -----------------------------------------------------------------
    def _build(self, index: _Index) -> None:
        for stem, (path, name) in sorted(index.videos.items()):
            transcript = index.human.get(stem) or index.asr.get(stem)
            if transcript is None and not self.include_untranscribed:
                self._skip_file("video_without_transcript", path, _missing_transcript_hint(stem, self.transcripts))
                continue
            utterances = self._utterances(transcript) if transcript else []
            if transcript and not utterances and not self.include_untranscribed:
                self.report.skip("no_usable_utterances", f"{self._rel(transcript.path)} (video {stem})")
                continue
            index.recordings.append(self._recording(path, name, utterances, transcript, index.annotations.get(stem)))
        for table in (index.human, index.asr):
            for stem, transcript in sorted(table.items()):
                if stem not in index.videos:
                    self._skip_file("transcript_without_video", transcript.path,
                                    f"no video {stem}{VIDEO_SUFFIX} under the root")

    def _utterances(self, transcript: _Transcript) -> list[Utterance]:
        where = self._rel(transcript.path)
        if transcript.kind == "human":
            return human_utterances(transcript.rows, where, self._policy)
        return finalize(transcript.candidates, self._policy)  # ASR ends are real; a missing one stays None

    def _recording(self, path: Path, name: VideoName, utterances: list[Utterance], transcript: _Transcript | None,
                   annotations: Path | None) -> Recording:
        meta: dict[str, Any] = {"video": self._rel(path), "transcript": transcript.kind if transcript else None,
                                "transcript_path": self._rel(transcript.path) if transcript else None}
        return Recording(
            recording_id=name.stem, video_path=path, utterances=utterances, source=SOURCE_NAME, child=name.child,
            date=name.date, age_months=name.age_months, segment=name.segment, rotation=self.rotation,
            annotations_path=annotations, meta=meta,
        )

    def _with_video_info(self, recording: Recording, info: VideoInfo) -> Recording:
        duration = info.duration
        meta = {**recording.meta, "fps": info.fps, "num_frames": info.num_frames, "width": info.width,
                "height": info.height, "duration_sec": duration}
        utterances = recording.utterances
        if duration > 0:
            utterances = self._clamp(recording, duration)
        return dataclasses.replace(recording, utterances=utterances, meta=meta)

    def _clamp(self, recording: Recording, duration: float) -> list[Utterance]:
        """Drop utterances starting after the video; clamp given ends. Open ends stay ``None`` (the builder
        caps them at the next start, ``max_clip_sec`` and the video end: the duration is not their end)."""
        kept = []
        for utterance in recording.utterances:
            if utterance.start >= duration:
                self.report.skip("utterance_after_video_end", f"{recording.meta['video']} "
                                 f"({format_time(utterance.start)} >= {format_time(duration)})")
                continue
            if utterance.end is not None and utterance.end > duration:
                utterance = dataclasses.replace(utterance, end=duration)
            kept.append(utterance)
        return kept


def _classify(path: Path, files: _Files) -> None:
    lowered = path.name.lower()
    if lowered.endswith(ASR_SUFFIX):
        files.asr.append(path)
    elif lowered.endswith(ANNOTATIONS_SUFFIX):
        files.annotations.append(path)
    elif lowered.endswith(".csv"):
        files.csvs.append(path)
    elif path.suffix.lower() in VIDEO_LIKE_SUFFIXES:
        files.videos.append(path)


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{option} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def _children(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return CHILDREN
    try:
        letters = [part.strip() for part in value.split(",")] if isinstance(value, str) else list(value)
    except TypeError:
        raise ConfigError(f"children must be a letter or a list of letters, got {value!r}") from None
    unknown = [letter for letter in letters if letter not in CHILDREN]
    if unknown or not letters:
        raise ConfigError(f"children must be among {', '.join(CHILDREN)}, got {value!r}")
    return tuple(letter for letter in CHILDREN if letter in letters)



def _missing_transcript_hint(stem: str, mode: str) -> str:
    human = f"no {stem}.csv, '… part N.csv' or Video Name rows"
    asr = f"no {stem}{ASR_SUFFIX}"
    hints = {"auto": f"{human}; {asr}", "human": human, "asr": asr}
    return hints[mode]


def _annotation_problem(path: Path) -> str | None:
    try:
        data = load_json(path, encoding="utf-8-sig")
    except DataError as exc:
        return error_detail(exc, path)
    if not isinstance(data, dict):
        return "expected a JSON object"
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            return f"key {key!r}: expected a list"
    return None
