"""``SimpleTrainer`` (trainer ``simple``): a single-process AdamW loop with cosine warmup schedule.

See the package docstring (``babyvlm/plugins/simple_trainer/__init__.py``) for what it implements.
The schedule, checks, stage freezing and result record are shared with the ``mmengine`` trainer
(``shared.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence, Sized
from typing import Any

import torch

from babyvlm.core.errors import ConfigError
from babyvlm.plugins.simple_trainer.shared import (
    TrainResult,
    apply_stage,
    check_dataset,
    check_number,
    cosine_with_warmup,
)

COMPONENT = "trainer 'simple'"

__all__ = ["SimpleTrainer", "TrainResult", "cosine_with_warmup"]


class SimpleTrainer:
    def __init__(self, max_steps: int = 100, lr: float = 1e-3, batch_size: int = 8, weight_decay: float = 0.0,
                 betas: Sequence[float] = (0.9, 0.95), warmup_ratio: float = 0.03, grad_clip: float = 1.0,
                 train: Sequence[str] | None = None, log_every: int = 10, seed: int = 0, num_workers: int = 0):
        check_number(COMPONENT, "max_steps", max_steps, whole=True, low=1)
        check_number(COMPONENT, "batch_size", batch_size, whole=True, low=1)
        check_number(COMPONENT, "lr", lr, low=0.0, strict=True)
        check_number(COMPONENT, "weight_decay", weight_decay, low=0.0)
        check_number(COMPONENT, "warmup_ratio", warmup_ratio, low=0.0, high=1.0)
        check_number(COMPONENT, "grad_clip", grad_clip, low=0.0)
        self.max_steps, self.lr, self.batch_size = max_steps, lr, batch_size
        self.weight_decay, self.betas = weight_decay, tuple(betas)
        self.warmup = int(round(warmup_ratio * max_steps))
        self.grad_clip, self.train_parts = grad_clip, list(train) if train else None
        self.log_every, self.seed, self.num_workers = log_every, seed, num_workers

    def fit(self, model: torch.nn.Module, dataset: Sized, log: Callable[[str], None] = print,
            collate: Callable[[list], dict] | None = None, stage: str | None = None, resume: bool = False,
            **_context: Any) -> TrainResult:
        """Train ``model`` for ``max_steps`` batches; ``work_dir``/``context`` options are accepted and unused."""
        if resume:
            raise ConfigError(f"{COMPONENT} cannot resume (it keeps no checkpoints); use trainer 'mmengine'")
        check_dataset(COMPONENT, dataset)
        counts = apply_stage(COMPONENT, model, stage, self.train_parts, log)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: cosine_with_warmup(step, self.max_steps, self.warmup))
        collate = collate or model.prepare_batch
        result, started = TrainResult(steps=0, parts=counts), time.perf_counter()
        model.train()
        for batch in self._batches(dataset, collate):
            loss = model(**batch)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
            optimizer.step()
            schedule.step()
            result.steps += 1
            result.samples += int(batch["input_ids"].shape[0])
            result.losses.append(float(loss.detach()))
            if self.log_every and (result.steps % self.log_every == 0 or result.steps == 1):
                log(f"step {result.steps:>5}/{self.max_steps}  loss {result.losses[-1]:.4f}  "
                    f"lr {schedule.get_last_lr()[0]:.2e}")
            if result.steps >= self.max_steps:
                break
        result.seconds = time.perf_counter() - started
        model.eval()
        return result

    def _batches(self, dataset, collate):
        """Cycle over the dataset (reshuffled each pass) until max_steps batches have been drawn."""
        generator = torch.Generator().manual_seed(self.seed)
        drawn = 0
        while drawn < self.max_steps:
            loader = torch.utils.data.DataLoader(dataset, batch_size=self.batch_size, shuffle=True, drop_last=False,
                                                 collate_fn=collate, generator=generator,
                                                 num_workers=self.num_workers)
            for batch in loader:
                drawn += 1
                yield batch
                if drawn >= self.max_steps:
                    return
