"""Connectors declare how many tokens an image becomes: a Q-Former-like resampler (learned queries +
cross-attention, 17 ViT tokens -> 4) makes ``tokens_per_image``, the merge, forward, generate, checkpoints
and ``babyvlm model info`` (in process and in a real CLI process, as an installed plugin) all use 4."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from model_support import saved_tiny_tokenizer

import babyvlm
from babyvlm.cli import cli
from babyvlm.core.errors import ConfigError
from babyvlm.plugins.babyllava import BabyLLaVA

PLUGIN = "babyvlm_test_resampler"
QUERIES = 4
RESAMPLER_SOURCE = '''"""A Q-Former-like connector: learned queries cross-attend to the encoder tokens."""
import torch

from babyvlm import hookimpl


class QueryResampler(torch.nn.Module):
    def __init__(self, in_features: int, out_features: int, num_queries: int = 4, lie: int = 0):
        super().__init__()
        self.num_queries, self.lie = num_queries, lie
        self.queries = torch.nn.Parameter(torch.randn(num_queries, out_features) * 0.02)
        self.keys = torch.nn.Linear(in_features, out_features)
        self.attention = torch.nn.MultiheadAttention(out_features, num_heads=4, batch_first=True)

    def forward(self, features):
        keys = self.keys(features)
        queries = self.queries.expand(features.shape[0], -1, -1)
        return self.attention(queries, keys, keys, need_weights=False)[0]

    def output_tokens(self, input_tokens: int) -> int:
        return self.num_queries + self.lie  # lie != 0: a broken connector whose declaration is wrong


@hookimpl
def register_connectors(register):
    register("query_resampler", QueryResampler)
'''
CORPUS = ["look at the ball", "where is the doggy", "the cup is red", "a big truck"] * 3


def install(root: Path) -> Path:
    """The resampler as an installed plugin (a module plus the *.dist-info pip leaves behind)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{PLUGIN}.py").write_text(RESAMPLER_SOURCE)
    info = root / f"{PLUGIN}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PLUGIN}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[babyvlm]\n{PLUGIN} = {PLUGIN}\n")
    return root


@pytest.fixture
def resampler(fresh_registry, tmp_path, monkeypatch):
    """The plugin registered in process on a fresh registry."""
    monkeypatch.syspath_prepend(str(install(tmp_path / "site")))
    module = importlib.import_module(PLUGIN)
    fresh_registry.register_plugin(module, PLUGIN)
    yield module
    sys.modules.pop(PLUGIN, None)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    return saved_tiny_tokenizer(tmp_path_factory.mktemp("tokenizer"), CORPUS)


def model_spec(tokenizer_dir: Path | None = None, **connector) -> dict:
    spec = dict(type="babyllava", encoder=dict(type="vit", preset="tiny"),
                connector=dict(type="query_resampler", **connector),
                language_model=dict(type="llama", preset="tiny", num_hidden_layers=1), template="baby_plain")
    if tokenizer_dir is not None:
        spec["tokenizer"] = dict(type="bpe", path=str(tokenizer_dir))
    return spec


def build(tokenizer_dir: Path | None = None, **connector) -> BabyLLaVA:
    torch.manual_seed(0)
    return babyvlm.build_model({"model": model_spec(tokenizer_dir, **connector)})


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def sample(images: int, answer: str = "look at the ball") -> dict:
    return {"conversations": [{"from": "human", "value": "<image>" * images}, {"from": "gpt", "value": answer}],
            "images": [image(k) for k in range(images)]}


def test_tokens_per_image_comes_from_the_connector(resampler):
    model = build()
    assert model.encoder.num_tokens == 17 and model.tokens_per_image == QUERIES
    counts = model.parameter_counts()
    assert counts["tokens_per_image"] == QUERIES and counts["encoder_tokens"] == 17
    assert tuple(model.encode_images(torch.zeros(2, 3, 64, 64)).shape) == (2, QUERIES, 128)


