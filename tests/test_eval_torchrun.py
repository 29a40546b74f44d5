"""``torchrun --nproc-per-node 2`` shards items across two gloo processes, merges them, and scores
exactly as one process does; a later one-process run resumes from the two ranks' logs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_eval_engine import FAKES, RUNNER, results_file, samples
from test_eval_fixtures import tiny_checkpoint, write_domain

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")


def run(command: list[str]) -> str:
    """Run in its own process group, so a hang kills torchrun's workers too, not just torchrun."""
    env = dict(os.environ, BABYVLM_LOAD_PLUGINS="", OMP_NUM_THREADS="1")
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"timed out: {' '.join(command)}\n{output[-3000:]}")
    assert process.returncode == 0, output
    return output


@pytest.mark.slow  # two torchrun workers and one plain process: ~40 s of CPU
@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this Python")
def test_two_processes_score_exactly_as_one(tmp_path):
    write_domain(tmp_path / "data" / "saycam", n_letters=10, n_pairs=3, n_rounds=2)
    checkpoint = tiny_checkpoint(tmp_path / "ckpt")
    common = ["eval", "--model", str(checkpoint), "--tasks", ",".join(FAKES), "--data", str(tmp_path / "data"),
              "--mode", "loglikelihood", "--batch-size", "3"]
    run([sys.executable, str(RUNNER), *common, "--out", str(tmp_path / "one")])
    output = run([TORCHRUN, "--standalone", "--nproc-per-node", "2", str(RUNNER), *common,
                  "--out", str(tmp_path / "two")])
    assert output.count("overall ") == 1  # only rank 0 prints
    ranks = {path.name: len(path.read_text().splitlines()) for path in (tmp_path / "two" / "progress").iterdir()}
    assert set(ranks) == {"rank0.jsonl", "rank1.jsonl"} and sum(ranks.values()) == 10 + 3 + 2
    assert all(count > 0 for count in ranks.values())
    one, two = results_file(tmp_path / "one"), results_file(tmp_path / "two")
    assert two["config"].pop("world_size") == 2 and one["config"].pop("world_size") == 1
    assert one == two
    for task in FAKES:  # same answers; raw losses equal up to float rounding (other batch mates)
        for a, b in zip(samples(tmp_path / "one", task), samples(tmp_path / "two", task), strict=True):
            assert (a["item_id"], a["parsed"], a["correct"]) == (b["item_id"], b["parsed"], b["correct"])
            assert a.get("option_losses", {}).keys() == b.get("option_losses", {}).keys()
            for option, loss in a.get("option_losses", {}).items():
                assert loss == pytest.approx(b["option_losses"][option], abs=1e-6)
    # a one-process run over the two-process folder finds everything done
    again = run([sys.executable, str(RUNNER), *common, "--out", str(tmp_path / "two")])
    assert "resuming" in again
    lines = [json.loads(line) for p in (tmp_path / "two" / "progress").iterdir() for line in p.read_text().splitlines()]
    assert len(lines) == 10 + 3 + 2
