"""The demo-size DevCV build passes every ``babyvlm tasks check`` (probes included) in both domains, with at
least 100 test items per entry: the validity issue's acceptance test, on the demo's own corpus sizes and
seeds (16 minutes SAYCam-format, 4 minutes Ego4D-format; test share 0.3)."""

import json
import subprocess
import sys

import pytest

BABYVLM = [sys.executable, "-m", "babyvlm"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*BABYVLM, *args], capture_output=True, text=True, timeout=1800)


@pytest.mark.slow  # ~5 minutes on 2 cores: two corpora, twelve tasks in two domains, every check
def test_the_demo_size_build_passes_every_check_in_both_domains(tmp_path):
    corpus, ood, tasks = tmp_path / "corpus", tmp_path / "ood_corpus", tmp_path / "tasks"
    common = ["--fps", "5", "--size", "224", "--video-minutes", "0.5", "--quiet"]
    assert _run("synth", "saycam", str(corpus), "--minutes", "16", "--seed", "0", *common).returncode == 0
    assert _run("synth", "ego4d", str(ood), "--minutes", "4", "--seed", "1", *common).returncode == 0
    built = _run("tasks", "build", "--source", "saycam", "--root", str(corpus), "--out", str(tasks),
                 "--max-items", "300", "--split-fraction", "test=0.3", "--no-instructions")
    assert built.returncode == 0, built.stderr[-2000:]
    built = _run("tasks", "build", "--source", "ego4d", "--root", str(ood), "--out", str(tasks), "--max-items", "300")
    assert built.returncode == 0, built.stderr[-2000:]
    for domain in ("saycam", "ego4d"):
        checked = _run("tasks", "check", str(tasks / domain), "--no-rebuild", "--json")
        results = json.loads(checked.stdout)
        failed = [f"{r['where']} {r['check']}: {r['detail']}" for r in results if not r["ok"]]
        assert checked.returncode == 0 and not failed, "\n".join(failed)
        manifest = json.loads((tasks / domain / "manifest.json").read_text())
        for name, entry in manifest["tasks"].items():
            assert entry["splits"]["test"]["items"] >= 100, (domain, name, entry["splits"]["test"]["items"])