def test_forward_expands_each_image_into_the_declared_tokens(resampler, tokenizer_dir):
    model = build(tokenizer_dir)
    samples = [sample(1), sample(2, "where is the doggy")]
    batch = model.prepare_batch(samples)
    out = model(**batch)
    text_lengths = batch["attention_mask"].sum(dim=1)  # <image> counts once here
    expanded = out["attention_mask"].sum(dim=1)
    assert expanded.tolist() == [int(text_lengths[0]) + 1 * (QUERIES - 1), int(text_lengths[1]) + 2 * (QUERIES - 1)]
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert model.connector.queries.grad is not None and model.connector.queries.grad.abs().sum() > 0


def test_generate_uses_the_declared_tokens(resampler, tokenizer_dir):
    model = build(tokenizer_dir).eval()
    prompt = model.prompt_ids(sample(2))
    batch = model._pad([prompt])
    merged = model.embed(batch["input_ids"], torch.stack([model.encoder.preprocess(image(k)) for k in range(2)]),
                         batch["attention_mask"], image_counts=torch.tensor([2]))
    assert int(merged.lengths[0]) == len(prompt) - 2 + 2 * QUERIES
    generated = model.generate(sample(2), max_new_tokens=5)
    assert isinstance(generated, list) and len(generated) <= 5 and all(isinstance(t, int) for t in generated)
    assert model.generate([sample(2), sample(1)], max_new_tokens=5)[0] == generated  # batched = one at a time


def test_model_info_says_four_in_process(resampler, tmp_path):
    config = tmp_path / "resampler.py"
    config.write_text(f"model = {model_spec()!r}\n")
    result = CliRunner().invoke(cli, ["model", "info", str(config)])
    assert result.exit_code == 0, result.output
    assert f"tokens per image: {QUERIES} (from the connector, for 17 encoder tokens; image 64 px)" in result.output
    assert "query_resampler" in result.output
    info = json.loads(CliRunner().invoke(cli, ["model", "info", str(config), "--json"]).output)
    assert info["tokens_per_image"] == QUERIES


# ~8 s CPU (a fresh interpreter importing transformers); test_example_plugin checks the same path in the fast
# tier: `model info` in a real process with a pip-installed plugin's resampler says 4 tokens
@pytest.mark.slow
def test_model_info_says_four_in_a_real_cli_process_with_the_plugin_installed(tmp_path):
    site = install(tmp_path / "site")
    config = tmp_path / "resampler.py"
    config.write_text(f"model = {model_spec()!r}\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p))
    env.pop("BABYVLM_LOAD_PLUGINS", None)
    run = subprocess.run([sys.executable, "-m", "babyvlm", "model", "info", str(config), "--json"], env=env,
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    info = json.loads(run.stdout)
    assert info["tokens_per_image"] == QUERIES and info["components"]["connector"] == "query_resampler"


def test_checkpoint_round_trip_keeps_the_token_count(resampler, tokenizer_dir, tmp_path):
    model = build(tokenizer_dir).eval()
    with pytest.warns(UserWarning, match="connector QueryResampler is not LLaVA's projector"):
        info = model.save_pretrained(tmp_path / "ckpt")
    assert info.layout == "babyvlm" and not info.processor  # not HF-exportable: no LLaVA config, no processor
    assert not (tmp_path / "ckpt" / "config.json").exists()
    assert not (tmp_path / "ckpt" / "processor_config.json").exists()
    loaded = BabyLLaVA.from_pretrained(tmp_path / "ckpt").eval()
    assert loaded.tokens_per_image == QUERIES
    assert loaded.generate(sample(1), max_new_tokens=5) == model.generate(sample(1), max_new_tokens=5)


def test_a_connector_whose_output_differs_from_its_declaration_is_named(resampler, tokenizer_dir):
    model = build(tokenizer_dir, lie=1)
    assert model.tokens_per_image == QUERIES + 1
    with pytest.raises(ConfigError, match=r"connector QueryResampler produced features of shape \(1, 4, 128\), "
                                          r"but its output_tokens\(17\) declares 5 tokens per image"):
        model(**model.prepare_batch([sample(1)]))


def test_a_connector_declaring_no_tokens_is_refused_when_built(resampler):
    with pytest.raises(ConfigError, match=r"QueryResampler.output_tokens\(17\) must be a positive integer, got 0"):
        build(num_queries=1, lie=-1)
