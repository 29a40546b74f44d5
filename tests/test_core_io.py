"""Shared I/O helpers: atomic writes, located JSON errors, root-confined paths, KEY=VALUE parsing."""

import os
import subprocess
import sys

import pytest

from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import (
    atomic_write_bytes,
    atomic_write_json,
    load_json,
    parse_key_values,
    path_inside,
    sort_safetensors_metadata,
)
from babyvlm.core.records import SkipReport


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write_json(target, {"v": 1})
    atomic_write_json(target, {"v": 2})
    assert load_json(target) == {"v": 2}
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_atomic_write_failure_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"old")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_atomic_write_mode_follows_the_umask_in_force_at_write_time(tmp_path):
    previous = os.umask(0o077)  # set after the module was imported: a mode read at import would miss it
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        (tmp_path / "plain.bin").write_bytes(b"x")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == (tmp_path / "plain.bin").stat().st_mode & 0o777 == 0o600


def test_importing_io_leaves_the_process_umask_alone():
    probe = ("import os\ncalls = []\nreal = os.umask\n"
             "os.umask = lambda mask: (calls.append(mask), real(mask))[1]\n"
             "import babyvlm.core.io\nprint(calls)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_atomic_write_fsyncs_the_temp_file_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                 real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda src, dst: (events.append(("replace", str(src))), real_replace(src, dst))[1])
    atomic_write_bytes(tmp_path / "a.bin", b"data")
    assert [kind for kind, _ in events] == ["fsync", "replace"]
    assert events[0][1] == events[1][1]  # the file fsynced is the one renamed into place


def test_a_failed_fsync_keeps_the_old_file_and_removes_the_temp(tmp_path, monkeypatch):
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"old")

    def io_error(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", io_error)
    with pytest.raises(OSError, match="Input/output error"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_load_json_names_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "a": 1,\n  "b": }\n')
    with pytest.raises(DataError, match=r"bad.json: invalid JSON at line 3, column 8"):
        load_json(bad)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"a": "caf\xe9"}')
    with pytest.raises(DataError, match=r"latin.json: not utf-8 text \(byte 10"):
        load_json(latin)
    with pytest.raises(DataError, match="missing.json: file not found"):
        load_json(tmp_path / "missing.json")


@pytest.mark.parametrize("relative", ["../outside.jpg", "a/../../outside.jpg", "/etc/passwd", ""])
def test_path_inside_refuses_escapes(tmp_path, relative):
    with pytest.raises(DataError, match="record 7"):
        path_inside(tmp_path, relative, "record 7")


def test_path_inside_names_where_an_impossible_path_came_from(tmp_path):
    with pytest.raises(DataError, match=r"record 7: invalid path 'a\\x00b\.jpg'"):
        path_inside(tmp_path, "a\0b.jpg", "record 7")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(DataError, match=r"record 8: invalid path 'loop/x\.jpg'"):
        path_inside(tmp_path, "loop/x.jpg", "record 8")


def test_path_inside_refuses_symlink_out_and_accepts_nested(tmp_path):
    (tmp_path / "root" / "imgs").mkdir(parents=True)
    (tmp_path / "secret.jpg").write_bytes(b"x")
    (tmp_path / "root" / "imgs" / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    with pytest.raises(DataError, match="leaves its root"):
        path_inside(tmp_path / "root", "imgs/link.jpg", "rec")
    assert path_inside(tmp_path / "root", "imgs/./a.jpg", "rec") == (tmp_path / "root" / "imgs" / "a.jpg").resolve()


def test_parse_key_values_types_and_errors():
    assert parse_key_values(["n=3", "x=0.5", "flag=true", "mode=human", "xs=[1, 2]", 'q="3"']) == {
        "n": 3, "x": 0.5, "flag": True, "mode": "human", "xs": [1, 2], "q": "3"}
    assert parse_key_values(["expr=a=b"]) == {"expr": "a=b"}
    with pytest.raises(ConfigError, match="--source-opt: expected KEY=VALUE, got 'oops'"):
        parse_key_values(["oops"], "--source-opt")


def test_skip_report_round_trips_through_dict():
    report = SkipReport()
    for row in range(5):
        report.skip("unparsable_time", f"a.csv:{row}")
    report.skip("empty_utterance", "b.csv:2")
    again = SkipReport.from_dict(report.to_dict())
    assert again.counts == report.counts and again.examples == report.examples
    assert SkipReport.from_dict(None).total == 0


# ---- writer locks, folder swaps, full disks, special files ------------------------------------------
def test_writer_lock_refuses_a_second_writer_and_frees_on_release(tmp_path):
    import socket

    from babyvlm.core.io import LockedError, WriterLock

    first = WriterLock(tmp_path / "store", "building").acquire()
    with pytest.raises(LockedError, match=f"pid {os.getpid()} on host {socket.gethostname()}, building since"):
        WriterLock(tmp_path / "store", "merging").acquire()
    first.release()
    with WriterLock(tmp_path / "store", "merging") as second:
        assert second.stale is None  # a released lock is empty, not stale
    assert (tmp_path / "store" / ".babyvlm.lock").read_text() == ""


def test_writer_lock_left_by_a_killed_process_is_stale_and_taken_over(tmp_path):
    from babyvlm.core.io import WriterLock

    code = ("import os, sys; from babyvlm.core.io import WriterLock; "
            "lock = WriterLock(sys.argv[1], 'exporting', beside=True).acquire(); os._exit(0)")  # no release
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "out")], check=True)
    with WriterLock(tmp_path / "out", "exporting", beside=True) as lock:
        assert lock.path == tmp_path / ".out.lock" and not (tmp_path / "out").exists()
        assert lock.stale["operation"] == "exporting"
        assert lock.stale_note().startswith(f"{tmp_path / 'out'}: took over a stale writer lock (pid ")


