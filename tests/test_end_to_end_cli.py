"""The documented CLI path, as real processes: synth -> data build -> verify -> stats, for the SAYCam and
the Ego4D formats."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BABYVLM = [str(Path(sys.executable).with_name("babyvlm"))]


def babyvlm(*args) -> str:
    result = subprocess.run(BABYVLM + [str(a) for a in args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


@pytest.mark.parametrize("kind", ["saycam", "ego4d"])
def test_synth_build_verify_stats(tmp_path, kind):
    corpus, store = tmp_path / "corpus", tmp_path / "store"
    babyvlm("synth", kind, corpus, "--minutes", "1.5", "--seed", "5", "--size", "64", "--video-minutes", "0.3", "--quiet")
    babyvlm("data", "build", "--source", kind, "--root", corpus, "--out", store)
    assert "missing: 0  duplicates: 0  orphans: 0  corrupted: 0" in babyvlm("data", "verify", store)
    stats = json.loads(babyvlm("data", "stats", store, "--json"))
    by_format = stats["counts"]["by_format"]
    assert set(by_format) == {"image", "video", "interleaved"} and all(by_format.values())
    ages = stats["counts"]["by_age_month"]
    if kind == "saycam":
        assert set(stats["counts"]["by_child"]) <= {"S", "A", "Y"} and len(stats["counts"]["by_child"]) >= 2
        assert len(ages) >= 3 and all(6 <= int(month) <= 32 for month in ages)
    else:
        assert set(ages) == {"unknown"}  # Ego4D wearers are adults without an age in the data
