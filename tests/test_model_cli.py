"""``babyvlm model info`` / ``babyvlm model build`` and the bundled model configs."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from model_support import saved_tiny_tokenizer
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
    result = CliRunner().invoke(cli, ["model", "info", "paper", "--json"])  # in-process: built on the meta device
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
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
    # in-process (a real process is tested below): a fresh interpreter costs ~7 s CPU importing transformers
    result = CliRunner().invoke(cli, ["model", "build", "tiny", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "hf_llava" in result.output
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
    result = CliRunner().invoke(cli, ["model", "info", "tiny", "--set", 'model.freeze=["encoder", "connector"]'])
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


@pytest.mark.parametrize(("setting", "message"), [
    ("model.language_model.hidden_size=abc", "language_model 'llama': hidden_size must be a positive integer, got 'abc'"),
    ("model.language_model.hidden_size=null", "language_model 'llama': hidden_size must be a positive integer, got None"),
    ("model.language_model.num_attention_heads=3",
     "language_model 'llama': hidden_size 128 is not a multiple of num_attention_heads 3"),
    ("model.language_model.num_key_value_heads=3",
     "language_model 'llama': num_attention_heads 4 is not a multiple of num_key_value_heads 3"),
    ("model.language_model.rms_norm_eps=abc", "language_model 'llama': invalid option: Field 'rms_norm_eps' expected float"),
    ("model.language_model.hidden_act=swoosh", "language_model 'llama': unknown hidden_act 'swoosh'"),
    ("model.encoder.hidden_size=abc", "encoder 'vit': hidden_size must be a positive integer, got 'abc'"),
    ("model.encoder.num_attention_heads=3", "encoder 'vit': hidden_size 128 is not a multiple of num_attention_heads 3"),
    ("model.encoder.patch_size=0", "encoder 'vit': patch_size must be a positive integer, got 0"),
    ("model.encoder.layer_norm_eps=\"x\"", "encoder 'vit': invalid option: Field 'layer_norm_eps' expected float"),
])
def test_bad_component_values_are_one_line_config_errors(setting, message):
    result = CliRunner().invoke(cli, ["model", "info", "tiny", "--set", setting])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.output.startswith(f"Error: {message}"), result.output


def test_bad_lm_value_in_a_real_process_prints_no_traceback():
    run = run_cli("model", "info", "tiny", "--set", "model.language_model.hidden_size=abc")
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and "StrictDataclass" not in run.stderr
    assert "language_model 'llama': hidden_size must be a positive integer" in run.stderr


def test_set_values_are_json_with_dotted_keys():
    untied = json.loads(CliRunner().invoke(cli, ["model", "info", "tiny", "--json"]).output)
    result = CliRunner().invoke(cli, ["model", "info", "tiny", "--json",
                                      "--set", "model.language_model.tie_word_embeddings=true"])
    assert result.exit_code == 0, result.output  # JSON true, not the string "true" (nor Python's True)
    tied = json.loads(result.output)
    lm_params = untied["parts"]["language_model"]["params"] - tied["parts"]["language_model"]["params"]
    assert lm_params == untied["vocab_size"] * 128  # the output head now shares the input embeddings


def test_set_without_equals_is_refused():
    result = CliRunner().invoke(cli, ["model", "info", "tiny", "--set", "model.freeze"])
    assert result.exit_code == 1 and "--set: expected KEY=VALUE, got 'model.freeze'" in result.output


def test_model_info_stage_shows_what_that_stage_trains():
    result = CliRunner().invoke(cli, ["model", "info", "tiny", "--stage", "1-alignment", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["stage"] == "1-alignment"
    assert {part: counts["trainable"] > 0 for part, counts in info["parts"].items()} == {
        "encoder": False, "connector": True, "language_model": False}
    assert info["trainable"] == info["parts"]["connector"]["params"]
    text = CliRunner().invoke(cli, ["model", "info", "tiny", "--stage", "2-joint"]).output
    assert "trainable counts for stage 2-joint" in text
    assert "tokens per image: 17 (from the connector, for 17 encoder tokens; image 64 px)" in text


def test_model_info_stage_conflicting_with_freeze_is_a_clean_error():
    result = CliRunner().invoke(cli, ["model", "info", "tiny", "--stage", "3-instruction",
                                      "--set", 'model.freeze=["encoder"]'])
    assert result.exit_code != 0
    assert "stage '3-instruction' trains 'encoder', but the model config freezes 'encoder'" in result.output
    assert "Traceback" not in result.output


def test_model_build_with_a_tokenizer_ships_a_processor(tmp_path):
    saved_tiny_tokenizer(tmp_path / "tok", ["look at the ball"] * 3)
    result = CliRunner().invoke(cli, ["model", "build", "tiny", "--tokenizer", str(tmp_path / "tok"),
                                      "--out", str(tmp_path / "ckpt")])
    assert result.exit_code == 0, result.output
    assert "with a Hugging Face processor and chat template" in result.output
    for name in ("processor_config.json", "chat_template.jinja", "tokenizer.json"):
        assert (tmp_path / "ckpt" / name).is_file(), name
