"""Hostile corpora: FIFOs and devices where files should be, symlinks leading out of the root (corpus
files, corpus folders, store shard folders), and folders that cannot be read."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import test_builder_support as support
from fixtures_media import tiny_video, write_csv, write_ego4d_root

from babyvlm.core.errors import DataError
from babyvlm.core.io import load_json, regular_file
from babyvlm.plugins.ego4d import Ego4DSource
from babyvlm.plugins.pretraining_set.builder import BuildPlan, build_pretraining_set
from babyvlm.plugins.pretraining_set.stores import open_store
from babyvlm.plugins.saycam import SaycamSource

STEM = "S_20141029_2412_02"
OTHER = "A_20150101_0805_01"
UID = "0a1b2c3d-uid"


@pytest.fixture(autouse=True)
def no_hang():
    """A read that blocks on a FIFO fails the test after 30 s instead of hanging the suite."""
    def hung(*_):
        raise AssertionError("blocked for 30 s: a FIFO or device was opened")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def saycam_corpus(root: Path, stem: str = STEM) -> Path:
    tiny_video(root / "videos" / f"{stem}.mp4")
    write_csv(root / "transcripts" / f"{stem}.csv", [("0:01", "", "look at the ball", "Mom")])
    return root


def test_fifos_and_devices_in_a_corpus_are_counted_not_read(tmp_path):
    saycam_corpus(tmp_path)
    os.mkfifo(tmp_path / "transcripts" / f"{OTHER}.csv")  # a transcript that would block forever
    os.mkfifo(tmp_path / "videos" / f"{OTHER}.mp4")
    os.symlink("/dev/zero", tmp_path / "videos" / "Y_20150101_0805_01.mp4")  # a device that never ends
    source = SaycamSource(tmp_path, follow_symlinks=True)
    [recording] = list(source.recordings())
    assert recording.recording_id == STEM
    assert source.report.counts["not_regular_file"] == 3
    assert sorted(source.report.examples["not_regular_file"]) == [
        f"transcripts/{OTHER}.csv (not a regular file (a FIFO); refused)",
        f"videos/{OTHER}.mp4 (not a regular file (a FIFO); refused)",
        "videos/Y_20150101_0805_01.mp4 (not a regular file (a character device); refused)",
    ]
    (tmp_path / "videos" / "Y_20150101_0805_01.mp4").unlink()
    with pytest.raises(DataError, match=fr"{OTHER}\.(csv|mp4): special file: not a regular file \(a FIFO\); refused "
                                        r"\(strict=True"):
        list(SaycamSource(tmp_path, strict=True).recordings())


def test_fifo_where_a_json_file_should_be_is_refused(tmp_path):
    write_ego4d_root(tmp_path, {UID: [(0.5, "#C C picks up a cup")]})
    (tmp_path / "ego4d.json").unlink()
    os.mkfifo(tmp_path / "ego4d.json")
    with pytest.raises(DataError, match=r"ego4d.json: not a regular file \(a FIFO\); refused"):
        list(Ego4DSource(tmp_path).recordings())
    with pytest.raises(DataError, match="not a regular file"):
        load_json(tmp_path / "ego4d.json")
    with pytest.raises(DataError, match=r"not a regular file \(a character device\)"):
        regular_file("/dev/null")


def test_symlinks_out_of_the_root_are_refused_unless_followed(tmp_path):
    outside = saycam_corpus(tmp_path / "elsewhere", OTHER)
    root = saycam_corpus(tmp_path / "root")
    os.symlink(outside / "videos" / f"{OTHER}.mp4", root / "videos" / f"{OTHER}.mp4")
    os.symlink(outside / "transcripts", root / "more_transcripts")  # a folder link out of the root
    os.symlink(root / "videos" / f"{STEM}.mp4", root / "inside_link.mp4")  # stays inside: fine, a duplicate
    source = SaycamSource(root)
    assert [r.recording_id for r in source.recordings()] == [STEM]
    examples = source.report.examples["symlink_outside_root"]
    assert source.report.counts["symlink_outside_root"] == 2
    assert any(e.startswith(f"videos/{OTHER}.mp4 (symlink to {outside}/videos/{OTHER}.mp4 leaves the root; "
                            "set follow_symlinks=true") for e in examples)
    assert any(e.startswith("more_transcripts (symlink to") for e in examples)
    with pytest.raises(DataError, match="symlink out of the corpus root: symlink to .* leaves the root"):
        list(SaycamSource(root, strict=True).recordings())

    followed = SaycamSource(root, follow_symlinks=True)
    assert sorted(r.recording_id for r in followed.recordings()) == sorted([STEM, OTHER])
    assert "symlink_outside_root" not in followed.report.counts


def test_unreadable_folders_are_reported_as_unreadable(tmp_path, monkeypatch):
    root = saycam_corpus(tmp_path)
    locked = root / "transcripts" / "locked"
    locked.mkdir()
    real_scandir = os.scandir

    def scandir(path="."):  # as root, permissions are not enforced: refuse this folder like the kernel would
        if Path(os.fspath(path)) == locked:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    source = SaycamSource(root)
    assert [r.recording_id for r in source.recordings()] == [STEM]
    assert source.report.examples["unreadable_folder"] == ["transcripts/locked (Permission denied)"]

    monkeypatch.setattr(os, "scandir", lambda path=".": (_ for _ in ()).throw(
        PermissionError(13, "Permission denied", os.fspath(path))))
    with pytest.raises(DataError, match=f"{root}: SAYCam root is unreadable \\(Permission denied\\)"):
        list(SaycamSource(root).recordings())


def _as_nobody(code: str, *args: str) -> subprocess.CompletedProcess | None:
    """Run Python as an unprivileged user (root reads every folder whatever its mode); None if impossible."""
    command = [sys.executable, "-c", code, *args]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            return None
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_unreadable_folder_by_mode_for_a_real_unprivileged_reader():
    base = Path(tempfile.mkdtemp(prefix="babyvlm-unreadable-"))  # pytest's tmp_path is private to its user
    try:
        base.chmod(0o755)
        root = saycam_corpus(base / "corpus")
        for folder in [base, *root.rglob("*")]:
            folder.chmod(0o755 if folder.is_dir() else 0o644)
        (root / "private").mkdir()
        (root / "private").chmod(0)
        code = ("import sys; from babyvlm.plugins.saycam import SaycamSource as S; s = S(sys.argv[1]); "
                "print(len(list(s.recordings())), s.report.examples.get('unreadable_folder'))")
        done = _as_nobody(code, str(root))
        if done is None or "Operation not permitted" in done.stderr:
            pytest.skip("cannot run a process as an unprivileged user here")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "1 ['private (Permission denied)']"
        root.chmod(0o700)  # now the root itself: unreadable, not "no recordings"
        code = "import sys; from babyvlm.plugins.saycam import SaycamSource as S; list(S(sys.argv[1]).recordings())"
        refused = _as_nobody(code, str(root))
        assert f"DataError: {root}: SAYCam root is unreadable (permission denied)" in refused.stderr, refused.stderr
    finally:
        for folder in [base, *base.rglob("*")]:
            if folder.is_dir():
                folder.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_a_shard_folder_linked_out_of_the_store_is_refused_unless_followed(tmp_path):
    support.register_fake_source()
    root = support.write_corpus(tmp_path / "corpus", recordings=2, seconds=4)
    build_pretraining_set(BuildPlan(source="fake", root=root, out=tmp_path / "store"), log=lambda _: None)
    shard = tmp_path / "store" / "shards" / "00000-of-00001"
    shutil.move(shard, tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", shard)
    with pytest.raises(DataError, match="shard folder leads out of the store .*follow_symlinks=true"):
        open_store(tmp_path / "store").manifest()
    assert "shard folder leads out of the store" in " ".join(open_store(tmp_path / "store").verify().problems)
    followed = open_store(tmp_path / "store", follow_symlinks=True)
    assert len(followed) == len(list(followed.iter_samples())) > 0
