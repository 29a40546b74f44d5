"""``babyvlm demo --set`` goes through the shared ``KEY=VALUE`` parser (``babyvlm.core.io.parse_key_values``):
a malformed pair is refused as a one-line error before the demo writes anything."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from babyvlm.cli import cli

# Fails fast if it ever runs (an unknown synth kind), so a parser that let a bad pair through shows up
# as a wrong error, not a minutes-long demo.
QUICK_FAILING_CONFIG = 'corpus = dict(kind="no-such-kind", minutes=0.1, seed=0, fps=5, size=64, video_minutes=0.1)\n'


@pytest.mark.parametrize("pair", ["=5", "corpus.minutes"])
def test_malformed_set_pair_is_refused_before_any_work(tmp_path, pair):
    config = tmp_path / "quick.py"
    config.write_text(QUICK_FAILING_CONFIG)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["demo", "--out", str(out), "--config", str(config), "--set", pair])
    assert result.exit_code == 1, result.output
    assert f"--set: expected KEY=VALUE, got {pair!r}" in result.output
    assert not out.exists()
