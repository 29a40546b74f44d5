"""docs/plugins.md "How a run flows": its third-party package (a task, a source under a new domain name
and an evaluator), installed in a temporary environment, is used by ``babyvlm run`` from its config
with no change to babyvlm."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
FLOW_FILE = re.compile(r"<!-- flow file: (\S+) -->\n```\w*\n(.*?)```", re.DOTALL)


def flow_files() -> dict[str, str]:
    return dict(FLOW_FILE.findall(DOC.read_text(encoding="utf-8")))


def install(site: Path) -> None:
    """The doc's module as an installed distribution (``*.dist-info`` with its entry point) on ``site``."""
    info = site / "babyvlm_toddlercam-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: babyvlm-toddlercam\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[babyvlm]\ntoddlercam = babyvlm_toddlercam\n")
    for name, text in flow_files().items():
        (site / name).write_text(text)


def test_the_page_names_every_stage():
    text = DOC.read_text(encoding="utf-8")
    for stage in ("`corpora`", "`tasks`", "`model`", "`blind_twin`", "`evaluation`", "`report`"):
        assert stage in text[text.index("## How a run flows"):]
    assert set(flow_files()) == {"babyvlm_toddlercam.py", "toddlercam_run.py"}


@pytest.mark.slow
def test_a_third_party_task_source_and_evaluator_run_from_a_config(tmp_path):
    install(tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH", "")) if p))
    env.pop("BABYVLM_LOAD_PLUGINS", None)
    work = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "babyvlm", "run", "toddlercam_run.py", "--work-dir", str(work)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in (work / "tasks").iterdir() if p.is_dir()) == ["saycam", "toddlercam"]
    assert (work / "tasks" / "toddlercam" / "toddler_pv_test.json").is_file()  # the task, in the new domain
    for role in ("model", "random"):
        assert (work / "eval" / role / "stamped.txt").is_file()  # the third-party evaluator ran
        results = [json.loads(p.read_text()) for p in (work / "eval" / role / "toddlercam").glob("*_results.json")]
        assert results and "toddler_pv" in results[0]["results"]
    assert "out-of-domain" in (work / "report.md").read_text()
