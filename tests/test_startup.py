"""Startup stays light: discovering the bundled plugins imports none of their heavy dependencies (they
register import strings), every such string resolves, and ``babyvlm data stats`` runs without transformers.

The import checks run in fresh subprocesses: this test process has long since imported everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest
import test_builder_support as support

from babyvlm import registry
from babyvlm.plugins.pretraining_set.builder import BuildPlan, build_pretraining_set

HEAVY = ("torch", "transformers", "triton", "av", "lmdb", "tokenizers")

# Imports each bundled entry point in turn, then loads the registry; prints as JSON
# {"blame": {plugin: [heavy packages it pulled in]}, "heavy": [...], "broken": {plugin: error}}.
LOAD_AND_REPORT = """
import json, sys
from importlib import metadata
from babyvlm import registry
heavy = set(sys.argv[1:])
def heavy_loaded():
    return {m.partition('.')[0] for m in sys.modules} & heavy
blame = {}
for ep in sorted(metadata.entry_points(group='babyvlm'), key=lambda e: e.name):
    if ep.dist is None or ep.dist.metadata['Name'] != 'babyvlm':
        continue
    before = heavy_loaded()
    ep.load()
    if heavy_loaded() - before:
        blame[ep.name] = sorted(heavy_loaded() - before)
registry.REGISTRY.load()
broken = {p.name: p.error for p in registry.plugins() if p.status != 'ok'}
print(json.dumps({"blame": blame, "heavy": sorted(heavy_loaded()), "broken": broken}))
"""


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BABYVLM_LOAD_PLUGINS": ""}  # bundled plugins only: third-party ones may be heavy
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120)


def test_loading_the_bundled_plugins_imports_no_heavy_dependency():
    done = run_python(LOAD_AND_REPORT, *HEAVY)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert not report["broken"], f"broken bundled plugins: {report['broken']}"
    assert not report["heavy"], f"loading the plugins imported {report['heavy']}; by plugin: {report['blame']}"
    assert not report["blame"]


def test_every_bundled_component_and_command_resolves(fresh_registry):
    bundled = {p.name for p in registry.plugins() if p.bundled}
    resolved = 0
    for kind, entries in registry.components().items():
        for name, plugin in entries.items():
            if plugin not in bundled:
                continue
            component = registry.get(kind, name)
            if kind == "command":
                assert isinstance(component, click.Command), (name, component)
            else:
                assert callable(component), (kind, name, component)
            resolved += 1
    assert resolved >= 20
    assert {"data", "demo", "model", "synth"} <= set(registry.names("command"))


def test_data_stats_does_not_import_transformers(tmp_path, fresh_registry):
    support.register_fake_source()
    store = tmp_path / "store"
    build_pretraining_set(BuildPlan(source="fake", root=support.write_corpus(tmp_path / "corpus", recordings=1),
                                    out=store), log=lambda line: None)
    code = ("import sys\n"
            "from babyvlm.cli import cli\n"
            f"cli.main(['data', 'stats', {str(store)!r}], standalone_mode=False)\n"
            "print('heavy:', sorted(m for m in ('transformers', 'tokenizers', 'triton') if m in sys.modules))\n")
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert "samples: " in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "heavy: []", done.stdout


@pytest.mark.slow  # ~7 s: imports every plugin module in a fresh process
def test_plugin_package_keeps_its_public_names_importable():
    code = ("import sys\n"
            "import babyvlm.plugins.vit as vit\n"
            "assert 'torch' not in sys.modules\n"
            "from babyvlm.plugins.vit import ViTEncoder\n"
            "from babyvlm.plugins.vit.encoder import ViTEncoder as Direct\n"
            "assert ViTEncoder is Direct\n"
            "try:\n"
            "    vit.NoSuchName\n"
            "except AttributeError as exc:\n"
            "    print(exc)\n")
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "module 'babyvlm.plugins.vit' has no attribute 'NoSuchName'"

