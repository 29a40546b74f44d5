"""What every bundled trainer shares: the learning-rate schedule, hyper-parameter checks, the stage's
trainable parts (asked of the model, logged per part) and the result record.

The ``simple`` and ``mmengine`` trainers both import these, so a schedule or a check is written once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any

from babyvlm.core.errors import ConfigError
from babyvlm.core.validate import check_number

__all__ = ["Resume", "TrainResult", "apply_stage", "check_dataset", "check_number", "cosine_with_warmup",
           "resume_request"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class Resume:
    """How to resume a phase (``fit(..., resume=Resume(...))``; ``resume=True`` means ``Resume()``):
    ``checkpoint`` names one (``iter_8``; default: the latest), ``force`` accepts settings that changed
    the data order or the optimisation since it was written."""

    checkpoint: str | None = None
    force: bool = False


def resume_request(resume: bool | Resume | None) -> Resume | None:
    """``fit``'s ``resume`` argument as a ``Resume`` (None: start afresh)."""
    if isinstance(resume, Resume):
        return resume
    return Resume() if resume else None


@dataclass
class TrainResult:
    steps: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    samples: int = 0
    tokens: int = 0
    parts: dict[str, dict[str, int]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def first_loss(self) -> float:
        return self.losses[0] if self.losses else float("nan")

    @property
    def last_loss(self) -> float:
        # mean of the last few steps: single-step losses are noisy
        if not self.losses:
            return float("nan")
        tail = self.losses[-max(1, min(10, len(self.losses) // 5)):]
        return sum(tail) / len(tail)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: without losses (a phase that trained no step here) the losses are None, not NaN
        (which is not JSON)."""
        first, last = (self.first_loss, self.last_loss) if self.losses else (None, None)
        return {"steps": self.steps, "first_loss": first, "last_loss": last,
                "seconds": round(self.seconds, 2), "samples": self.samples, "tokens": self.tokens,
                "parts": self.parts, "losses": self.losses, **self.extra}


def check_dataset(component: str, dataset: Sized) -> None:
    if len(dataset) == 0:  # checked here: DataLoader's shuffling sampler fails obscurely on it
        raise ConfigError(f"{component}: the dataset is empty")


def cosine_with_warmup(step: int, total: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warmup, then cosine decay to zero."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def apply_stage(component: str, model: Any, stage: str | None, train: Sequence[str] | None,
                log: Log) -> dict[str, dict[str, int]]:
    """Ask the model to freeze/unfreeze for ``stage`` (``train`` names the parts explicitly) and log the
    per-part counts it returns; trainers never set ``requires_grad`` themselves. Without a stage or
    parts, whatever the model has trainable trains."""
    if stage is None and not train:
        counts = _counts(model)
    elif hasattr(model, "freeze_backbones"):
        counts = model.freeze_backbones(stage, train=list(train) if train else None)
    else:
        raise ConfigError(f"{component}: stage {stage!r} / train={train!r} needs a model that declares its "
                          f"stages (freeze_backbones, see contracts.Model); {type(model).__name__} does not")
    trainable = sum(part["trainable"] for part in counts.values())
    log(f"{component}: stage {stage or '-'}: trainable parameters per part: "
        + ", ".join(f"{name} {c['trainable']:,}/{c['params']:,}" for name, c in counts.items())
        + f" (total trainable {trainable:,})")
    if trainable == 0:
        raise ConfigError(f"{component}: nothing to train (all parameters frozen) in stage {stage!r}")
    return counts


def _counts(model: Any) -> dict[str, dict[str, int]]:
    import torch

    children = dict(model.named_children()) if isinstance(model, torch.nn.Module) else {}
    return {name: {"params": sum(p.numel() for p in child.parameters()),
                   "trainable": sum(p.numel() for p in child.parameters() if p.requires_grad)}
            for name, child in children.items() if any(True for _ in child.parameters())}
