"""docs/cli.md is the click help of every bundled command, regenerated here: the test fails when a
command changed and the reference was not regenerated (``.venv/bin/python docs/gen_cli.py``)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date(fresh_registry):
    generated = load_generator().render()
    current = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert current == generated, "docs/cli.md is stale: run .venv/bin/python docs/gen_cli.py"


def test_reference_covers_every_command_and_subcommand(fresh_registry):
    from babyvlm.cli import cli

    generator = load_generator()
    text = generator.render()
    titles = re.findall(r"^## (.+)$", text, flags=re.M)
    top = [name for name in cli.list_commands(None)]
    assert titles[0] == "babyvlm" and all(f"babyvlm {name}" in titles for name in top)
    assert "babyvlm sweep age" in titles and "babyvlm data build" in titles
    for title in titles:  # the table of contents links every section
        assert f"- [`{title}`](#{generator.anchor(title)})" in text
    assert "(unavailable:" not in text  # a command that failed to load would show up like this


def test_check_mode_detects_a_stale_reference(tmp_path):
    """``gen_cli.py --check`` exits 1 when the file differs (run on a copy of the script and a stale file)."""
    script = tmp_path / "gen_cli.py"
    script.write_text((DOCS / "gen_cli.py").read_text(encoding="utf-8"))
    (tmp_path / "cli.md").write_text("# stale\n")
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "cli.md is stale" in result.stderr
