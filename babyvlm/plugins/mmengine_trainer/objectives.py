"""Training objectives the runner optimises: a module whose ``forward(batch)`` returns ``loss`` plus
numbers to log (``n_samples``, ``n_tokens``), and ``PhaseModule``, the mmengine ``BaseModel`` around it
(mode ``loss`` only; bf16 autocast inside forward, because mmengine's AmpOptimWrapper refuses CPU)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from mmengine.model import BaseModel


def keep_frozen_parts_in_eval(model: torch.nn.Module) -> None:
    """Frozen parts (no parameter that trains) stay in eval mode: their batch-norm statistics and dropout
    do not move either. Call after ``train()``."""
    for part in model.children():
        if not any(p.requires_grad for p in part.parameters()):
            part.eval()


class ModelLoss(torch.nn.Module):
    """The model's own loss on a prepared batch (objectives ``vlm`` and ``causal_lm``)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def train(self, mode: bool = True) -> ModelLoss:
        super().train(mode)
        if mode:
            keep_frozen_parts_in_eval(self.model)
        return self

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        out = self.model(**batch)
        tokens = out.get("attention_mask")
        tokens = batch["attention_mask"] if tokens is None else tokens
        return {"loss": out["loss"], "n_samples": torch.tensor(float(batch["input_ids"].shape[0])),
                "n_tokens": tokens.sum().float().detach()}


class PhaseModule(BaseModel):
    def __init__(self, objective: torch.nn.Module, precision: str = "fp32"):
        super().__init__()
        self.objective = objective
        self.precision = precision

    def forward(self, mode: str = "loss", **batch: Any) -> dict[str, torch.Tensor]:
        if mode != "loss":
            raise ValueError(f"PhaseModule only trains (mode 'loss'), got mode {mode!r}")
        with self._autocast():
            out = self.objective(batch)
        return out

    def parse_losses(self, losses: dict[str, torch.Tensor]):
        loss = losses["loss"]
        log_vars = {"loss": loss.detach().float()}
        log_vars.update({k: v.detach().float() for k, v in losses.items() if k != "loss"})
        return loss, log_vars

    def _autocast(self):
        if self.precision != "bf16":
            return contextlib.nullcontext()
        device = next(self.parameters()).device.type
        return torch.autocast(device, dtype=torch.bfloat16)
