"""``babyvlm train`` as users run it, in real subprocesses: exact resume after SIGKILL, torchrun DDP
(2 gloo processes = 1 process at the same global batch), and each error case with its message."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from babyvlm import registry
from babyvlm.core.errors import ComponentError, ConfigError
from babyvlm.core.experiment import Experiment

BIN = Path(sys.executable).parent
PLUGINS = {"mmengine_trainer": "babyvlm.plugins.mmengine_trainer", "dino": "babyvlm.plugins.dino",
           "cnn_encoder": "babyvlm.plugins.cnn_encoder", "train_commands": "babyvlm.plugins.train_commands"}


def plugin_env(tmp: Path) -> dict[str, str]:
    """Subprocess environment that finds the training plugins: a dist-info with their entry points, for as
    long as pyproject.toml does not list them yet (installed entry points win when they exist)."""
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    installed = {ep.name for ep in metadata.entry_points(group="babyvlm")}
    missing = {name: module for name, module in PLUGINS.items() if name not in installed}
    if missing:
        info = tmp / "site" / "babyvlm_training_plugins-0.1.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: babyvlm-training-plugins\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text("[babyvlm]\n" + "".join(f"{n} = {m}\n" for n, m in missing.items()))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp / "site"), env.get("PYTHONPATH")]))
    return env


def register_in_process() -> None:
    import importlib

    loaded = {p.name for p in registry.plugins()}
    for name, module in PLUGINS.items():
        if name not in loaded and not any(name == ep.name for ep in metadata.entry_points(group="babyvlm")):
            registry.register_plugin(importlib.import_module(module), name)


def config_text(corpus: Path, steps: int = 30) -> str:
    trainer = dict(type="mmengine", max_steps=steps, lr=3e-3, batch_size=4, checkpoint_every=5, keep_checkpoints=10,
                   log_every=5, tensorboard=False, export=False)
    return f"""
data = dict(source=dict(type="saycam", transcripts="human"), root={str(corpus)!r},
            builder=dict(type="pretraining_set", image_size=64), heldout_recordings=1)
tokenizer = dict(type="bpe", vocab_size=300, min_frequency=1)
model = dict(type="babyllava", encoder=dict(type="cnn", preset="tiny"), connector="mlp2x_gelu",
             language_model=dict(type="llama", preset="tiny"), template="baby_plain")
