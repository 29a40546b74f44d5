"""``SimpleTrainer`` (trainer ``simple``): a single-process AdamW loop with cosine warmup schedule.

See the package docstring (``babyvlm/plugins/simple_trainer/__init__.py``) for what it implements.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence, Sized
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


def _check(name: str, value: object, *, whole: bool = False, low: float, high: float | None = None,
           strict: bool = False) -> None:
    """Refuse a bad hyperparameter by name (a string lr would otherwise fail deep inside torch)."""
    kinds = (int,) if whole else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    ok = ok and (value > low if strict else value >= low) and (high is None or value <= high)
    if not ok:
        bound = f"{'>' if strict else '>='} {low}" + (f" and <= {high}" if high is not None else "")
        kind = "a whole number" if whole else "a number"
        raise ConfigError(f"trainer 'simple': {name} must be {kind} {bound}, got {value!r}")


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
        _check("max_steps", max_steps, whole=True, low=1)
        _check("batch_size", batch_size, whole=True, low=1)
        _check("lr", lr, low=0.0, strict=True)
        _check("weight_decay", weight_decay, low=0.0)
        _check("warmup_ratio", warmup_ratio, low=0.0, high=1.0)
        _check("grad_clip", grad_clip, low=0.0)
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

    def fit(self, model: torch.nn.Module, dataset: Sized,
            collate: Callable[[list], dict] | None = None, log: Callable[[str], None] = print) -> TrainResult:
        if len(dataset) == 0:  # checked here: DataLoader's shuffling sampler fails obscurely on it
            raise ConfigError("trainer 'simple': the dataset is empty")
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
            for batch in loader:
                drawn += 1
                yield batch
                if drawn >= self.max_steps:
                    return
