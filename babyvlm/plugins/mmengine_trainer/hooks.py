"""Runner hooks: checkpoint weights as safetensors beside mmengine's state file (plus RNG and sampler
state), and per-iteration metrics (loss, lr, samples/s, tokens/s) to a JSONL log and the progress line."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from safetensors.torch import load_file, save

from babyvlm.core.errors import ConfigError
from babyvlm.core.io import atomic_write_bytes

WEIGHTS_SUFFIX = ".safetensors"


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def weights_bytes(module: torch.nn.Module) -> bytes:
    """A state dict as safetensors bytes (tied tensors are stored once per name: cloned)."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    return save(state)


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class SafetensorsStateHook(Hook):
    """``iter_N.pth`` keeps optimizer/scheduler/message-hub/RNG/sampler state; the weights go to
    ``iter_N.safetensors`` (written first, atomically: a ``.pth`` never exists without its weights)."""

    priority = "HIGH"

    def __init__(self) -> None:
        self._pending_rng: dict[str, Any] | None = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        name = f"iter_{runner.iter + 1}"
        checkpoint.pop("state_dict", None)
        checkpoint["weights_file"] = name + WEIGHTS_SUFFIX
        checkpoint["rng"] = rng_state()
        checkpoint["sampler"] = runner.train_dataloader.sampler.state_dict()
        if is_main_process():
            atomic_write_bytes(Path(runner.work_dir) / (name + WEIGHTS_SUFFIX), weights_bytes(_unwrap(runner.model)))
            self._drop_orphans(Path(runner.work_dir), keep=name)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        weights = Path(runner.work_dir) / str(checkpoint.get("weights_file", ""))
        if not weights.is_file():
            raise ConfigError(f"checkpoint in {runner.work_dir} names weights {weights.name!r}, which are missing")
        checkpoint["state_dict"] = load_file(str(weights))
        sampler = checkpoint.get("sampler", {})
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        if sampler.get("world_size", world) != world:
            raise ConfigError(f"checkpoint in {runner.work_dir} was written by {sampler['world_size']} processes; "
                              f"resume it with the same number (now {world})")
        self._pending_rng = checkpoint.get("rng")

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        # after mmengine re-seeds on resume: put back the generators as they were at the checkpoint
        if self._pending_rng is not None:
            set_rng_state(self._pending_rng)
            self._pending_rng = None

    @staticmethod
    def _drop_orphans(folder: Path, keep: str) -> None:
        """Weights whose ``.pth`` mmengine's retention already removed."""
        for weights in folder.glob(f"iter_*{WEIGHTS_SUFFIX}"):
            stem = weights.name[: -len(WEIGHTS_SUFFIX)]
            if stem != keep and not (folder / f"{stem}.pth").exists():
                weights.unlink(missing_ok=True)


class MetricsHook(Hook):
    """Loss (averaged over processes), lr and throughput per iteration: into the message hub (so the
    progress line and TensorBoard show them) and ``metrics.jsonl`` in the work dir."""

    priority = "NORMAL"

    def __init__(self, metrics_file: Path) -> None:
        self.metrics_file = metrics_file
        self.losses: list[float] = []
        self.samples = self.tokens = 0
        self._last = 0.0
        self.extra_keys: list[str] = []

    def before_train(self, runner) -> None:
        self._last = time.perf_counter()
        if is_main_process() and self.metrics_file.exists():  # a resumed run: drop lines past the checkpoint
            lines = [line for line in self.metrics_file.read_text().splitlines()
                     if line.strip() and json.loads(line)["iter"] <= runner.iter]
            self.metrics_file.write_text("".join(line + "\n" for line in lines))

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: dict | None = None) -> None:
        outputs = outputs or {}
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        values = {k: float(v) for k, v in outputs.items()}
        if world > 1:
            packed = torch.tensor([values.get("loss", 0.0), values.get("n_samples", 0.0), values.get("n_tokens", 0.0)],
                                  dtype=torch.float64)
            torch.distributed.all_reduce(packed)
            values["loss"] = float(packed[0]) / world
            values["n_samples"], values["n_tokens"] = float(packed[1]), float(packed[2])
        now = time.perf_counter()
        elapsed, self._last = max(now - self._last, 1e-9), now
        samples, tokens = values.pop("n_samples", 0.0), values.pop("n_tokens", 0.0)
        self.samples += int(samples)
        self.tokens += int(tokens)
        self.losses.append(values["loss"])
        lr = runner.optim_wrapper.get_lr()["lr"][0]
        runner.message_hub.update_scalar("train/samples_per_s", samples / elapsed)
        runner.message_hub.update_scalar("train/tokens_per_s", tokens / elapsed)
        if is_main_process():
            record = {"iter": runner.iter + 1, "lr": lr, "samples_per_s": round(samples / elapsed, 2),
                      "tokens_per_s": round(tokens / elapsed, 1), **values}
            with self.metrics_file.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
