"""``babyvlm.core.sources.ScannedSource``: one scan, copied recordings, probing, strict skips, validate, describe."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fixtures_media import tiny_video

from babyvlm.core.errors import DataError
from babyvlm.core.records import Recording, SkipReport, Utterance
from babyvlm.core.sources import ScannedSource, error_detail


@dataclass
class FolderIndex:
    videos: list[Path] = field(default_factory=list)
    recordings: list[Recording] = field(default_factory=list)


class FolderSource(ScannedSource[FolderIndex]):
    """ROOT/*.mp4, each with a NAME.txt of utterance texts (one a second) beside it."""

    name = "folder"
    root_label = "folder root"
    strict_reasons = {"video_without_text": "video has no NAME.txt"}

    def __init__(self, root, *, strict: bool = False, probe: bool = False):
        super().__init__(root, strict=strict, probe=probe)
        self.scans = 0

    def _scan_root(self) -> FolderIndex:
        self.scans += 1
        index = FolderIndex(videos=sorted(self.root.glob("*.mp4")))
        for video in index.videos:
            text = video.with_suffix(".txt")
            if not text.is_file():
                self._skip_file("video_without_text", video, "write NAME.txt")
                continue
            lines = text.read_text().splitlines()
            utterances = [Utterance(float(k), float(k + 1), line) for k, line in enumerate(lines)]
            index.recordings.append(Recording(video.stem, video, utterances, self.name, meta={"lines": len(lines)}))
        return index

    def _video_paths(self, index: FolderIndex) -> list[Path]:
        return index.videos

    def _with_video_info(self, recording, info):
        return Recording(recording.recording_id, recording.video_path, recording.utterances, recording.source,
                         meta={**recording.meta, "frames": info.num_frames})

    def _check_files(self, index: FolderIndex, report: SkipReport) -> None:
        for path in sorted(self.root.glob("*.txt")):
            if not path.with_suffix(".mp4").is_file():
                report.skip("text_without_video", self._rel(path))


@pytest.fixture
def root(tmp_path) -> Path:
    folder = tmp_path / "root"
    tiny_video(folder / "a.mp4", seconds=1.0)
    (folder / "a.txt").write_text("hello\nthere\n")
    (folder / "b.mp4").write_bytes(b"not an mp4 at all")
    (folder / "b.txt").write_text("broken\n")
    tiny_video(folder / "c.mp4", seconds=1.0)  # no text
    (folder / "d.txt").write_text("orphan\n")
    return folder


def test_a_root_that_is_not_a_folder_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"missing: folder root is not a folder"):
        FolderSource(tmp_path / "missing")


def test_the_root_is_scanned_once_and_recordings_are_copies(root):
    source = FolderSource(root)
    assert source.scans == 0  # nothing is read when built
    first = list(source)
    first[0].utterances.clear()
    first[0].meta["lines"] = -1
    again = list(source.recordings())
    assert source.scans == 1
    assert [r.recording_id for r in again] == ["a", "b"]
    assert [u.text for u in again[0].utterances] == ["hello", "there"] and again[0].meta == {"lines": 2}
    assert source.report.counts == {"video_without_text": 1}
    assert source.report.examples["video_without_text"] == ["c.mp4 (write NAME.txt)"]


def test_strict_raises_on_a_strict_reason_naming_the_file(root):
    with pytest.raises(DataError) as caught:
        list(FolderSource(root, strict=True))
    assert str(caught.value) == (f"{root / 'c.mp4'}: video has no NAME.txt: write NAME.txt "
                                 "(strict=True; strict=False counts it and goes on)")


def test_skip_by_place_counts_and_raises_with_the_root_joined(root):
    source = FolderSource(root, strict=True)
    source._skip("not_strict", "a.txt:3", "odd line")
    assert source.report.examples["not_strict"] == ["a.txt:3 (odd line)"]
    with pytest.raises(DataError, match=r"a\.txt:4: video has no NAME\.txt \(strict=True"):
        source._skip("video_without_text", "a.txt:4")


def test_probe_drops_unreadable_videos_and_adds_header_info_once(root, monkeypatch):
    source = FolderSource(root, probe=True)
    recordings = list(source)
    assert [r.recording_id for r in recordings] == ["a"]
    assert recordings[0].meta == {"lines": 2, "frames": 5}
    assert source.report.counts["unreadable_video"] == 1
    assert source.report.examples["unreadable_video"][0].startswith("b.mp4 (")
    list(source)  # probed results are cached: the unreadable video is not counted twice
    assert source.report.counts["unreadable_video"] == 1


def test_validate_adds_unprobeable_videos_and_file_checks_without_touching_the_report(root):
    source = FolderSource(root)
    report = source.validate()
    assert report.counts == {"video_without_text": 1, "unreadable_video": 1, "text_without_video": 1}
    assert report.examples["text_without_video"] == ["d.txt"]
    assert not report.examples["unreadable_video"][0].startswith(f"b.mp4 ({root}")  # the file is named once
    assert source.report.counts == {"video_without_text": 1}


def test_validate_after_probing_counts_an_unreadable_video_once(root):
    source = FolderSource(root, probe=True)
    list(source)  # the probe counts b.mp4 in source.report, which validate() merges
    report = source.validate()
    assert report.counts == {"video_without_text": 1, "unreadable_video": 1, "text_without_video": 1}
    assert len(report.examples["unreadable_video"]) == 1 and report.examples["unreadable_video"][0].startswith("b.mp4 (")
    assert source.report.counts == {"video_without_text": 1, "unreadable_video": 1}


def test_describe_frames_the_subclass_counts(root):
    info = FolderSource(root).describe()
    assert list(info) == ["source", "root", "recordings", "skipped"]
    assert (info["source"], info["root"], info["recordings"]) == ("folder", str(root), 2)
    assert info["skipped"]["counts"] == {"video_without_text": 1}


def test_error_detail_drops_only_the_leading_file_name(tmp_path):
    path = tmp_path / "x.mp4"
    assert error_detail(DataError(f"{path}: truncated"), path) == "truncated"
    assert error_detail(DataError("elsewhere: truncated"), path) == "elsewhere: truncated"


def test_importing_the_module_loads_no_video_or_model_library():
    code = "import sys, babyvlm.core.sources; print(sorted({'av', 'torch', 'transformers'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
