"""Checkpoint folders are data, never code: loading reads babyvlm.json (the model spec as JSON),
safetensors and tokenizer files only; paths read from babyvlm.json stay inside the folder; and saving
replaces the folder as a whole (a failed save leaves the previous checkpoint, no stale files)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from model_support import saved_tiny_tokenizer

import babyvlm
from babyvlm.cli import cli
from babyvlm.core import io as core_io
from babyvlm.core.errors import ConfigError, DataError
from babyvlm.plugins.babyllava import BabyLLaVA, hf_export

CORPUS = ["look at the ball", "the doggy is running", "where is your cup", "a big red truck"] * 4


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    return saved_tiny_tokenizer(tmp_path_factory.mktemp("tokenizer"), CORPUS)


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


def save_without_the_layout_note(model: BabyLLaVA, folder: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "saved in babyvlm's format only", UserWarning)
        model.save_pretrained(folder)


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


def test_saving_through_a_symlink_updates_the_folder_it_points_to(tmp_path):
    real = tmp_path / "store" / "ckpt"
    save_quietly(tiny_model(), real)
    link = tmp_path / "latest"
    link.symlink_to(real, target_is_directory=True)
    linear = tiny_model(connector="linear")
    save_quietly(linear, link)
    assert link.is_symlink() and os.readlink(link) == str(real)  # the link is kept, still pointing at real
    assert json.loads((real / "babyvlm.json").read_text())["layout"] == "babyvlm"
    assert leftovers(tmp_path) == [] and leftovers(real.parent) == []  # no stray temp, old folder or old link
    torch.testing.assert_close(BabyLLaVA.from_pretrained(link).connector.proj.weight, linear.connector.proj.weight)


def test_a_previous_copy_that_cannot_be_deleted_is_reported_not_ignored(tmp_path, monkeypatch):
    folder = tmp_path / "ckpt"
    save_quietly(tiny_model(), folder)

    def permission_denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(core_io.shutil, "rmtree", permission_denied)
    with pytest.warns(UserWarning, match=r"saved, but its previous copy .*\.ckpt\.[0-9a-f]{12}\.tmp could not be "
                                         r"deleted \(\[Errno 13\] Permission denied"):
        save_without_the_layout_note(tiny_model(connector="linear"), folder)
    assert json.loads((folder / "babyvlm.json").read_text())["layout"] == "babyvlm"


# ---- the swap is atomic; an interrupted two-rename swap is restored --------------------------------
def layout_of(folder: Path) -> str:
    return json.loads((folder / "babyvlm.json").read_text())["layout"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2(RENAME_EXCHANGE) is Linux-only")
def test_on_linux_the_new_checkpoint_is_exchanged_in_with_no_moment_without_one(tmp_path, monkeypatch):
    folder = tmp_path / "ckpt"
    save_quietly(tiny_model(), folder)
    renames: list[tuple[Path, Path]] = []
    for name in ("replace", "rename"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda src, dst, real=real, **kw: (renames.append((Path(src), Path(dst))),
                                                                        real(src, dst, **kw))[1])
    real_exchange, exchanged = core_io.exchange_paths, []

    def watched_exchange(first: Path, second: Path) -> bool:
        assert second == folder and (layout_of(first), layout_of(second)) == ("babyvlm", "hf_llava")
        assert real_exchange(first, second), "this filesystem should support RENAME_EXCHANGE"
        assert (layout_of(first), layout_of(second)) == ("hf_llava", "babyvlm")  # one step, both complete
        exchanged.append(first.name)
        return True

    monkeypatch.setattr(core_io, "exchange_paths", watched_exchange)
    save_quietly(tiny_model(connector="linear"), folder)
    assert len(exchanged) == 1
    assert not [pair for pair in renames if folder in pair]  # the checkpoint folder itself was never moved away
    assert layout_of(folder) == "babyvlm" and leftovers(tmp_path) == []


def test_exchange_paths_swaps_two_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "from_a").write_text("a")
    (tmp_path / "b").mkdir()
    if not core_io.exchange_paths(tmp_path / "a", tmp_path / "b"):
        assert not sys.platform.startswith("linux"), "renameat2 should be found on Linux"
        pytest.skip("no renameat2 here")
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["from_a"] and not any((tmp_path / "a").iterdir())


def test_without_renameat2_the_two_rename_swap_replaces_the_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(core_io, "_renameat2", lambda: None)
    folder = tmp_path / "ckpt"
    save_quietly(tiny_model(), folder)
    save_quietly(tiny_model(connector="linear"), folder)
    assert layout_of(folder) == "babyvlm" and leftovers(tmp_path) == []


def crash_between_the_two_renames(folder: Path) -> Path:
    """What a kill after ``os.replace(target, old)`` and before ``os.replace(stage, target)`` leaves."""
    old = folder.parent / f".{folder.name}.0123456789ab.old"
    os.replace(folder, old)
    return old


def test_a_save_killed_between_its_two_renames_is_restored_by_load_and_by_save(tmp_path):
    folder = tmp_path / "ckpt"
    first = tiny_model()
    save_quietly(first, folder)
    (tmp_path / ".ckpt.v2.0123456789ab.old").mkdir()  # another folder's copy ("ckpt.v2") is left alone
    crash_between_the_two_renames(folder)
    with pytest.warns(UserWarning, match=r"ckpt: a save was interrupted .* from \.ckpt\.0123456789ab\.old"):
        loaded = BabyLLaVA.from_pretrained(folder)
    torch.testing.assert_close(loaded.connector.linear_1.weight, first.connector.linear_1.weight)
    assert leftovers(tmp_path) == [".ckpt.v2.0123456789ab.old"]

    crash_between_the_two_renames(folder)
    with pytest.warns(UserWarning, match="a save was interrupted"):
        save_without_the_layout_note(tiny_model(connector="linear"), folder)
    assert layout_of(folder) == "babyvlm" and leftovers(tmp_path) == [".ckpt.v2.0123456789ab.old"]


def test_several_previous_copies_are_not_guessed_between(tmp_path):
    folder = tmp_path / "ckpt"
    save_quietly(tiny_model(), folder)
    crash_between_the_two_renames(folder)
    (tmp_path / ".ckpt.ba9876543210.old").mkdir()
    with pytest.warns(UserWarning, match="2 previous copies"), pytest.raises(DataError, match="not a babyvlm checkpoint"):
        BabyLLaVA.from_pretrained(folder)
    assert len(leftovers(tmp_path)) == 2


# ---- weights and babyvlm.json must agree ----------------------------------------------------------
@pytest.mark.parametrize("connector", ["mlp2x_gelu", "linear"])  # the LLaVA layout and babyvlm's own
def test_weights_that_do_not_fit_babyvlm_json_name_both_files(tmp_path, connector):
    folder = tmp_path / "ckpt"
    save_quietly(tiny_model(connector=connector), folder)
    meta = json.loads((folder / "babyvlm.json").read_text())
    meta["model"]["language_model"]["num_hidden_layers"] = 2
    (folder / "babyvlm.json").write_text(json.dumps(meta))
    with pytest.raises(DataError) as caught:
        BabyLLaVA.from_pretrained(folder)
    message = str(caught.value)
    assert str(folder / "model.safetensors") in message and str(folder / "babyvlm.json") in message
    assert "Missing key(s)" in message and "layers.1." in message and len(message) < 1500


# ---- integrity: the weights' SHA-256, and no path that escapes the folder or follows the cwd ----------
def flip_a_byte(path: Path, offset_from_end: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF  # inside the tensor data: the safetensors header still parses
    path.write_bytes(bytes(data))


def test_babyvlm_json_records_the_weights_sha256(tmp_path):
    folder = tmp_path / "ckpt"
    save_quietly(tiny_model(), folder)
    meta = json.loads((folder / "babyvlm.json").read_text())
    assert meta["format"] == "babyvlm-checkpoint/3"
    assert meta["weights_sha256"] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_saving_the_same_weights_twice_gives_the_same_bytes_and_digest(tmp_path):
    # safetensors orders its metadata differently from call to call; the export sorts it, so the recorded
    # SHA-256 (and evaluation fingerprints built from it) follows the weights alone
    model = tiny_model()
    files, digests = set(), set()
    for attempt in range(8):
        save_quietly(model, tmp_path / f"ckpt{attempt}")
        files.add((tmp_path / f"ckpt{attempt}" / "model.safetensors").read_bytes())
        digests.add(json.loads((tmp_path / f"ckpt{attempt}" / "babyvlm.json").read_text())["weights_sha256"])
    assert len(files) == 1 and len(digests) == 1


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "swapped"])
def test_a_tampered_weights_file_is_refused_naming_both_digests(tmp_path, damage):
    folder, other = tmp_path / "ckpt", tmp_path / "other"
    save_quietly(tiny_model(), folder)
    weights = folder / "model.safetensors"
    expected = json.loads((folder / "babyvlm.json").read_text())["weights_sha256"]
    if damage == "flipped byte":
        flip_a_byte(weights)
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:-4096])
    else:  # same architecture, other weights: loads cleanly without the check
        torch.manual_seed(1)
        save_quietly(babyvlm.build_model({"model": tiny_model().spec}), other)
        weights.write_bytes((other / "model.safetensors").read_bytes())
    actual = hashlib.sha256(weights.read_bytes()).hexdigest()
    with pytest.raises(DataError) as caught:
        BabyLLaVA.from_pretrained(folder)
    message = str(caught.value)
    assert message.startswith(f"{weights}: SHA-256 {actual} differs from {expected} recorded in "
                              f"{folder / 'babyvlm.json'}")
    assert "\n" not in message


@pytest.mark.parametrize("digest", [None, "abc", 12, "G" * 64])
def test_a_missing_or_malformed_digest_is_refused(tmp_path, digest):
    folder = tmp_path / "ckpt"
    save_quietly(tiny_model(), folder)
    edit_meta(folder, weights_sha256=digest)
    with pytest.raises(DataError, match=r"babyvlm\.json: 'weights_sha256' must be the weights file's SHA-256"):
        BabyLLaVA.from_pretrained(folder)


@pytest.mark.parametrize("path", ["/etc", "../tokenizer", "."])
def test_a_spec_path_not_listed_in_folder_paths_is_refused(tokenizer_dir, tmp_path, path):
    folder = tmp_path / "ckpt"
    tiny_model(tokenizer_dir).save_pretrained(folder)
    meta = json.loads((folder / "babyvlm.json").read_text())
    meta["model"]["tokenizer"]["path"] = path
    meta["folder_paths"] = []  # unlisted: it would be resolved against the working folder
    (folder / "babyvlm.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=rf"babyvlm\.json: model\.tokenizer\.path = '{re.escape(path)}' is a path "
                                        r"not listed in 'folder_paths'"):
        BabyLLaVA.from_pretrained(folder)


def test_an_absolute_listed_path_is_refused(tokenizer_dir, tmp_path):
    folder = tmp_path / "ckpt"
    tiny_model(tokenizer_dir).save_pretrained(folder)
    meta = json.loads((folder / "babyvlm.json").read_text())
    meta["model"]["tokenizer"]["path"] = str(tokenizer_dir)
    (folder / "babyvlm.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"\(model\.tokenizer\.path\): absolute path .* refused"):
        BabyLLaVA.from_pretrained(folder)


def test_folder_paths_resolve_against_the_folder_not_the_working_folder(tokenizer_dir, tmp_path, monkeypatch):
    folder = tmp_path / "ckpt"
    model = tiny_model(tokenizer_dir)
    model.save_pretrained(folder)
    decoy = tmp_path / "decoy"  # a different tokenizer where a cwd-relative "." would find it
    saved_tiny_tokenizer(decoy, ["x y z"] * 3, vocab_size=270)
    monkeypatch.chdir(decoy)
    loaded = BabyLLaVA.from_pretrained(os.path.relpath(folder, decoy))
    assert loaded.tokenizer.vocab_size == model.tokenizer.vocab_size != babyvlm.build(
        "tokenizer", dict(type="bpe", path=str(decoy))).vocab_size
    assert Path(loaded.tokenizer.source) == folder.resolve() / "tokenizer.json"