phases = [
    dict(name="0-language", trainer=dict({trainer!r}, block_size=16)),
    dict(name="1-alignment", formats=["image"], trainer={trainer!r}),
    dict(name="2-joint", formats=["image", "video", "interleaved"], trainer={trainer!r}),
]
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A work dir with the store, held-out split and tokenizer built (copied for each run)."""
    register_in_process()
    base = tmp_path_factory.mktemp("train_cli")
    corpus = base / "corpus"
    registry.get("command", "synth").main(
        ["saycam", str(corpus), "--minutes", "1.2", "--seed", "3", "--size", "64", "--video-minutes", "0.3", "--quiet"],
        standalone_mode=False)
    config = base / "tiny_train.py"
    config.write_text(config_text(corpus))
    work = base / "work"
    experiment = Experiment(str(config), work, log=lambda line: None)
    experiment.ensure_data()
    experiment.ensure_tokenizer()
    return {"config": config, "work": work, "env": plugin_env(base), "corpus": corpus}


def copy_work(prepared, target: Path) -> Path:
    shutil.copytree(prepared["work"], target)
    return target


def train(prepared, work: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "babyvlm"), "train", str(prepared["config"]), "--work-dir", str(work), *args],
                          env=prepared["env"], capture_output=True, text=True, timeout=timeout)


def final_weights(work: Path, phase: str, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(work / "phases" / phase / f"iter_{step}.safetensors"))


@pytest.mark.slow  # ~80 s on 2 loaded cores; the fast in-process twin is in test_train_mmengine.py
def test_sigkill_after_a_checkpoint_then_resume_equals_an_uninterrupted_run(prepared, tmp_path):
    full = copy_work(prepared, tmp_path / "full")
    done = train(prepared, full, "--phase", "1-alignment")
    assert done.returncode == 0, done.stderr[-2000:]
    killed = copy_work(prepared, tmp_path / "killed")
    phase_dir = killed / "phases" / "1-alignment"
    process = subprocess.Popen([str(BIN / "babyvlm"), "train", str(prepared["config"]), "--work-dir", str(killed),
                                "--phase", "1-alignment"], env=prepared["env"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if (phase_dir / "last_checkpoint").is_file() and "iter_10" in (phase_dir / "last_checkpoint").read_text():
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "training finished before it could be killed"
    assert not (phase_dir / "iter_30.pth").exists()
    resumed = train(prepared, killed, "--phase", "1-alignment", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed at iteration" in resumed.stdout + resumed.stderr
    a, b = final_weights(full, "1-alignment", 30), final_weights(killed, "1-alignment", 30)
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
    losses = [json.loads(line)["loss"] for line in (phase_dir / "metrics.jsonl").read_text().splitlines()]
    reference = [json.loads(line)["loss"] for line in
                 (full / "phases" / "1-alignment" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 30 and losses == pytest.approx(reference, abs=1e-6)  # same batches, same order


@pytest.mark.slow
def test_ddp_two_gloo_processes_match_one_process_at_the_same_global_batch(prepared, tmp_path):
    """0-language: packed blocks all have the same token count, so the per-process mean losses averaged
    across processes equal the one-process mean; tolerance 1e-4 (float reduction order)."""
    one = copy_work(prepared, tmp_path / "one")
    two = copy_work(prepared, tmp_path / "two")
    steps = ["--set", "phases.0.trainer.max_steps=6"]
    single = train(prepared, one, "--phase", "0-language", *steps, "--set", "phases.0.trainer.batch_size=8")
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2", "-m", "babyvlm", "train",
                          str(prepared["config"]), "--work-dir", str(two), "--phase", "0-language", *steps,
                          "--set", "phases.0.trainer.batch_size=4"],
                         env=prepared["env"], capture_output=True, text=True, timeout=600,
                         cwd=tmp_path)  # not the repo root: its stale babyvlm.egg-info would shadow the install
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stdout.count("phase 0-language: 6 steps") == 1 and ddp.stdout.count("results: ") == 1  # rank 0 alone

    def curve(work):
        return [json.loads(line)["loss"] for line in (work / "phases" / "0-language" / "metrics.jsonl").read_text().splitlines()]

    assert len(curve(one)) == 6 and curve(two) == pytest.approx(curve(one), abs=1e-4)
    a, b = final_weights(one, "0-language", 6), final_weights(two, "0-language", 6)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-4


@pytest.mark.slow  # ~13 s of subprocesses; the same refusals are tested in-process elsewhere
def test_cli_errors_are_one_line_and_name_the_problem(prepared, tmp_path):
    work = copy_work(prepared, tmp_path / "errors")
    result = train(prepared, work, "--phase", "5-dreaming")
    assert result.returncode != 0
    assert "unknown phase '5-dreaming'; this config's phases: 0-language, 1-alignment, 2-joint" in result.stderr
    assert "Traceback" not in result.stderr
    result = train(prepared, work, "--phase", "2-joint", "--resume")
    assert "--resume: phase '2-joint' has no checkpoint in" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("overrides", "message"), [
    (["phases.1.trainer.type=mmengin"], "unknown trainer 'mmengin'"),
    (["phases.1.formats=[\"audio\"]"], "unknown sample format"),
    (["phases.1.trainer.device=cuda"], "device='cuda' but no CUDA GPU is visible"),
])
def test_bad_phase_settings_fail_with_their_message(prepared, tmp_path, overrides, message):
    if "cuda" in message and torch.cuda.is_available():
        pytest.skip("checks the message on a machine without a GPU")
    work = copy_work(prepared, tmp_path / "bad")
    command = registry.get("command", "train")
    args = [str(prepared["config"]), "--work-dir", str(work), "--phase", "1-alignment"]
    for pair in overrides:
        args += ["--set", pair]
    with pytest.raises((ConfigError, ComponentError), match=message):
        command.main(args, standalone_mode=False)


def test_a_store_without_a_phases_formats_is_refused(prepared, tmp_path):
    from babyvlm.core.compose import load_config

    cfg = load_config(str(prepared["config"]))
    cfg.data.builder = dict(type="pretraining_set", image_size=64, formats=["image"])
    experiment = Experiment(cfg, tmp_path / "images_only", log=lambda line: None)
    experiment.ensure_data()
    with pytest.raises(ConfigError, match=r"phase 2-joint: the store .* has no training samples of format\(s\) "
                                          r"\['video', 'interleaved'\] that the phase needs \(it has: image\)"):
        experiment.train_phase("2-joint")
