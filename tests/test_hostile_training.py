"""Hostile conditions for ``babyvlm train``'s checkpoints: a crafted pickle in the work dir (never
unpickled), ``last_checkpoint`` pointing out of the work dir, two trainings into one work dir, flipped
bytes and truncation (named, the previous intact checkpoint offered and resumable exactly), changed
settings on resume, a half-written metrics line, a full disk while checkpointing (a real small tmpfs
where mounting is allowed, an injected ENOSPC otherwise), and resuming a finished phase."""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from disk_support import grow, small_tmpfs
from safetensors.torch import load_file
from test_train_cli import copy_work, prepared  # noqa: F401  (prepared: a module fixture used below)
from test_train_mmengine import DATA, ToyModel, quiet, trainer

from babyvlm.core.errors import BabyVLMError, ConfigError, DataError
from babyvlm.core.io import LockedError
from babyvlm.plugins.mmengine_trainer import checkpoints
from babyvlm.plugins.simple_trainer.shared import Resume
from babyvlm.plugins.train_commands.commands import phase_line

TESTS = Path(__file__).parent


class Planted:
    """Unpickling this creates a file: proof that something ran code from the work dir."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code from a checkpoint ran"))


def pickle_bomb(marker: Path) -> bytes:
    return pickle.dumps(Planted(marker))


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A phase trained to the end (12 iterations, checkpoints at 4, 8 and 12, all kept)."""
    folder = tmp_path_factory.mktemp("train") / "full"
    torch.manual_seed(0)
    trainer(keep_checkpoints=5).fit(ToyModel(), DATA, log=quiet, stage="2-joint", work_dir=folder)
    return folder


def copy_cut_at(finished: Path, target: Path, iteration: int) -> Path:
    """A copy of the work dir as a run killed after checkpoint ``iteration`` would have left it."""
    shutil.copytree(finished, target)
    (target / "last_checkpoint").write_text(f"iter_{iteration}.json\n")
    return target


def fit_resumed(folder: Path, request=True, log=quiet, **options):
    torch.manual_seed(123)
    return trainer(keep_checkpoints=5, **options).fit(ToyModel(), DATA, log=log, stage="2-joint", work_dir=folder,
                                                       resume=request)


def same_weights(a: Path, b: Path) -> bool:
    first, second = load_file(str(a)), load_file(str(b))
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


# ---- nothing from the work dir is ever executed -------------------------------------------------------
def test_a_crafted_pickle_named_by_last_checkpoint_is_refused_and_never_loaded(finished, tmp_path):
    work = copy_cut_at(finished, tmp_path / "work", 4)
    marker = tmp_path / "pwned.txt"
    (work / "iter_4.pth").write_bytes(pickle_bomb(marker))
    (work / "last_checkpoint").write_text("iter_4.pth")
    with pytest.raises(DataError) as refused:
        fit_resumed(work)
    assert str(refused.value) == (f"{work}/last_checkpoint: names 'iter_4.pth', a pickled mmengine checkpoint; babyvlm "
                                  f"never unpickles training state (a crafted pickle runs code when loaded): train the "
                                  f"phase again without --resume")
    assert not marker.exists()


@pytest.mark.parametrize("victim", ["state_4.safetensors", "iter_4.safetensors", "iter_4.json"])
def test_a_pickle_in_place_of_a_checkpoint_file_is_never_unpickled_even_with_a_forged_checksum(finished, tmp_path,
                                                                                                victim):
    work = copy_cut_at(finished, tmp_path / "work", 4)
    marker = tmp_path / "pwned.txt"
    bomb = pickle_bomb(marker)
    (work / victim).write_bytes(bomb)
    with pytest.raises(DataError, match=f"{work / victim}: damaged"):  # the checksum catches it first
        fit_resumed(work)
    index = checkpoints.read_index(work)
    index[victim] = checkpoints.sha256(bomb)  # an attacker who can write the work dir can forge the index too
    checkpoints.write_index(work, index)
    kind = "not a checkpoint record" if victim.endswith(".json") else "not a readable safetensors file"
    with pytest.raises(DataError, match=f"{work / victim}: {kind}"):
        fit_resumed(work)
    assert not marker.exists()


