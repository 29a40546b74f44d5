"""Hostile conditions for writers: two processes writing one store (build, merge, import, export), a lock
left by a SIGKILLed writer, and a resume pointed at another corpus root or source."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import test_builder_support as support

from babyvlm.plugins.pretraining_set.builder import BuildPlan, build_pretraining_set
from babyvlm.plugins.pretraining_set.llava_io import export_llava
from babyvlm.plugins.pretraining_set.stores import open_store

# shared fixture: the fake source registered for every test (autouse)
fake_source = support.fake_source

SUPPORT = Path(support.__file__)


def cli(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    """``babyvlm ARGS`` (with the fake source) in its own process."""
    return subprocess.run([sys.executable, str(SUPPORT), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def start_cli(*args: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SUPPORT), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stop_after_first_commit(process: subprocess.Popen) -> list[str]:
    """Read the build's output until its first commit, then freeze it (SIGSTOP) while it holds the lock."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("commit:"):
            os.kill(process.pid, signal.SIGSTOP)
            return lines
    raise AssertionError("build ended before its first commit:\n" + "".join(lines))


def hold_lock(folder: Path, beside: bool) -> subprocess.Popen:
    """Another process holding the writer lock of ``folder`` exactly as a merge/import/export does."""
    code = textwrap.dedent(f"""
        import sys, time
        from babyvlm.core.io import WriterLock
        lock = WriterLock({str(folder)!r}, "a test writer", beside={beside}).acquire()  # kept: closing releases
        print("locked", flush=True)
        time.sleep(120)
    """)
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


def build_args(root: Path, out: Path) -> list[object]:
    return ["data", "build", "--source", "fake", "--root", root, "--out", out, "--commit-every", "3"]


def test_second_build_into_the_same_store_is_refused_and_the_first_completes(tmp_path):
    root = support.write_corpus(tmp_path / "corpus", recordings=4, seconds=8)
    out = tmp_path / "store"
    first = start_cli(*build_args(root, out))
    try:
        stop_after_first_commit(first)
        second = cli(*build_args(root, out))
        assert second.returncode == 1, second.stdout + second.stderr
        message = second.stderr.strip().splitlines()[-1]
        assert f"{out}: another process is writing here (pid {first.pid} on host {socket.gethostname()}" in message
        assert "Traceback" not in second.stderr
    finally:
        os.kill(first.pid, signal.SIGCONT)
    rest, _ = first.communicate(timeout=120)
    assert first.returncode == 0, rest
    report = open_store(out).verify()
    assert report.ok, report.lines()


def build_killed_after_first_commit(root, out):
    """A real ``data build`` process, SIGKILLed once its first commit is on disk (a crashed writer)."""
    process = start_cli(*build_args(root, out))
    stop_after_first_commit(process)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    process.stdout.close()
    return process


def test_lock_of_a_sigkilled_build_is_taken_over_and_the_build_completes(tmp_path):
    root = support.write_corpus(tmp_path / "corpus", recordings=3, seconds=8)
    out = tmp_path / "store"
    first = build_killed_after_first_commit(root, out)
    assert json.loads((out / ".babyvlm.lock").read_text())["pid"] == first.pid  # left behind
    rerun = cli(*build_args(root, out))
    assert rerun.returncode == 0, rerun.stderr
    assert f"took over a stale writer lock (pid {first.pid} on host" in rerun.stdout
    assert open_store(out).verify().ok


def test_merge_import_and_export_refuse_a_folder_another_process_writes(tmp_path):
    root = support.write_corpus(tmp_path / "corpus", recordings=2, seconds=6)
    store = tmp_path / "store"
    build_pretraining_set(BuildPlan(source="fake", root=root, out=store), log=lambda _: None)
    export_llava(store, tmp_path / "llava", log=lambda _: None)
    cases = [  # (folder the command writes, its lock sits beside it?, command)
        (tmp_path / "merged", True, ["data", "merge", store, "--out", tmp_path / "merged"]),
        (tmp_path / "exported", True, ["data", "export", store, tmp_path / "exported"]),
        (tmp_path / "imported", False, ["data", "import", tmp_path / "llava" / "data.json", "--out",
                                        tmp_path / "imported"]),
    ]
    for folder, beside, command in cases:
        holder = hold_lock(folder, beside)
        try:
            refused = cli(*command)
        finally:
            holder.kill()
            holder.wait()
        assert refused.returncode == 1, (command, refused.stdout, refused.stderr)
        assert f"another process is writing here (pid {holder.pid} on host" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
        assert not (folder / "manifest.json").exists() and not (folder / "data.json").exists()
        # the holder was killed: its lock is stale now, and the same command goes through
        done = cli(*command)
        assert done.returncode == 0, (command, done.stderr)
        assert f"took over a stale writer lock (pid {holder.pid}" in done.stdout


def test_resume_with_another_root_or_source_is_refused_before_writing(tmp_path):
    root = support.write_corpus(tmp_path / "corpus", recordings=3, seconds=8)
    other = support.write_corpus(tmp_path / "other", recordings=3, seconds=8)
    out = tmp_path / "store"
    build_killed_after_first_commit(root, out)
    shard = next((out / "shards").iterdir()) / "data.mdb"
    before = shard.read_bytes(), (out / "build_config.json").read_bytes()

    moved = cli(*build_args(other, out))
    assert moved.returncode == 1
    assert f"root: {str(root)!r} -> {str(other)!r}" in moved.stderr and "nothing was written" in moved.stderr
    renamed = cli("data", "build", "--source", "fake_twin", "--root", root, "--out", out, "--commit-every", "3")
    assert renamed.returncode == 1 and "source: 'fake' -> 'fake_twin'" in renamed.stderr, renamed.stderr
    assert (shard.read_bytes(), (out / "build_config.json").read_bytes()) == before

    finished = cli(*build_args(root, out))  # the original command still completes the store
    assert finished.returncode == 0, finished.stderr
    assert open_store(out).verify().ok
