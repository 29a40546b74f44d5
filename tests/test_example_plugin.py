"""examples/babyvlm-example-plugin installed into a temporary environment (``pip install --no-deps
--no-build-isolation --no-index --target``, offline): ``babyvlm plugins`` sees it, and a config naming
its connector builds and trains a step on items of its own task, built from a synthetic corpus."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import babyvlm
from babyvlm import registry
from babyvlm.core.contracts import missing_members
from babyvlm.core.errors import ConfigError, ModelInputError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "babyvlm-example-plugin"
PLUGIN = "babyvlm_example_plugin"


def babyvlm_command() -> list[str]:
    script = Path(sys.executable).with_name("babyvlm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "babyvlm"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example built and installed offline into a fresh folder (a copy is built, so the repo's
    example folder gets no build/ or egg-info)."""
    scratch = tmp_path_factory.mktemp("example-plugin")
    source = scratch / "source"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = scratch / "site"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                             "--quiet", "--disable-pip-version-check", "--target", str(target), str(source)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / PLUGIN / "__init__.py").is_file()
    return target


def run_cli(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BABYVLM_LOAD_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run([*babyvlm_command(), *args], cwd=site, env=env, capture_output=True, text=True, timeout=300)


def test_babyvlm_plugins_lists_the_installed_example(site):
    result = run_cli(site, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    listed = {entry["name"]: entry for entry in json.loads(result.stdout)}[PLUGIN]
    assert listed == {"name": PLUGIN, "package": "babyvlm-example-plugin", "version": "0.1.0", "bundled": False,
                      "status": "ok", "error": None,
                      "components": {"connector": ["query_resampler"], "task": ["example_brighter"]}}
    info = run_cli(site, "model", "info", str(EXAMPLE / "configs" / "example.py"))
    assert info.returncode == 0, info.stderr
    assert "query_resampler" in info.stdout and "tokens per image: 4" in info.stdout
    tasks = run_cli(site, "tasks", "list", "--json")
    assert tasks.returncode == 0, tasks.stderr
    brighter = {row["name"]: row for row in json.loads(tasks.stdout)}["example_brighter"]
    assert brighter["plugin"] == PLUGIN and brighter["chance"] == 0.5 and brighter["answer_space"] == "A/B"


@pytest.fixture
def installed(site, monkeypatch):
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("BABYVLM_LOAD_PLUGINS", raising=False)
    registry.reset()
    yield site
    registry.reset()
    for name in [m for m in sys.modules if m == PLUGIN or m.startswith(PLUGIN + ".")]:
        sys.modules.pop(name)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "saycam"
    result = subprocess.run([*babyvlm_command(), "synth", "saycam", str(root), "--minutes", "0.5", "--size", "64",
                             "--fps", "2", "--video-minutes", "0.25", "--quiet"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return root


def build_items(corpus: Path, **options):
    task = babyvlm.build("task", "example_brighter", max_items=12, frame_size=64, crop_size=32, **options)
    recordings = list(babyvlm.build("source", "saycam", root=str(corpus)).recordings())
    return task, task.build(recordings, {r.recording_id: "test" for r in recordings}, log=lambda _: None)["test"]


def test_task_meets_the_contract_and_answers_from_pixels(installed, corpus):
    task, items = build_items(corpus)
    assert type(task).__module__ == f"{PLUGIN}.brighter" and missing_members("task", task) == []
    assert task.chance() == 0.5 and task.primary_metric == "acc"
    assert len(items) >= 4
    for item in items:  # the gold letter names the brighter of the two crops
        levels = item.extras["luminance"]
        assert item.answer == "AB"[levels.index(max(levels))] and len(item.images) == 2
    assert sum(task.report.counts.values()) == task.report.total  # skipped pairs are counted by reason
    oracle = [task.score(item, task.respond_with(item, "generate", item.answer), "generate") for item in items]
    assert task.aggregate(items, oracle) == {"acc": 1.0}
    wrong = [task.score(item, ["(A)" if item.answer == "B" else "(B)"], "generate") for item in items]
    assert task.aggregate(items, wrong) == {"acc": 0.0}
    with pytest.raises(ConfigError, match="min_difference must be between 0 and 255"):
        babyvlm.build("task", "example_brighter", min_difference=0)


@pytest.mark.filterwarnings("ignore:BPE corpus too small")
def test_config_naming_the_connector_builds_and_trains_a_step(installed, corpus):
    _, items = build_items(corpus)
    samples = [{"conversations": item.conversations, "images": item.images} for item in items]
    tokenizer = babyvlm.build("tokenizer", dict(type="bpe", vocab_size=300, min_frequency=1,
                                                corpus=[t["value"] for s in samples for t in s["conversations"]]))
    config = babyvlm.load_config(str(EXAMPLE / "configs" / "example.py"))
    config.model.tokenizer = tokenizer
    model = babyvlm.build_model(config)
    assert type(model.connector).__name__ == "QueryResampler" and model.tokens_per_image == 4
    queries = model.connector.queries.detach().clone()
    lm_weights = model.language_model.get_input_embeddings().weight.detach().clone()
    trainer = babyvlm.build("trainer", dict(type="simple", max_steps=2, batch_size=4, lr=1e-2, warmup_ratio=0.0,
                                            log_every=1))
    result = trainer.fit(model, samples, log=lambda _: None, stage="1-alignment")  # alignment: connector only
    assert result.steps == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    assert not torch.equal(model.connector.queries.detach(), queries)  # the plugin's connector learned
    assert torch.equal(model.language_model.get_input_embeddings().weight.detach(), lm_weights)  # LM frozen
    features = model.connector(torch.randn(3, 17, model.encoder.hidden_size))
    assert features.shape == (3, 4, model.language_model.config.hidden_size)
    with pytest.raises(ModelInputError, match=r"expected features \[batch, tokens, \d+\], got \[3, 17, 5\]"):
        model.connector(torch.randn(3, 17, 5))
    with pytest.raises(ConfigError, match=r"out_features \(130\) must be divisible by num_heads \(4\)"):
        babyvlm.build("connector", "query_resampler", in_features=8, out_features=130)


def test_the_guide_quotes_the_example_files_as_they_are():
    import re

    guide = (EXAMPLE.parent.parent / "docs" / "plugins.md").read_text(encoding="utf-8")
    quoted = dict(re.findall(r"<!-- example: (\S+) -->\n```\w*\n(.*?)```", guide, flags=re.S))
    assert set(quoted) == {"pyproject.toml", "src/babyvlm_example_plugin/__init__.py",
                           "src/babyvlm_example_plugin/resampler.py", "src/babyvlm_example_plugin/brighter.py",
                           "configs/example.py"}
    for relative, text in quoted.items():
        assert text == (EXAMPLE / relative).read_text(encoding="utf-8"), f"docs/plugins.md quotes an old {relative}"
