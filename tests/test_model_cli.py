"""``babyvlm model info`` / ``babyvlm model build`` and the bundled model configs."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from safetensors import safe_open

import babyvlm
from babyvlm.cli import cli

BABYVLM = [sys.executable, "-m", "babyvlm"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    return subprocess.run([*BABYVLM, *args], capture_output=True, text=True, timeout=300, env=env)


def within(value: float, target: float, tolerance: float = 0.02) -> bool:
    return abs(value - target) <= tolerance * target


def test_model_info_paper_matches_the_published_sizes():
    run = run_cli("model", "info", "paper", "--json")
    assert run.returncode == 0, run.stderr
    info = json.loads(run.stdout)
    parts = info["parts"]
    assert within(parts["encoder"]["params"], 303e6), parts["encoder"]
    assert within(parts["connector"]["params"], 6.3e6), parts["connector"]
    assert within(parts["language_model"]["params"], 1.0e9), parts["language_model"]
    assert info["tokens_per_image"] == 197 and info["vocab_size"] == 6000
    assert parts["language_model"]["input_embeddings"] == 6000 * 2048
    assert info["total"] == sum(p["params"] for p in parts.values())
    assert info["components"] == {"encoder": "vit (vit-l-16)", "connector": "mlp2x_gelu",
                                  "language_model": "llama (tinyllama-1.1b)"}


def test_model_build_writes_a_checkpoint_folder(tmp_path):
    out = tmp_path / "tiny"
    run = run_cli("model", "build", "tiny", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "hf_llava" in run.stdout
    for name in ("config.py", "config.json", "model.safetensors", "generation_config.json"):
        assert (out / name).is_file(), name
    assert babyvlm.load_config(out).model.encoder.preset == "tiny"
    assert json.loads((out / "config.json").read_text())["model_type"] == "llava"
    with safe_open(str(out / "model.safetensors"), framework="pt") as handle:
        weights = sum(math.prod(handle.get_slice(key).get_shape()) for key in handle.keys())
    info = json.loads(CliRunner().invoke(cli, ["model", "info", str(out), "--json"]).output)
    tiny = json.loads(CliRunner().invoke(cli, ["model", "info", "tiny", "--json"]).output)
    assert info["parts"] == tiny["parts"]
    # every parameter is saved, plus LLaVA's unused ViT pooler (exported as zeros): weight 128x128 + bias
    assert weights == info["total"] + 128 * 128 + 128


def test_model_info_text_and_freeze_override():
    result = CliRunner().invoke(cli, ["model", "info", "tiny", "--set", "model.freeze=['encoder', 'connector']"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:] if line.strip()}
    assert "(0 trainable)" in lines["encoder"] and "(0 trainable)" in lines["connector"]
    assert "(0 trainable)" not in lines["language_model"]
    assert "tokens per image: 17" in result.output


def test_model_info_errors_are_clean():
    result = CliRunner().invoke(cli, ["model", "info", "no-such-preset"])
    assert result.exit_code != 0 and "not found" in result.output
    result = CliRunner().invoke(cli, ["model", "info", "tiny", "--set", "model.encoder.preset=vit-h"])
    assert result.exit_code != 0 and "unknown preset 'vit-h'" in result.output


@pytest.mark.parametrize("preset", ["tiny", "paper"])
def test_bundled_configs_name_registered_components(preset):
    cfg = babyvlm.load_config(preset)
    assert cfg.model.type == "babyllava"
    for kind, part in (("encoder", "encoder"), ("connector", "connector"), ("language_model", "language_model")):
        assert cfg.model[part]["type"] in babyvlm.registry.names(kind)
    assert Path(babyvlm.core.compose.CONFIG_DIR / f"{preset}.py").is_file()
