"""``ScannedSource``: a base class for sources that scan their root once into ``Recording``s.

It holds what such a source needs whatever its format: the root check, one scan on first use,
``recordings()`` / ``__iter__`` with optional video-header probing, ``validate()``, the frame of
``describe()``, and skip counting with ``strict`` handling. A subclass reads its own format in
``_scan_root()``; docs/plugins.md (``register_sources``) shows how. PyAV is imported only when a video
is probed, so importing this module stays light.

It also holds the corpus hardening every source shares: ``_walk_files()`` lists the regular files
under the root, counting (never reading) FIFOs, sockets and devices (``not_regular_file``), symlinks
whose target leaves the root (``symlink_outside_root``, unless ``follow_symlinks``) and folders that
cannot be read (``unreadable_folder``; an unreadable root is a ``DataError``, not "no recordings");
``text_problem``/``time_problem`` refuse values that are not data (NUL bytes, utterances over
``max_utterance_chars``, NaN/inf/negative times). With ``strict`` these reasons raise.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import link_problem
from babyvlm.core.records import Recording, SkipReport

if TYPE_CHECKING:
    from babyvlm.media import VideoInfo


class ScanIndex(Protocol):
    """What a scan must produce: the recordings, in the order ``recordings()`` yields them."""

    recordings: list[Recording]


IndexT = TypeVar("IndexT", bound=ScanIndex)

DEFAULT_MAX_UTTERANCE_CHARS = 2000  # a real utterance is a sentence or two; more is a broken cell or a dump
# Reasons every source counts, raised as errors under ``strict``.
HOSTILE_REASONS: dict[str, str] = {
    "not_regular_file": "special file",
    "symlink_outside_root": "symlink out of the corpus root",
    "unreadable_folder": "folder cannot be read",
    "unreadable_file": "file cannot be read",
    "nul_byte": "text contains a NUL byte",
    "utterance_too_long": "utterance is longer than max_utterance_chars",
    "bad_time": "time is not a finite number >= 0",
}


def text_problem(text: str, max_chars: int) -> tuple[str, str] | None:
    """``(reason, detail)`` for utterance text that is not data (a NUL byte, over ``max_chars``), else None."""
    if "\x00" in text:
        return "nul_byte", f"NUL byte at character {text.index(chr(0))}"
    if len(text) > max_chars:
        return "utterance_too_long", f"{len(text)} characters, over max_utterance_chars={max_chars}"
    return None


def time_problem(value: float | None, name: str) -> tuple[str, str] | None:
    """``("bad_time", detail)`` for a time that is NaN, infinite or negative (None passes), else None."""
    if value is None:
        return None
    if not math.isfinite(value):
        return "bad_time", f"{name} {value!r} is not a finite number"
    if value < 0:
        return "bad_time", f"{name} {value!r} is negative"
    return None


class ScannedSource(Generic[IndexT]):
    """A source whose root is scanned once, on first use, into an index holding its recordings.

    A subclass sets ``name`` (its registry name), ``root_label`` (the root's kind in the "is not a folder"
    error) and ``strict_reasons`` ({skip reason: explanation} that ``strict=True`` raises as ``DataError``),
    calls ``super().__init__(root, strict=..., probe=...)`` before its own options, and provides
    ``_scan_root()`` and ``_video_paths()``; ``_with_video_info()``, ``_check_files()`` and ``_describe()``
    are optional. While scanning it counts what it does not use with ``_skip_file(reason, path, detail)``
    or ``_skip(reason, where, detail)``.
    """

    name: ClassVar[str] = ""
    root_label: ClassVar[str] = "source root"
    strict_reasons: ClassVar[Mapping[str, str]] = {}

    def __init__(self, root: str | os.PathLike, *, strict: bool = False, probe: bool = False,
                 follow_symlinks: bool = False, max_utterance_chars: int = DEFAULT_MAX_UTTERANCE_CHARS) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"{self.root}: {self.root_label} is not a folder")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise DataError(f"{self.root}: {self.root_label} is unreadable (permission denied); nothing can be found")
        self.strict = bool(strict)
        self.probe = bool(probe)
        self.follow_symlinks = bool(follow_symlinks)
        if isinstance(max_utterance_chars, bool) or not isinstance(max_utterance_chars, int) or max_utterance_chars < 1:
            raise ConfigError(f"max_utterance_chars must be a whole number >= 1, got {max_utterance_chars!r}")
        self.max_utterance_chars = max_utterance_chars
        self.report = SkipReport()
        self._index: IndexT | None = None
        self._probed: dict[str, Recording | None] = {}
        self._unreadable: set[Path] = set()  # videos ``_probe`` already counted in ``self.report``

    # ---- what a subclass provides ----------------------------------------------------------
    def _scan_root(self) -> IndexT:
        """Read the root into an index (called once); count everything unused in ``self.report``."""
        raise NotImplementedError(f"{type(self).__name__} must implement _scan_root()")

    def _video_paths(self, index: IndexT) -> Iterable[Path]:
        """Every video the scan found, used or not: ``validate()`` probes each."""
        raise NotImplementedError(f"{type(self).__name__} must implement _video_paths()")

    def _with_video_info(self, recording: Recording, info: VideoInfo) -> Recording | None:
        """The recording updated from its probed header (None drops it); unchanged by default."""
        return recording

    def _check_files(self, index: IndexT, report: SkipReport) -> None:
        """Extra ``validate()`` checks of the scanned files, counted in ``report``; none by default."""

    def _describe(self, index: IndexT) -> dict[str, Any]:
        """The source's own JSON-safe counts, between ``source``/``root`` and ``skipped`` in ``describe()``."""
        return {"recordings": len(index.recordings)}

    # ---- public API ----------------------------------------------------------------------
    def recordings(self) -> Iterator[Recording]:
        """The scanned recordings (with ``probe``: header-checked, unreadable videos counted and left out).
        Each is a copy, so a caller may change its utterances or meta without touching the scan."""
        for recording in self._scan().recordings:
            if self.probe:
                recording = self._probe(recording)
                if recording is None:
                    continue
            yield dataclasses.replace(recording, utterances=list(recording.utterances), meta=dict(recording.meta))

    def __iter__(self) -> Iterator[Recording]:
        return self.recordings()

    def validate(self) -> SkipReport:
        """The scan's report plus every video that cannot be probed and whatever ``_check_files`` finds."""
        from babyvlm.media import probe_video  # PyAV loads only when videos are read

        index = self._scan()
        report = SkipReport(max_examples=self.report.max_examples)
        report.merge(self.report)
        for path in self._video_paths(index):
            if path in self._unreadable:
                continue  # merged above from self.report: counting it again would double it
            try:
                probe_video(path)
            except DataError as exc:
                report.skip("unreadable_video", f"{self._rel(path)} ({error_detail(exc, path)})")
        self._check_files(index, report)
        return report

    def describe(self) -> dict[str, Any]:
        """A JSON-safe summary of what was found, used and skipped (for ``babyvlm data`` commands)."""
        index = self._scan()
        return {"source": self.name, "root": str(self.root), **self._describe(index),
                "skipped": self.report.to_dict()}

    # ---- for subclasses ------------------------------------------------------------------
    def _walk_files(self) -> list[Path]:
        """Every regular file under the root, sorted (sorted path order decides which duplicate wins).

        Never opens a file. Counted instead of listed: special files, symlinks leading out of the root
        (files, and folders, which are then not entered) unless ``follow_symlinks``, unreadable files
        and folders. Symlinked folders inside the root are not entered (what they hold is reached
        anyway); with ``follow_symlinks`` every folder link is entered once (loops are cut).
        """
        found: list[Path] = []
        visited: set[str] = {os.path.realpath(self.root)}

        def unreadable(exc: OSError) -> None:
            folder = Path(exc.filename) if exc.filename else self.root
            if folder == self.root:
                raise DataError(f"{self.root}: {self.root_label} is unreadable ({exc.strerror or exc})") from exc
            self._skip_file("unreadable_folder", folder, exc.strerror or str(exc))

        for folder, dirs, names in os.walk(self.root, onerror=unreadable, followlinks=self.follow_symlinks):
            here = Path(folder)
            for name in list(dirs):
                sub = here / name
                if not sub.is_symlink():
                    continue
                problem = link_problem(sub, self.root, self.follow_symlinks)
                real = os.path.realpath(sub)
                if problem is not None:
                    self._skip_file(problem[0], sub, problem[1])
                if problem is not None or real in visited:
                    dirs.remove(name)
                visited.add(real)
            for name in names:
                path = here / name
                problem = link_problem(path, self.root, self.follow_symlinks)
                if problem is None:
                    found.append(path)
                else:
                    self._skip_file(problem[0], path, problem[1])
        return sorted(found)

    def _text_problem(self, text: str) -> tuple[str, str] | None:
        return text_problem(text, self.max_utterance_chars)

    def _scan(self) -> IndexT:
        if self._index is None:
            self._index = self._scan_root()
        return self._index

    def _probe(self, recording: Recording) -> Recording | None:
        """``_with_video_info`` from the video's header, once per recording; None when it cannot be read."""
        from babyvlm.media import probe_video

        if recording.recording_id not in self._probed:
            path = recording.video_path
            try:
                info = probe_video(path)
            except DataError as exc:
                self._unreadable.add(path)  # before counting: a strict source raises there
                self._skip_file("unreadable_video", path, error_detail(exc, path))
                self._probed[recording.recording_id] = None
            else:
                self._probed[recording.recording_id] = self._with_video_info(recording, info)
        return self._probed[recording.recording_id]

    def _rel(self, path: Path) -> str:
        """``path`` relative to the root, as reports show it."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _skip_file(self, reason: str, path: Path, detail: str = "") -> None:
        """Count ``path`` as skipped for ``reason``; with ``strict``, raise if the reason is a strict one."""
        self._count(reason, self._rel(path), detail, path)

    def _skip(self, reason: str, where: str, detail: str = "") -> None:
        """Like ``_skip_file`` for a place given relative to the root (``file:key`` or ``file:line``)."""
        self._count(reason, where, detail, self.root / where)

    def _count(self, reason: str, where: str, detail: str, path: Path) -> None:
        self.report.skip(reason, f"{where} ({detail})" if detail else where)
        if self.strict and (reason in self.strict_reasons or reason in HOSTILE_REASONS):
            explanation = {**HOSTILE_REASONS, **self.strict_reasons}[reason] + (f": {detail}" if detail else "")
            raise DataError(f"{path}: {explanation} (strict=True; strict=False counts it and goes on)")


def error_detail(exc: DataError, path: Path) -> str:
    """The message of a ``DataError`` without its leading file name (the report shows the file)."""
    return str(exc).removeprefix(f"{path}: ")