@pytest.mark.parametrize(("pointer", "message"), [
    ("", "last_checkpoint: empty, so it names no checkpoint; the previous intact checkpoint is iter_12"),
    ("{other}/iter_4.json", "absolute path '{other}/iter_4.json' refused"),
    ("../other/iter_4.json", "path '../other/iter_4.json' leaves its root"),
    ("metrics.jsonl", "names 'metrics.jsonl', not a checkpoint record iter_N.json of this work dir"),
])
def test_last_checkpoint_outside_the_work_dir_or_empty_is_refused_naming_the_file(finished, tmp_path, pointer,
                                                                                    message):
    other = tmp_path / "other"
    shutil.copytree(finished, other)  # a valid checkpoint elsewhere must not be picked up
    work = copy_cut_at(finished, tmp_path / "work", 4)
    (work / "last_checkpoint").write_text(pointer.format(other=other))
    with pytest.raises(DataError) as refused:
        fit_resumed(work)
    assert str(refused.value).startswith(str(work / "last_checkpoint")) or "last_checkpoint" in str(refused.value)
    assert message.format(other=other) in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_copied_work_dir_resumes_its_own_state_not_the_originals(finished, tmp_path):
    original = copy_cut_at(finished, tmp_path / "original", 4)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    for name in ("iter_4.safetensors", "state_4.safetensors"):  # the original changes after the copy
        (original / name).write_bytes(b"\0" * (original / name).stat().st_size)
    result = fit_resumed(copy)
    assert result.steps == 12 and same_weights(finished / "iter_12.safetensors", copy / "iter_12.safetensors")
    assert (copy / "last_checkpoint").read_text().strip() == "iter_12.json"  # relative, inside the work dir


