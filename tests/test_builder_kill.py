"""A build killed with SIGKILL at any point and rerun ends complete: nothing missing, nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import test_builder_support as support
from click.testing import CliRunner

from babyvlm.cli import cli
from babyvlm.plugins.pretraining_set.builder import BuildPlan, build_pretraining_set
from babyvlm.plugins.pretraining_set.stores import open_store

# shared fixture: the fake source registered for every test (autouse)
fake_source = support.fake_source

SUPPORT = Path(support.__file__)


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(SUPPORT), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)


def _kill_after_commits(args: list[str], commits: int) -> list[str]:
    process = _cli(*args)
    seen, lines = 0, []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("commit:"):
            seen += 1
            if seen == commits:
                assert process.poll() is None
                os.kill(process.pid, signal.SIGKILL)
                break
    process.wait(timeout=60)
    process.stdout.close()
    assert process.returncode == -signal.SIGKILL, "".join(lines)
    return lines


@pytest.mark.parametrize("commits", [1, 6])
def test_sigkilled_build_reruns_to_the_uninterrupted_result(tmp_path, commits):
    root = support.write_corpus(tmp_path / "corpus", recordings=5, seconds=8)
    build_pretraining_set(BuildPlan(source="fake", root=root, out=tmp_path / "reference"), log=lambda _: None)
    reference = open_store(tmp_path / "reference")

    out = tmp_path / "killed"
    args = ["data", "build", "--source", "fake", "--root", str(root), "--out", str(out), "--commit-every", "3"]
    _kill_after_commits(args, commits)
    assert not (out / "manifest.json").exists()

    rerun = CliRunner().invoke(cli, args)  # the rerun needs no subprocess: same CLI, same store
    assert rerun.exit_code == 0, rerun.output
    assert "already done" in rerun.output

    report = open_store(out).verify()
    assert (report.missing, report.duplicates, report.orphans, report.corrupted) == (0, 0, 0, [])
    assert report.ok, report.lines()
    rebuilt = open_store(out)
    assert [s.sample_id for _, s in rebuilt.iter_samples()] == [s.sample_id for _, s in reference.iter_samples()]
    assert rebuilt.manifest()["shards"][0]["checksum"] == reference.manifest()["shards"][0]["checksum"]
