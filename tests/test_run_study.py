"""``babyvlm run``: the whole study on a tiny config, in a real CLI process — corpus to report — then a
rerun that reuses every stage, and a changed stage that reruns only what depends on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY = [
    "corpus.minutes=3", "ood_corpus.minutes=1.5", "tasks.max_items=8",
    "phases.0.trainer.max_steps=2", "phases.1.trainer.max_steps=2", "phases.2.trainer.max_steps=2",
    "phases.3.trainer.max_steps=2", "phases.4.trainer.max_steps=2",
    'evaluation.limit={"baby_memory": 3}',
]


def run(work: Path, *extra: str, flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "babyvlm", "run", "demo", "--work-dir", str(work), *flags]
    for pair in [*TINY, *extra]:
        args += ["--set", pair]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(args, capture_output=True, text=True, timeout=1200, cwd=work.parent, env=env)


def outcome(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads([line for line in done.stdout.splitlines() if line.startswith('{"seconds"')][-1])


@pytest.mark.slow
def test_the_study_runs_end_to_end_then_reuses_its_cache(tmp_path):
    work = tmp_path / "run"
    first = outcome(run(work))
    assert first["ran"] == ["corpora", "tasks", "model", "blind_twin", "evaluation", "report"]
    report = (work / "report.md").read_text()
    for needle in ("blind twin", "chance", "in-domain", "out-of-domain", "overall"):
        assert needle in report
    assert (work / "report.html").is_file() and (work / "config.py").is_file()
    results = sorted((work / "eval" / "model" / "saycam").glob("*_results.json"))
    assert results, "the model's lmms-eval-style results file"
    assert (work / "checkpoint" / "babyvlm.json").is_file()
    assert (work / "blind_twin" / "checkpoint" / "babyvlm.json").is_file()

    again = outcome(run(work))
    assert again["ran"] == [] and again["cached"] == first["ran"]
    assert again["seconds"] < 60
    results = json.loads((work / "results.json").read_text())  # a cached rerun keeps the training record
    names = [p["name"] for p in results["phases"]]
    assert names[:4] == ["0-language", "0-vision", "1-alignment", "2-joint"]
    assert len(names) > 5 and all(name.startswith("3-instruction/baby_") for name in names[4:])  # one per task
    assert "task-specific" in report

    forced = outcome(run(work, flags=("--force", "report")))
    assert forced["ran"] == ["report"]
    assert "| 0-language |" in (work / "report.md").read_text()  # the training section is still there

    forced = outcome(run(work, flags=("--force", "blind_twin")))
    assert forced["ran"] == ["blind_twin", "evaluation", "report"]  # what depends on it reruns too

    changed = outcome(run(work, 'evaluation.baselines=["random"]'))
    assert changed["ran"] == ["evaluation", "report"]  # nothing upstream of the evaluation reruns


@pytest.mark.slow
def test_a_shortened_age_sweep_trains_on_younger_data_and_plots_the_curve(tmp_path):
    """Two ages of the demo study, shortened: each point's store holds only recordings up to its age."""
    work = tmp_path / "sweep"
    args = [sys.executable, "-m", "babyvlm", "sweep", "age", "demo", "--ages", "24,32", "--work-dir", str(work)]
    for pair in [*TINY, "corpus.minutes=4", "evaluation.blind_twin=false"]:
        args += ["--set", pair]
    done = subprocess.run(args, capture_output=True, text=True, timeout=1800, cwd=tmp_path,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (work / "sweep.png").is_file() and (work / "sweep.md").is_file()
    table = json.loads((work / "sweep.json").read_text())
    assert len(table["points"]) == 2
