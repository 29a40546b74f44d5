"""benchmarks/kernel_speed.py runs end to end in its CPU smoke mode (Triton interpreter, tiny shapes) and
writes the JSON report the GPU run would: checks, timing rows, ratios, end-to-end rows, verdicts."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "kernel_speed.py"


# ~14 s CPU in the Triton interpreter for a tool, not a library path (the kernels have their own fast tests):
# moved out of the fast tier to keep it under 5 minutes on 2 cores
@pytest.mark.slow
def test_benchmark_smoke_run_writes_a_complete_report(tmp_path):
    out = tmp_path / "kernels.json"
    subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--skip-full-model", "--out", str(out)], check=True,
                   capture_output=True, text=True, timeout=300)
    report = json.loads(out.read_text())
    assert {c["kernel"] for c in report["checks"]} == {"rmsnorm", "swiglu", "rope", "cross_entropy"}
    assert all(c["ok"] for c in report["checks"]), report["checks"]
    triton_rows = [r for r in report["kernels"] if r["impl"] == "triton"]
    assert len(triton_rows) == 8 and all(r["status"] == "ok" and r["ms"] > 0 for r in triton_rows)
    assert all("vs_best_torch" in r for r in triton_rows)
    liger = [r for r in report["kernels"] if r["impl"] == "liger"]
    assert liger and all(r["status"] == "ok" or r["status"].startswith("n/a") for r in liger)  # absent: n/a
    assert [r["variant"] for r in report["e2e"]] == ["pytorch", "triton"]
    assert all(r["status"] == "ok" and 0 <= r["mfu"] for r in report["e2e"])
    assert set(report["verdicts"]) == {"rmsnorm", "swiglu", "rope", "cross_entropy"}
    assert "| kernel | shape | mode | impl |" in report["markdown"]
