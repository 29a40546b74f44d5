"""A package outside the repo adds a connector through the ``babyvlm`` entry point, like a pip-installed plugin.

The package is written into ``tmp_path`` as a module plus a ``*.dist-info`` folder (what pip leaves behind),
then found through ``PYTHONPATH`` (CLI subprocesses) or ``sys.path`` (in process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import babyvlm
from babyvlm import registry

PLUGIN = "my_babyvlm_plugin"
PACKAGE = "my-babyvlm-plugin"
VERSION = "0.1"
CONNECTOR = "gated_linear"

PLUGIN_SOURCE = '''"""A third-party babyvlm plugin: a gated linear connector."""
import torch

from babyvlm import hookimpl


class GatedLinearConnector(torch.nn.Module):
    """proj(x) * sigmoid(gate(x)): a connector babyvlm does not ship."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.proj = torch.nn.Linear(in_features, out_features)
        self.gate = torch.nn.Linear(in_features, out_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(features) * torch.sigmoid(self.gate(features))

    def output_tokens(self, input_tokens: int) -> int:
        return input_tokens


@hookimpl
def register_connectors(register):
    register("gated_linear", GatedLinearConnector)
'''


def install_package(root: Path) -> Path:
    (root / f"{PLUGIN}.py").write_text(PLUGIN_SOURCE)
    info = root / f"{PLUGIN}-{VERSION}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {VERSION}\n"
                                   "Summary: a gated linear connector for babyvlm\n")
    (info / "entry_points.txt").write_text(f"[babyvlm]\n{PLUGIN} = {PLUGIN}\n")
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return install_package(tmp_path_factory.mktemp("site-packages"))


def plugins_json(site: Path, load_plugins: str | None = None) -> dict[str, dict]:
    env = dict(os.environ)
    env.pop("BABYVLM_LOAD_PLUGINS", None)
    if load_plugins is not None:
        env["BABYVLM_LOAD_PLUGINS"] = load_plugins
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    script = Path(sys.executable).with_name("babyvlm")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "babyvlm"]
    result = subprocess.run([*command, "plugins", "--json"], cwd=site, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return {entry["name"]: entry for entry in json.loads(result.stdout)}


def test_cli_lists_the_installed_plugin(site):
    listed = plugins_json(site)[PLUGIN]
    assert listed == {"name": PLUGIN, "package": PACKAGE, "version": VERSION, "bundled": False, "status": "ok",
                      "error": None, "components": {"connector": [CONNECTOR]}}


def test_load_plugins_env_skips_it_but_keeps_bundled(site):
    listed = plugins_json(site, load_plugins="some_other_plugin")
    assert PLUGIN not in listed
    assert listed["bpe_tokenizer"]["status"] == listed["chat_templates"]["status"] == "ok"


@pytest.fixture
def in_process(site, monkeypatch):
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("BABYVLM_LOAD_PLUGINS", raising=False)
    registry.reset()
    yield
    registry.reset()
    sys.modules.pop(PLUGIN, None)


def test_connector_builds_and_runs_in_process(in_process):
    connector = babyvlm.build("connector", dict(type=CONNECTOR, in_features=8, out_features=16))
    assert type(connector).__module__ == PLUGIN
    features = torch.randn(2, 5, 8)
    projected = connector(features)
    assert projected.shape == (2, 5, 16)
    expected = connector.proj(features) * torch.sigmoid(connector.gate(features))
    assert torch.allclose(projected, expected)
    assert registry.components("connector")["connector"][CONNECTOR] == PLUGIN


def test_load_plugins_env_naming_it_loads_it(in_process, monkeypatch):
    monkeypatch.setenv("BABYVLM_LOAD_PLUGINS", PLUGIN)
    assert CONNECTOR in registry.names("connector")


def test_model_with_third_party_connector_trains(in_process):
    """The tiny preset with its connector swapped for the third-party one: forward, loss, gradients reach it."""
    config = babyvlm.load_config("tiny")
    model_cfg = dict(config.model)
    model_cfg.update(connector=dict(type=CONNECTOR),
                     tokenizer=dict(type="bpe", corpus=["look at the ball", "where is the doggy"] * 3),
                     template="baby_plain")
    with pytest.warns(UserWarning, match="BPE corpus too small"):
        model = babyvlm.build_model({"model": model_cfg})
    assert type(model.connector).__name__ == "GatedLinearConnector"
    size = int(model.encoder.image_size)
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    sample = {"conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "look at the ball"}],
              "images": [image]}
    batch = model.prepare_batch([sample])
    out = model(**batch)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert model.connector.gate.weight.grad is not None
    assert model.connector.gate.weight.grad.abs().sum() > 0
