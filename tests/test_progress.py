"""Progress you can watch, in real CLI processes: a tqdm bar with rate and ETA on a terminal, periodic
readable lines when stderr is a file or pipe, nothing with BABYVLM_QUIET=1; evaluation reports between
"N items" and the scores; each repeated warning once; mmengine's dumps kept off the console."""

from __future__ import annotations

import json
import logging
import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np

from babyvlm.core.progress import progress
from babyvlm.media import encode_jpeg
from babyvlm.plugins.mmengine_trainer.runner import FileOnly


def babyvlm(args: list[str], cwd: Path, stderr=subprocess.PIPE, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "babyvlm", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=stderr,
                          text=True, timeout=300, env={**os.environ, "BABYVLM_PROGRESS_EVERY": "0", **env})


def test_synthesis_reports_progress_lines_with_rate_and_eta_when_not_a_terminal(tmp_path):
    done = babyvlm(["synth", "saycam", "corpus", "--minutes", "0.5", "--video-minutes", "0.25", "--size", "64",
                    "--quiet"], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("synth saycam: ")]
    assert lines and lines[-1].startswith("synth saycam: 3/3 video [")  # done / total, elapsed<remaining, rate
    assert "<" in lines[0] and ("video/s" in lines[0] or "s/video" in lines[0]) and "\r" not in done.stderr
    quiet = babyvlm(["synth", "saycam", "quiet", "--minutes", "0.5", "--video-minutes", "0.25", "--size", "64",
                     "--quiet"], tmp_path, BABYVLM_QUIET="1")
    assert quiet.returncode == 0 and "synth saycam:" not in quiet.stderr


def test_a_terminal_gets_a_tqdm_bar(tmp_path):
    main, child = pty.openpty()
    args = ["synth", "saycam", "corpus", "--minutes", "0.5", "--video-minutes", "0.25", "--size", "64", "--quiet"]
    process = subprocess.Popen([sys.executable, "-m", "babyvlm", *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=child, env={**os.environ, "BABYVLM_PROGRESS_EVERY": "0"})
    os.close(child)
    output = b""
    try:
        while True:  # read while it runs: a pty's buffer is gone once its last writer closes
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(main)
    assert process.wait(timeout=300) == 0
    text = output.decode(errors="replace")
    assert "synth saycam:" in text and "%|" in text and "\r" in text  # a redrawn bar with a percentage


def test_evaluation_reports_between_the_item_counts_and_the_scores(tmp_path):
    (tmp_path / "released" / "images").mkdir(parents=True)
    (tmp_path / "released" / "images" / "a.jpg").write_bytes(encode_jpeg(np.zeros((16, 16, 3), dtype=np.uint8)))
    items = [{"id": f"c{n}", "image": ["images/a.jpg"], "conversations": [
        {"from": "human", "value": "<image>\nHow many balls do you see?"}, {"from": "gpt", "value": "4"}]}
        for n in range(5)]
    (tmp_path / "released" / "count_test.json").write_text(json.dumps(items))
    done = babyvlm(["eval", "--model", "random", "--data", "released", "--out", "out"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "evaluate random: 5/5 item [" in done.stderr
    assert "baby_count" in done.stdout  # the scores still go to stdout, the progress to stderr


REPEATED_WARNINGS = """
import warnings

from babyvlm.core.progress import show_each_warning_once
show_each_warning_once()  # what `babyvlm` does at start
for _ in range(3):
    with warnings.catch_warnings():  # what libraries do: it resets Python's own once-per-call-site memory
        warnings.simplefilter("always")
        warnings.warn("saved in babyvlm's format only", UserWarning, stacklevel=1)
warnings.warn("another warning", UserWarning, stacklevel=1)
"""


def test_each_repeated_warning_is_shown_once(tmp_path):
    done = subprocess.run([sys.executable, "-c", REPEATED_WARNINGS], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("saved in babyvlm's format only") == 1 and done.stderr.count("another warning") == 1


def test_mmengine_dumps_stay_off_the_console_but_not_the_file():
    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("mmengine", logging.INFO, __file__, 1, message, None, None)

    keep = FileOnly()
    assert not keep.filter(record("\n" + "-" * 60 + "\nSystem environment:\n    sys.platform: linux"))
    assert not keep.filter(record("Hooks will be executed in the following order:\nbefore_run:"))
    assert not keep.filter(record("Config:\nmodel = ..."))
    assert keep.filter(record("Iter(train) [ 2/10]  lr: 1e-3  loss: 4.2"))


def test_progress_lines_in_process(capsys, monkeypatch):
    monkeypatch.setenv("BABYVLM_PROGRESS_EVERY", "0")
    with progress(3, "stage", unit="thing") as bar:
        for _ in range(3):
            bar.update()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" [")[0] for line in lines] == ["stage: 1/3 thing", "stage: 2/3 thing", "stage: 3/3 thing"]
