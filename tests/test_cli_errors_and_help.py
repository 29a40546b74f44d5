"""The CLI root: file-system errors print as one line naming the file (bugs keep their traceback), and
``babyvlm --help`` lists every command from registered ``short_help`` without importing torch."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from registry_support import plugin_with_commands

from babyvlm import registry
from babyvlm.cli import cli

HEAVY = ("torch", "transformers", "triton")

# Prints `babyvlm --help`, then the heavy modules it imported, as JSON on the last line.
HELP_AND_IMPORTS = """
import json, sys
from babyvlm.cli import cli
try:
    cli.main(['--help'], prog_name='babyvlm')
except SystemExit:
    pass
print(json.dumps(sorted({m.partition('.')[0] for m in sys.modules} & set(sys.argv[1:]))))
"""


# ---- OSError -> one line naming the file ---------------------------------------------------
def test_model_build_into_an_unwritable_place_names_the_path(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(cli, ["model", "build", "tiny", "--out", str(blocker / "ckpt")])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a ClickException, not an escaped OSError
    assert result.output.startswith(f"Error: {blocker}"), result.output


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_model_build_under_proc_names_the_requested_folder():
    result = CliRunner().invoke(cli, ["model", "build", "tiny", "--out", "/proc/nope"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.output.startswith("Error: /proc/nope:"), result.output


def test_plugin_command_oserror_is_clean_but_a_bug_keeps_its_traceback(fresh_registry, tmp_path):
    missing = tmp_path / "missing.txt"

    @click.command("read-it")
    def read_it():
        missing.read_text()

    @click.command("buggy")
    def buggy():
        raise ValueError("a real bug")

    registry.register_plugin(plugin_with_commands(**{"read-it": (read_it, {}), "buggy": (buggy, {})}), "files")
    result = CliRunner().invoke(cli, ["read-it"])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {missing}: No such file or directory"
    result = CliRunner().invoke(cli, ["buggy"])
    assert isinstance(result.exception, ValueError) and str(result.exception) == "a real bug"


# ---- --help from registered short_help -------------------------------------------------------
def test_help_lists_every_command_without_importing_torch():
    env = {**os.environ, "BABYVLM_LOAD_PLUGINS": ""}
    done = subprocess.run([sys.executable, "-c", HELP_AND_IMPORTS, *HEAVY], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    *help_lines, imported = done.stdout.strip().splitlines()
    listed = {line.split()[0] for line in help_lines[help_lines.index("Commands:") + 1:] if line.strip()}
    assert {"components", "data", "demo", "model", "plugins", "synth"} <= listed
    assert json.loads(imported) == [], f"--help imported {imported}"
    assert "Inspect and build models." in done.stdout


def test_registered_short_help_matches_the_command_itself(fresh_registry):
    checked, differing = 0, {}
    for name in registry.names("command"):
        short = registry.info("command", name).get("short_help")
        if short is None:
            continue
        help_text = " ".join(inspect.cleandoc(registry.get("command", name).help or "").split())
        if not help_text.startswith(short):
            differing[name] = f"{name}: registered {short[:40]!r}..., help starts {help_text[:40]!r}..."
        checked += 1
    assert not differing, "; ".join(differing.values())  # every mismatch at once, not only the first
    assert checked >= 2  # model and demo


def test_help_uses_registered_short_help_without_loading_the_command(fresh_registry):
    registry.register_plugin(plugin_with_commands(
        lazy=("no_such_module_anywhere:command", {"short_help": "Registered help, never imported."})), "lazy_help")
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    assert "lazy  " in result.output and "Registered help, never imported." in result.output
    # running it does import it, and the broken import string is reported then
    assert "cannot import no_such_module_anywhere:command" in CliRunner().invoke(cli, ["lazy"]).output


def test_help_lists_a_broken_command_instead_of_failing(fresh_registry):
    registry.register_plugin(plugin_with_commands(broken=("no_such_module_anywhere:command", {})), "no_help")
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.strip().startswith("broken"))
    assert "(unavailable:" in line


def test_registry_keeps_register_info(fresh_registry):
    registry.register_plugin(plugin_with_commands(
        noted=(click.Command("noted"), {"short_help": "Noted.", "since": "0.2"})), "noted_plugin")
    assert registry.info("command", "noted") == {"short_help": "Noted.", "since": "0.2"}
    assert registry.info("command", "plugins") == {}  # built in, not registered
