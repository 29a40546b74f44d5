"""``ScannedSource``: a base class for sources that scan their root once into ``Recording``s.

It holds what such a source needs whatever its format: the root check, one scan on first use,
``recordings()`` / ``__iter__`` with optional video-header probing, ``validate()``, the frame of
``describe()``, and skip counting with ``strict`` handling. A subclass reads its own format in
``_scan_root()``; docs/plugins.md (``register_sources``) shows how. PyAV is imported only when a video
is probed, so importing this module stays light.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from babyvlm.core.errors import DataError
from babyvlm.core.records import Recording, SkipReport

if TYPE_CHECKING:
    from babyvlm.media import VideoInfo


class ScanIndex(Protocol):
    """What a scan must produce: the recordings, in the order ``recordings()`` yields them."""

    recordings: list[Recording]


IndexT = TypeVar("IndexT", bound=ScanIndex)


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

    def __init__(self, root: str | os.PathLike, *, strict: bool = False, probe: bool = False) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"{self.root}: {self.root_label} is not a folder")
        self.strict = bool(strict)
        self.probe = bool(probe)
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
        if self.strict and reason in self.strict_reasons:
            explanation = self.strict_reasons[reason] + (f": {detail}" if detail else "")
            raise DataError(f"{path}: {explanation} (strict=True; strict=False counts it and goes on)")


def error_detail(exc: DataError, path: Path) -> str:
    """The message of a ``DataError`` without its leading file name (the report shows the file)."""
    return str(exc).removeprefix(f"{path}: ")
