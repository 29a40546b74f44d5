"""``SimpleTrainer`` (trainer ``simple``): a single-process AdamW loop with cosine warmup schedule.

See the package docstring (``babyvlm/plugins/simple_trainer/__init__.py``) for what it implements.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from babyvlm.core.errors import ConfigError


@dataclass
class TrainResult:
    steps: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    samples: int = 0

    @property
    def first_loss(self) -> float:
        return self.losses[0]

    @property
    def last_loss(self) -> float:
        # mean of the last few steps: single-step losses are noisy
        tail = self.losses[-max(1, min(10, len(self.losses) // 5)):]
        return sum(tail) / len(tail)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "first_loss": self.first_loss, "last_loss": self.last_loss,
                "seconds": round(self.seconds, 2), "samples": self.samples, "losses": self.losses}


def cosine_with_warmup(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warmup, then cosine decay to zero."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class SimpleTrainer:
    def __init__(self, max_steps: int = 100, lr: float = 1e-3, batch_size: int = 8, weight_decay: float = 0.0,
                 betas: Sequence[float] = (0.9, 0.95), warmup_ratio: float = 0.03, grad_clip: float = 1.0,
                 train: Sequence[str] | None = None, log_every: int = 10, seed: int = 0, num_workers: int = 0):
        if max_steps < 1 or batch_size < 1:
            raise ConfigError(f"trainer 'simple': max_steps and batch_size must be >= 1 (got {max_steps}, {batch_size})")
        self.max_steps, self.lr, self.batch_size = max_steps, lr, batch_size
        self.weight_decay, self.betas = weight_decay, tuple(betas)
        self.warmup = int(round(warmup_ratio * max_steps))
        self.grad_clip, self.train_parts = grad_clip, list(train) if train else None
        self.log_every, self.seed, self.num_workers = log_every, seed, num_workers

    def select_trainable(self, model: torch.nn.Module) -> list[torch.nn.Parameter]:
        if self.train_parts is None:
            return [p for p in model.parameters() if p.requires_grad]
        for part in self.train_parts:
            if not isinstance(getattr(model, part, None), torch.nn.Module):
                raise ConfigError(f"trainer 'simple': model has no part {part!r} to train")
        model.requires_grad_(False)
        for part in self.train_parts:
            getattr(model, part).requires_grad_(True)
        return [p for p in model.parameters() if p.requires_grad]

    def fit(self, model: torch.nn.Module, dataset: Iterable | torch.utils.data.Dataset,
            collate: Callable[[list], dict] | None = None, log: Callable[[str], None] = print) -> TrainResult:
        params = self.select_trainable(model)
        if not params:
            raise ConfigError("trainer 'simple': nothing to train (all parameters frozen)")
        optimizer = torch.optim.AdamW(params, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: cosine_with_warmup(step, self.max_steps, self.warmup))
        collate = collate or model.prepare_batch
        result, started = TrainResult(steps=0), time.perf_counter()
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
            empty = True
            for batch in loader:
                empty = False
                drawn += 1
                yield batch
                if drawn >= self.max_steps:
                    return
            if empty:
                raise ConfigError("trainer 'simple': the dataset is empty")