# ---- damage: named in one line, the previous intact checkpoint offered -----------------------------------
def flip_bytes(path: Path, count: int) -> None:
    data = bytearray(path.read_bytes())
    step = max(1, len(data) // count)
    for position in range(0, len(data), step)[:count]:
        data[position] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip", "truncate"])
@pytest.mark.parametrize("victim", ["iter_8.safetensors", "state_8.safetensors", "iter_8.json"])
def test_flipped_or_truncated_checkpoint_is_named_and_the_previous_one_resumes_exactly(finished, tmp_path, damage,
                                                                                       victim):
    work = copy_cut_at(finished, tmp_path / "work", 8)
    path = work / victim
    if damage == "flip":
        flip_bytes(path, 4000)
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    before = {p.name: p.read_bytes() for p in work.iterdir() if p.is_file()}
    with pytest.raises(DataError) as refused:
        fit_resumed(work)
    assert str(refused.value) == (f"{path}: damaged (its SHA-256 differs from the one recorded when it was written: "
                                  f"truncated or changed); the previous intact checkpoint is iter_4: resume from it "
                                  f"with --resume-from iter_4")
    assert {p.name: p.read_bytes() for p in work.iterdir() if p.is_file()} == before  # nothing changed or lost
    result = fit_resumed(work, Resume(checkpoint="iter_4"))
    assert result.steps == 12 and len(result.losses) == 8
    assert same_weights(finished / "iter_12.safetensors", work / "iter_12.safetensors")  # bit for bit


def test_a_missing_index_or_unknown_checkpoint_name_is_named(finished, tmp_path):
    work = copy_cut_at(finished, tmp_path / "work", 8)
    with pytest.raises(ConfigError, match=r"--resume-from 'iter_5': no such checkpoint in .* \(there: iter_4, "
                                          r"iter_8, iter_12\)"):
        fit_resumed(work, Resume(checkpoint="iter_5"))
    (work / "checkpoints.sha256").unlink()
    with pytest.raises(DataError, match="checkpoints.sha256: missing; without the checksums"):
        fit_resumed(work)


# ---- settings that change the data order or the optimisation ------------------------------------------
def test_resume_with_changed_batch_size_or_lr_is_refused_listing_them_then_forced(finished, tmp_path):
    work = copy_cut_at(finished, tmp_path / "work", 8)
    with pytest.raises(ConfigError) as refused:
        fit_resumed(work, batch_size=8, lr=0.1)
    assert str(refused.value) == (f"--resume: checkpoint iter_8 in {work} was written with other settings, which "
                                  f"would change the data order or the optimisation: batch_size 4 -> 8; lr 0.05 -> "
                                  f"0.1. Resume with the settings it was written with, or add --force-resume to "
                                  f"accept the changes")
    lines = []
    result = fit_resumed(work, Resume(force=True), log=lines.append, batch_size=8, lr=0.1)
    assert result.steps == 12 and len(result.losses) == 4
    assert any("--force-resume: resuming iter_8 with changed settings: batch_size 4 -> 8; lr 0.05 -> 0.1" in line
               for line in lines)
    record = json.loads((work / "iter_12.json").read_text())
    assert record["settings"]["batch_size"] == 8 and record["sampler"]["draws"] == 12 * 8
    # harmless settings (how often to log or checkpoint) resume without a word
    again = copy_cut_at(finished, tmp_path / "again", 8)
    assert fit_resumed(again, log_every=3, checkpoint_every=2).steps == 12


# ---- a finished phase, a torn metrics line ----------------------------------------------------------------
def test_resuming_a_finished_phase_says_so_with_its_recorded_losses(finished, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(finished, work)
    before = (work / "iter_12.safetensors").read_bytes()
    lines = []
    model = ToyModel()
    result = trainer(keep_checkpoints=5).fit(model, DATA, log=lines.append, stage="2-joint", work_dir=work, resume=True)
    recorded = [json.loads(line)["loss"] for line in (finished / "metrics.jsonl").read_text().splitlines()]
    assert result.extra["finished_already"] and result.steps == 12 and result.losses == recorded
    assert any("phase finished already (iter_12: iteration 12 of 12); nothing to resume" in line for line in lines)
    final = load_file(str(finished / "iter_12.safetensors"))
    assert all(torch.equal(final[f"objective.model.{k}"], v) for k, v in model.state_dict().items())
    values = result.to_dict()
    json.dumps(values, allow_nan=False)  # no NaN in results.json
    assert (work / "iter_12.safetensors").read_bytes() == before

    class Phase:
        name, seconds, work_dir, metrics = "2-joint", 0.0, str(work), values

    assert phase_line(Phase).startswith(f"phase 2-joint: finished already (12 steps, loss {recorded[0]:.4f} -> ")
    assert "nan" not in phase_line(Phase)


def test_a_fresh_run_into_an_old_work_dir_replaces_its_checkpoints(finished, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(finished, work)
    trainer(max_steps=6, checkpoint_every=2, keep_checkpoints=2).fit(ToyModel(), DATA, log=quiet, stage="2-joint",
                                                                     work_dir=work)
    assert (work / "last_checkpoint").read_text().strip() == "iter_6.json"
    assert checkpoints.available_checkpoints(work) == ["iter_4", "iter_6"]  # the old run's 8 and 12 are gone
    assert sorted(p.name for p in work.glob("iter_*.json")) == ["iter_4.json", "iter_6.json"]
    assert fit_resumed(work, max_steps=6, checkpoint_every=2).extra["finished_already"]


def test_a_half_written_last_metrics_line_is_tolerated(finished, tmp_path):
    work = copy_cut_at(finished, tmp_path / "work", 8)
    text = (work / "metrics.jsonl").read_text().splitlines()
    (work / "metrics.jsonl").write_text("\n".join(text[:9]) + "\n" + text[9][: len(text[9]) // 2])  # killed mid-line
    result = fit_resumed(work)
    assert result.steps == 12
    lines = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert [line["iter"] for line in lines] == list(range(1, 13))
    reference = [json.loads(line)["loss"] for line in (finished / "metrics.jsonl").read_text().splitlines()]
    assert [line["loss"] for line in lines] == reference


# ---- two trainings into one work dir -------------------------------------------------------------------------
HELD_TRAINING = """
import os, sys, time
sys.path.insert(0, {tests!r})
import torch
from test_train_mmengine import DATA, ToyModel, trainer

class Held(ToyModel):  # trains only once the test lets it: the second process meets it mid-run

    def forward(self, **batch):
        while not os.path.exists({release!r}):
            time.sleep(0.02)
        return super().forward(**batch)

torch.manual_seed(0)
result = trainer(max_steps=8, checkpoint_every=4).fit(Held(), DATA, log=print, stage="2-joint",
                                                         work_dir={work!r})
print("trained", result.steps)
"""


@pytest.mark.slow  # two processes importing torch and mmengine: ~35 s on 2 loaded cores; the fast tier has
# the same refusal in-process (test_a_lock_left_by_a_killed_training_is_taken_over)
def test_two_training_processes_into_one_work_dir_the_second_is_refused(tmp_path):
    """Both start at once; whichever takes the work dir's lock first trains (held mid-run until the test
    lets it go), the other is refused naming it."""
    work = tmp_path / "work"
    script = tmp_path / "train.py"
    release = tmp_path / "release"
    script.write_text(HELD_TRAINING.format(tests=str(TESTS), work=str(work), release=str(release)))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    both = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env) for _ in range(2)]
    try:
        deadline = time.monotonic() + 180
        while all(p.poll() is None for p in both) and time.monotonic() < deadline:
            time.sleep(0.05)  # until the one refused has exited
        loser = next(p for p in both if p.poll() is not None)
        winner = next(p for p in both if p is not loser)
        refused = loser.communicate(timeout=10)[1]
        release.write_text("go")
        output, errors = winner.communicate(timeout=180)
    finally:
        release.write_text("go")
        for process in both:
            if process.poll() is None:
                process.kill()
    assert loser.returncode != 0
    last = refused.strip().splitlines()[-1]
    assert f"{work}: another process is writing here (pid {winner.pid} on host " in last, refused[-2000:]
    assert "training phase 2-joint since" in last and "wait for it to finish, or stop it" in last
    assert winner.returncode == 0 and "trained 8" in output, (output + errors)[-2000:]
    iterations = [json.loads(line)["iter"] for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert iterations == list(range(1, 9))  # one run's lines, each once


def test_a_lock_left_by_a_killed_training_is_taken_over(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / ".babyvlm.lock").write_text(json.dumps({"pid": 999999, "host": "gone", "operation": "training"}))
    lines = []
    trainer(max_steps=2).fit(ToyModel(), DATA, log=lines.append, stage="2-joint", work_dir=work)
    assert any("took over a stale writer lock (pid 999999 on host gone" in line for line in lines)
    with checkpoints_lock(work):
        with pytest.raises(LockedError, match="another process is writing here"):
            trainer(max_steps=2).fit(ToyModel(), DATA, log=quiet, stage="2-joint", work_dir=work)


def checkpoints_lock(work: Path):
    from babyvlm.core.io import WriterLock

    return WriterLock(work, "a test holding it")


# ---- a full disk while checkpointing ---------------------------------------------------------------------------
class WideModel(ToyModel):
    """ToyModel with a 256x256 layer: each checkpoint is about 0.8 MB (weights + two AdamW moments)."""

    def __init__(self):
        super().__init__()
        self.connector = torch.nn.Sequential(torch.nn.Linear(1, 256), torch.nn.GELU(), torch.nn.Linear(256, 256),
                                             torch.nn.GELU(), torch.nn.Linear(256, 8))


def fit_wide(folder: Path, resume=False):
    torch.manual_seed(0)
    return trainer(keep_checkpoints=2, tensorboard=False).fit(WideModel(), DATA, log=quiet, stage=None,
                                                              work_dir=folder, resume=resume)


def test_enospc_during_a_checkpoint_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    work = tmp_path / "work"
    real_write, writes = checkpoints.atomic_write_bytes, []

    def filling_disk(path, data):
        writes.append(Path(path).name)
        if Path(path).name == "state_8.safetensors":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, data)

    monkeypatch.setattr(checkpoints, "atomic_write_bytes", filling_disk)
    with pytest.raises(BabyVLMError) as full:
        fit_wide(work)
    message = str(full.value)
    assert message.startswith("no space left on device ") and f"(writing {work}/state_8.safetensors)" in message
    assert message.endswith("(the checkpoints written before it are kept: add --resume to continue from the last one)")
    assert checkpoints.damage(work, 4, checkpoints.read_index(work)) is None  # the previous one is whole
    assert (work / "last_checkpoint").read_text().strip() == "iter_4.json"
    monkeypatch.setattr(checkpoints, "atomic_write_bytes", real_write)
    assert fit_wide(work, resume=True).steps == 12
    reference = tmp_path / "reference"
    fit_wide(reference)
    assert same_weights(reference / "iter_12.safetensors", work / "iter_12.safetensors")


def test_real_small_tmpfs_fills_during_a_checkpoint_then_training_resumes(tmp_path):
    with small_tmpfs(tmp_path / "small", "1600k") as disk:
        work = disk / "work"
        with pytest.raises(BabyVLMError) as full:
            fit_wide(work)
        message = str(full.value)
        assert message.startswith(f"no space left on device {disk} (writing {work}/"), message
        assert "free some space there and run the same command again" in message
        written = checkpoints.read_index(work)
        assert written and checkpoints.damage(work, 4, written) is None
        assert not [p for p in work.iterdir() if p.name.endswith(".tmp")]  # no temp file left behind
        grow(disk)
        assert fit_wide(work, resume=True).steps == 12
        reference = tmp_path / "reference"
        fit_wide(reference)
        assert same_weights(reference / "iter_12.safetensors", work / "iter_12.safetensors")


def test_the_dino_trainer_resumes_from_its_own_checkpoint_bit_for_bit(tmp_path):
    from test_dino import VisionOnly, frames, quick, register_in_process

    register_in_process()
    torch.manual_seed(0)
    full = tmp_path / "full"
    quick(max_steps=4, checkpoint_every=2, keep_checkpoints=3).fit(VisionOnly(), frames(), log=quiet,
                                                                    stage="0-vision", work_dir=full)
    cut = copy_cut_at(full, tmp_path / "cut", 2)
    torch.manual_seed(5)
    result = quick(max_steps=4, checkpoint_every=2, keep_checkpoints=3).fit(VisionOnly(), frames(), log=quiet,
                                                                             stage="0-vision", work_dir=cut,
                                                                             resume=True)
    assert result.steps == 4 and len(result.losses) == 2
    assert same_weights(full / "iter_4.safetensors", cut / "iter_4.safetensors")


def train_in_process(ready: dict, work: Path, *args: str) -> None:
    from babyvlm import registry

    registry.get("command", "train").main([str(ready["config"]), "--work-dir", str(work), "--phase", "1-alignment",
                                           "--set", "phases.1.trainer.max_steps=2", *args], standalone_mode=False)


def test_cli_resume_of_a_finished_phase_says_finished_and_changed_settings_are_listed(prepared, tmp_path,  # noqa: F811
                                                                                      capsys):
    work = copy_work(prepared, tmp_path / "work")
    train_in_process(prepared, work)
    trained = capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"written with other settings, which would change the data order or the "
                                          r"optimisation: lr 0.003 -> 0.01\. .* add --force-resume"):
        train_in_process(prepared, work, "--resume", "--set", "phases.1.trainer.lr=0.01")
    train_in_process(prepared, work, "--resume")
    line = [text for text in capsys.readouterr().out.splitlines() if text.startswith("phase 1-alignment")][-1]
    first = json.loads((work / "phases" / "1-alignment" / "metrics.jsonl").read_text().splitlines()[0])["loss"]
    assert line.startswith(f"phase 1-alignment: finished already (2 steps, loss {first:.4f} -> ")
    assert line.endswith(f"nothing was trained ({work / 'phases' / '1-alignment'})") and "nan" not in line
    assert "phase 1-alignment: 2 steps, loss" in trained
    results = (work / "results.json").read_text()
    assert "NaN" not in results and json.loads(results)["phases"][0]["metrics"]["finished_already"] is True
