"""``WarmupCosineLR``: the shared warmup + cosine multiplier (``simple_trainer.shared``) as an mmengine
parameter scheduler, counted in optimizer steps (``accumulation`` micro-batches make one step)."""

from __future__ import annotations

from mmengine.optim.scheduler.param_scheduler import _ParamScheduler

from babyvlm.plugins.simple_trainer.shared import cosine_with_warmup


class WarmupCosineLR(_ParamScheduler):
    def __init__(self, optimizer, total: int, warmup: int, accumulation: int = 1, by_epoch: bool = False,
                 **kwargs):
        if by_epoch:
            raise ValueError("WarmupCosineLR counts iterations (by_epoch=False)")
        self.total, self.warmup, self.accumulation = total, warmup, accumulation
        super().__init__(optimizer, param_name="lr", by_epoch=False, **kwargs)

    def _get_value(self) -> list[float]:
        step = self.last_step // self.accumulation
        factor = cosine_with_warmup(step, self.total, self.warmup)
        return [base * factor for base in self.base_values]
