"""Runner hooks: checkpoints in babyvlm's pickle-free format (``checkpoints.py``: weights and optimizer
tensors as safetensors, the rest as JSON, every file checksummed), and per-iteration metrics (loss, lr,
samples/s, tokens/s) to a JSONL log and the progress line."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from safetensors.torch import save

from babyvlm.core.io import atomic_write_text
from babyvlm.plugins.mmengine_trainer.checkpoints import (
    FORMAT,
    LAST,
    VERSION,
    CheckpointContent,
    optimizer_state,
    rng_state,
    scheduler_state,
    set_rng_state,
    unwrap,
    weights_bytes,
    write_checkpoint,
)


class CheckpointHook(Hook):
    """Saves checkpoint ``iter_N`` every ``interval`` iterations and after the last one (rank 0), keeping
    the newest ``keep``; after a resume, puts the random streams back as they were when it was saved.

    Runs last (``VERY_LOW``) so the saved scheduler state includes this iteration's step, as mmengine's
    own checkpoint hook does."""

    priority = "VERY_LOW"

    def __init__(self, interval: int, keep: int, settings: dict[str, Any]) -> None:
        self.interval, self.keep, self.settings = interval, keep, settings
        self.pending_rng: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None

    def before_train(self, runner) -> None:
        if runner.iter == 0 and is_main_process():  # a fresh start: another run's checkpoint is not resumed by
            (Path(runner.work_dir) / LAST).unlink(missing_ok=True)  # accident (those files go as this run saves)

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        # after mmengine re-seeds on resume: put back the generators as they were at the checkpoint
        if self.pending_rng is not None:
            set_rng_state(*self.pending_rng)
            self.pending_rng = None

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: dict | None = None) -> None:
        done = runner.iter + 1
        if (done % self.interval == 0 or done == runner.max_iters) and is_main_process():
            write_checkpoint(Path(runner.work_dir), self.content(runner, done), self.keep)

    def content(self, runner, iteration: int) -> CheckpointContent:
        optimizer_tensors, optimizer_plain = optimizer_state(runner.optim_wrapper.optimizer)
        rng_tensors, rng_plain = rng_state()
        sampler = runner.train_dataloader.sampler.state_dict()
        sampler["draws"] = iteration * runner.train_dataloader.batch_size  # this process's draws consumed
        record = {"format": FORMAT, "version": VERSION, "iteration": iteration, "max_iters": runner.max_iters,
                  "settings": self.settings, "sampler": sampler, "optimizer": optimizer_plain,
                  "schedulers": [scheduler_state(s) for s in runner.param_schedulers or []], "rng": rng_plain}
        return CheckpointContent(iteration, weights_bytes(unwrap(runner.model)),
                                 save({**optimizer_tensors, **rng_tensors}), record)


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
            records = read_metrics(self.metrics_file)
            kept = [line for line, record in records if record["iter"] <= runner.iter]
            atomic_write_text(self.metrics_file, "".join(line + "\n" for line in kept))

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


def read_metrics(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(line, record)`` for each complete line of ``metrics.jsonl``; a line cut short by a kill (the
    last, half-written) or otherwise unreadable is left out rather than failing the resume."""
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("iter"), int):
            records.append((line, record))
    return records
