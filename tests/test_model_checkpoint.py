"""Checkpoint folders are data, never code: loading reads babyvlm.json (the model spec as JSON),
safetensors and tokenizer files only; paths read from babyvlm.json stay inside the folder; and saving
replaces the folder as a whole (a failed save leaves the previous checkpoint, no stale files)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import babyvlm
from babyvlm.cli import cli
from babyvlm.core.errors import ConfigError, DataError
from babyvlm.plugins.babyllava import BabyLLaVA, hf_export

CORPUS = ["look at the ball", "the doggy is running", "where is your cup", "a big red truck"] * 4


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the corpus is far too small for the requested vocab
        tokenizer = babyvlm.build("tokenizer", dict(type="bpe", corpus=CORPUS, vocab_size=300, min_frequency=1))
    return tokenizer.save(tmp_path_factory.mktemp("tokenizer"))


def tiny_model(tokenizer_dir: Path | None = None, connector: str = "mlp2x_gelu") -> BabyLLaVA:
    torch.manual_seed(0)
    spec = dict(type="babyllava", encoder=dict(type="vit", preset="tiny"), connector=dict(type=connector),
                language_model=dict(type="llama", preset="tiny", num_hidden_layers=1))
    if tokenizer_dir is not None:
        spec["tokenizer"] = dict(type="bpe", path=str(tokenizer_dir))
    return babyvlm.build_model({"model": spec})


def save_quietly(model: BabyLLaVA, folder: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the babyvlm-layout note
        return model.save_pretrained(folder)


def edit_meta(folder: Path, **changes) -> None:
    meta = json.loads((folder / "babyvlm.json").read_text())
    meta.update(changes)
    (folder / "babyvlm.json").write_text(json.dumps(meta))


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# ---- loading never executes the folder's config.py --------------------------------------------
def test_loading_a_checkpoint_does_not_run_its_config_py(tokenizer_dir, tmp_path):
    folder = tmp_path / "downloaded"
    model = tiny_model(tokenizer_dir)
    model.save_pretrained(folder)
    marker = tmp_path / "config_py_ran"
    (folder / "config.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nmodel = dict(type='babyllava')\n")

    loaded = BabyLLaVA.from_pretrained(folder)
    cfg = babyvlm.load_config(folder)
    info = CliRunner().invoke(cli, ["model", "info", str(folder), "--json"])

    assert not marker.exists(), "config.py from the checkpoint was executed"
    assert info.exit_code == 0, info.output
    assert json.loads(info.output)["vocab_size"] == model.tokenizer.vocab_size
    assert cfg.model.tokenizer.path == str(folder.resolve())  # folder-relative in the JSON spec
    for (name, value), (_, other) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(value, other), name


def test_checkpoint_spec_is_plain_json_and_config_py_is_for_people(tokenizer_dir, tmp_path):
    folder = tmp_path / "ckpt"
    tiny_model(tokenizer_dir).save_pretrained(folder)
    meta = json.loads((folder / "babyvlm.json").read_text())
    assert meta["model"]["language_model"] == {"type": "llama", "preset": "tiny", "num_hidden_layers": 1,
                                               "vocab_size": meta["model"]["language_model"]["vocab_size"]}
    assert meta["model"]["tokenizer"] == {"type": "bpe", "path": "."} and meta["folder_paths"] == ["tokenizer.path"]
    # the human-readable config names the folder the checkpoint was saved to
    assert str(folder.resolve()) in (folder / "config.py").read_text()


def test_a_folder_without_babyvlm_json_is_not_run_as_a_config(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    with pytest.raises(ConfigError, match="not a checkpoint folder"):
        babyvlm.load_config(tmp_path / "run")
    assert not marker.exists()


@pytest.mark.parametrize("weights", ["../x.safetensors", "/etc/passwd"])
def test_weights_path_outside_the_folder_is_refused(tmp_path, weights):
    folder = tmp_path / "ckpt"
    save_quietly(tiny_model(), folder)
    (tmp_path / "x.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    edit_meta(folder, weights=weights)
    with pytest.raises(DataError) as caught:
        BabyLLaVA.from_pretrained(folder)
    message = str(caught.value)
    assert str(folder / "babyvlm.json") in message and "'weights'" in message and repr(weights) in message


def test_folder_relative_spec_path_outside_the_folder_is_refused(tokenizer_dir, tmp_path):
    folder = tmp_path / "ckpt"
    tiny_model(tokenizer_dir).save_pretrained(folder)
    meta = json.loads((folder / "babyvlm.json").read_text())
    meta["model"]["tokenizer"]["path"] = "../elsewhere"
    (folder / "babyvlm.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"babyvlm\.json \(model\.tokenizer\.path\): path '\.\./elsewhere' leaves"):
        BabyLLaVA.from_pretrained(folder)


def test_old_or_broken_babyvlm_json_is_named(tmp_path):
    folder = tmp_path / "ckpt"
    save_quietly(tiny_model(), folder)
    edit_meta(folder, format="babyvlm-checkpoint/1")
    with pytest.raises(DataError, match="unsupported checkpoint format 'babyvlm-checkpoint/1'"):
        BabyLLaVA.from_pretrained(folder)
    edit_meta(folder, format=hf_export.CHECKPOINT_FORMAT, model=None)
    with pytest.raises(ConfigError, match=r"babyvlm\.json: no 'model' object"):
        BabyLLaVA.from_pretrained(folder)
    (folder / "babyvlm.json").write_text("{not json")
    with pytest.raises(DataError, match=r"babyvlm\.json: invalid JSON at line 1"):
        BabyLLaVA.from_pretrained(folder)


# ---- saving replaces the folder as a whole -----------------------------------------------------
def test_babyvlm_layout_over_an_hf_layout_folder_leaves_no_stale_hf_files(tmp_path):
    folder = tmp_path / "ckpt"
    assert save_quietly(tiny_model(), folder).layout == "hf_llava"
    assert (folder / "config.json").is_file() and (folder / "generation_config.json").is_file()
    linear = tiny_model(connector="linear")
    assert save_quietly(linear, folder).layout == "babyvlm"
    assert not (folder / "config.json").exists() and not (folder / "generation_config.json").exists()
    assert leftovers(tmp_path) == []  # no temp or old folder left behind
    torch.testing.assert_close(BabyLLaVA.from_pretrained(folder).connector.proj.weight, linear.connector.proj.weight)


def test_a_failed_resolved_config_write_leaves_no_temp_file(tmp_path, monkeypatch):
    def disk_full(source, target):
        raise OSError(28, "No space left on device", str(target))

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        babyvlm.write_resolved_config({"model": {"type": "babyllava"}}, tmp_path / "run")
    assert list((tmp_path / "run").iterdir()) == []


@pytest.mark.parametrize("failing_step", ["save_file", "write_resolved_config"])  # weights, the last file
def test_a_failed_save_leaves_the_previous_checkpoint_intact(tokenizer_dir, tmp_path, monkeypatch, failing_step):
    folder = tmp_path / "ckpt"
    first = tiny_model()
    save_quietly(first, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hf_export, failing_step, disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_quietly(tiny_model(tokenizer_dir, connector="linear"), folder)  # its files differ in name and bytes
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert leftovers(tmp_path) == []
    monkeypatch.undo()
    loaded = BabyLLaVA.from_pretrained(folder)
    torch.testing.assert_close(loaded.connector.linear_1.weight, first.connector.linear_1.weight)


def test_a_folder_that_is_not_a_checkpoint_is_not_replaced(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    with pytest.raises(ConfigError, match="refusing to replace a folder that is not a babyvlm checkpoint"):
        save_quietly(tiny_model(), folder)
    assert [p.name for p in folder.iterdir()] == ["thesis.txt"]
    (tmp_path / "empty").mkdir()
    save_quietly(tiny_model(), tmp_path / "empty")  # an empty folder is fine
    assert (tmp_path / "empty" / "babyvlm.json").is_file()
