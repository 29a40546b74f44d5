"""``babyvlm plugins`` / ``babyvlm components`` and plugin commands, through real CLI subprocesses and click's runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from registry_support import command_plugin

from babyvlm import registry
from babyvlm.cli import cli
from babyvlm.core.hookspecs import hookimpl
from babyvlm.core.kinds import KINDS

GOOD = """
import click
import torch
from babyvlm.core.hookspecs import hookimpl

@click.command()
def hello():
    click.echo("hello from cli_good")

@hookimpl
def register_connectors(register):
    register("cli_linear", torch.nn.Linear)

@hookimpl
def register_commands(register):
    register("cli-hello", hello)
"""

FLAKY = """
import click
import torch
from babyvlm.core.hookspecs import hookimpl

@hookimpl
def register_connectors(register):
    register("flaky_linear", torch.nn.Linear)
    raise RuntimeError("license server unreachable")

@hookimpl
def register_commands(register):
    register("flaky-cmd", click.Command("flaky-cmd", callback=lambda: click.echo("ran anyway")))
"""

FLAKY_ERROR = "in register_connectors: RuntimeError: license server unreachable"
PLUGIN_KEYS = {"name", "package", "version", "bundled", "status", "error", "components"}


def write_distribution(root: Path, dist: str, version: str, entry_point: str, module: str, source: str | None) -> None:
    """A minimal installed distribution (``*.dist-info`` + module) that importlib.metadata finds on sys.path."""
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[babyvlm]\n{entry_point} = {module}\n")
    if source is not None:
        (root / f"{module}.py").write_text(source)


def babyvlm_command() -> list[str]:
    script = Path(sys.executable).with_name("babyvlm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "babyvlm"]


def run_cli(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("BABYVLM_LOAD_PLUGINS", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run([*babyvlm_command(), *args], cwd=site, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    write_distribution(root, "babyvlm-cli-good", "1.2.3", "cli_good", "cli_good_plugin", GOOD)
    write_distribution(root, "babyvlm-cli-flaky", "0.9", "cli_flaky", "cli_flaky_plugin", FLAKY)
    write_distribution(root, "babyvlm-cli-unimportable", "0.1", "cli_unimportable", "cli_unimportable_plugin",
                       "raise ImportError('needs libfoo')\n")
    return root


@pytest.fixture(scope="module")
def plugins_json(site) -> dict[str, dict]:
    result = run_cli(site, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert isinstance(listing, list)
    return {entry["name"]: entry for entry in listing}


@pytest.fixture(scope="module")
def components_json(site) -> dict[str, dict[str, str]]:
    result = run_cli(site, "components", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# ---- babyvlm plugins --json ----------------------------------------------------------------
def test_plugins_json_structure(plugins_json):
    for name, entry in plugins_json.items():
        assert set(entry) == PLUGIN_KEYS, name
        assert entry["status"] in {"ok", "broken"}
        assert (entry["error"] is None) == (entry["status"] == "ok"), name
        assert set(entry["components"]) <= set(KINDS)
        assert all(names == sorted(names) for names in entry["components"].values())


def test_bundled_tokenizer_and_templates_are_ok(plugins_json):
    tokenizer, templates = plugins_json["bpe_tokenizer"], plugins_json["chat_templates"]
    assert (tokenizer["status"], tokenizer["bundled"], tokenizer["package"]) == ("ok", True, "babyvlm")
    assert tokenizer["components"] == {"tokenizer": ["bpe"]}
    assert (templates["status"], templates["bundled"]) == ("ok", True)
    assert templates["components"] == {"template": ["baby_plain", "baby_v1"]}


def test_external_plugin_is_listed_with_package_and_version(plugins_json):
    good = plugins_json["cli_good"]
    assert (good["package"], good["version"], good["bundled"], good["status"]) == ("babyvlm-cli-good", "1.2.3", False, "ok")
    assert good["components"] == {"command": ["cli-hello"], "connector": ["cli_linear"]}


def test_plugin_raising_while_registering_is_listed_broken(plugins_json):
    flaky = plugins_json["cli_flaky"]
    assert (flaky["status"], flaky["error"]) == ("broken", FLAKY_ERROR)
    assert flaky["components"] == {"command": ["flaky-cmd"], "connector": ["flaky_linear"]}


def test_plugin_failing_to_import_is_listed_broken(plugins_json):
    broken = plugins_json["cli_unimportable"]
    assert (broken["status"], broken["error"], broken["components"]) == ("broken", "ImportError: needs libfoo", {})


def test_bundled_plugins_are_listed_before_external_ones(plugins_json):
    bundled_flags = [entry["bundled"] for entry in plugins_json.values()]
    assert bundled_flags == sorted(bundled_flags, reverse=True)


# ---- babyvlm components --json -------------------------------------------------------------
def test_components_json_lists_every_kind_with_owner(components_json):
    assert list(components_json) == list(KINDS)
    assert components_json["tokenizer"]["bpe"] == "bpe_tokenizer"
    assert components_json["template"] == {**components_json["template"], "baby_plain": "chat_templates",
                                           "baby_v1": "chat_templates"}
    assert components_json["connector"]["cli_linear"] == "cli_good"
    assert components_json["command"]["cli-hello"] == "cli_good"


# ---- plugin commands -----------------------------------------------------------------------
def test_broken_plugins_command_fails_with_its_error(site):
    result = run_cli(site, "flaky-cmd")
    assert result.returncode == 1
    assert ("command 'flaky-cmd' comes from plugin 'cli_flaky', which is broken: " + FLAKY_ERROR) in result.stderr
    assert "Traceback" not in result.stderr
    assert "ran anyway" not in result.stdout


def test_plugin_command_runs(fresh_registry):
    registry.register_plugin(command_plugin("say-hi", "hi there"), "greeter")
    result = CliRunner().invoke(cli, ["say-hi"])
    assert result.exit_code == 0 and result.output.strip() == "hi there"
    assert "say-hi" in CliRunner().invoke(cli, ["--help"]).output


def test_command_registered_twice_names_both_plugins(fresh_registry):
    registry.register_plugin(command_plugin("twin", "one"), "twin_one")
    registry.register_plugin(command_plugin("twin", "two"), "twin_two")
    result = CliRunner().invoke(cli, ["twin"])
    assert result.exit_code == 1
    assert "command 'twin' is registered by more than one plugin: 'twin_one' and 'twin_two'" in result.output


def test_plugins_text_output_shows_broken_error(fresh_registry):
    def register_connectors(register):
        raise ValueError("bad weights path")

    registry.register_plugin(SimpleNamespace(register_connectors=hookimpl(register_connectors)), "wobbly")
    output = CliRunner().invoke(cli, ["plugins"]).output
    assert "wobbly 0 (wobbly) [broken]" in output
    assert "error: in register_connectors: ValueError: bad weights path" in output
    assert "chat_templates 0.1.0 (bundled) [ok]" in output


def test_components_of_one_kind(fresh_registry):
    result = CliRunner().invoke(cli, ["components", "template", "--json"])
    assert result.exit_code == 0
    table = json.loads(result.output)
    assert list(table) == ["template"]
    assert {"baby_plain", "baby_v1"} <= set(table["template"])