def test_replaced_folder_swaps_whole_and_refuses_foreign_folders(tmp_path):
    from babyvlm.core.io import replaced_folder

    target = tmp_path / "export"
    with replaced_folder(target, marker="export.json") as stage:
        (stage / "export.json").write_text("{}")
        (stage / "old.txt").write_text("old")
    with replaced_folder(target, marker="export.json") as stage:
        (stage / "export.json").write_text("{}")
    assert sorted(p.name for p in target.iterdir()) == ["export.json"]  # nothing of the older copy mixed in
    with pytest.raises(RuntimeError), replaced_folder(target, marker="export.json") as stage:
        (stage / "half.txt").write_text("x")
        raise RuntimeError("failed half way")
    assert sorted(p.name for p in target.iterdir()) == ["export.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # the temp folder is gone
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match="refusing to replace a folder that is not a folder \\(no export.json\\)"):
        with replaced_folder(tmp_path / "mine", marker="export.json"):
            pass


def test_no_space_errors_name_the_device_and_the_path(tmp_path):
    import errno

    from babyvlm.core.errors import BabyVLMError
    from babyvlm.core.io import disk_errors, no_space_error

    full = no_space_error(OSError(errno.ENOSPC, "No space left on device"), tmp_path / "store")
    assert str(full).startswith("no space left on device ") and f"(writing {tmp_path / 'store'})" in str(full)
    assert no_space_error(OSError(errno.EACCES, "Permission denied"), tmp_path) is None
    with pytest.raises(BabyVLMError, match="no space left on device .*nothing was merged"):
        with disk_errors(tmp_path / "out", then="nothing was merged"):
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
    with pytest.raises(KeyError), disk_errors(tmp_path):
        raise KeyError("not a disk problem")


def test_regular_file_and_link_problem_refuse_special_files_and_escapes(tmp_path):
    from babyvlm.core.io import link_problem, regular_file

    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(DataError, match=r"pipe: not a regular file \(a FIFO\); refused"):
        regular_file(tmp_path / "pipe")
    (tmp_path / "root").mkdir()
    (tmp_path / "outside.txt").write_text("x")
    os.symlink(tmp_path / "outside.txt", tmp_path / "root" / "link.txt")
    os.symlink(tmp_path / "missing", tmp_path / "root" / "dangling")
    assert link_problem(tmp_path / "pipe", tmp_path)[0] == "not_regular_file"
    assert link_problem(tmp_path / "root" / "link.txt", tmp_path / "root")[0] == "symlink_outside_root"
    assert link_problem(tmp_path / "root" / "link.txt", tmp_path / "root", follow_symlinks=True) is None
    assert link_problem(tmp_path / "root" / "dangling", tmp_path / "root", follow_symlinks=True)[0] == "unreadable_file"


def test_atomic_output_replaces_only_on_success(tmp_path):
    from babyvlm.core.io import atomic_output

    target = tmp_path / "video.mp4"
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"first")
    with pytest.raises(ValueError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise ValueError("encoder failed")
    assert target.read_bytes() == b"first" and [p.name for p in tmp_path.iterdir()] == ["video.mp4"]


def test_sorted_safetensors_metadata_gives_the_same_bytes_and_keeps_the_contents(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors import safe_open
    from safetensors.torch import save_file

    tensors = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.tensor([1, 2], dtype=torch.int64)}
    metadata = {f"key{number}": f"value {number} é" for number in range(8)}
    written = set()
    for attempt in range(5):
        path = tmp_path / f"w{attempt}.safetensors"
        save_file(tensors, str(path), metadata=metadata)
        sort_safetensors_metadata(path)
        written.add(path.read_bytes())
        with safe_open(str(path), framework="pt") as handle:
            assert handle.metadata() == metadata
            assert torch.equal(handle.get_tensor("b"), tensors["b"]) and torch.equal(handle.get_tensor("a"), tensors["a"])
    assert len(written) == 1
    header = next(iter(written))[8:].split(b"}}", 1)[0].decode()
    assert header.index("key0") < header.index("key7")


@pytest.mark.parametrize("content", [(1000).to_bytes(8, "little") + b"{}", (2**63).to_bytes(8, "little"),
                                     (4).to_bytes(8, "little") + b"{{{{", (2).to_bytes(8, "little") + b"[]",
                                     (2).to_bytes(8, "little") + b"\xff\xfe", b"abc"])
def test_sorting_safetensors_metadata_names_a_file_that_is_not_one(tmp_path, content):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    with pytest.raises(DataError, match="broken.safetensors: not a safetensors file"):
        sort_safetensors_metadata(path)
    assert path.read_bytes() == content
