"""``CheckpointRunner``: mmengine's ``Runner`` with its resume replaced by babyvlm's. mmengine's own
resume unpickles its ``.pth`` files; this runner is always built with ``resume=False`` and instead
restores a ``TrainingCheckpoint`` that ``checkpoints.load_checkpoint`` has already verified: weights,
optimizer moments, scheduler counters, loop position and sampler position, with the random streams put
back before the first resumed iteration (by ``hooks.CheckpointHook``). mmengine's environment dump, config
dump and hook table go to the phase's log file only, not to the console."""

from __future__ import annotations

import logging
from typing import Any

from mmengine.runner import Runner

from babyvlm.core.errors import DataError
from babyvlm.plugins.mmengine_trainer.checkpoints import (
    SCHEDULER_COUNTERS,
    TrainingCheckpoint,
    file_names,
    optimizer_state_dict,
    restore_weights,
    unwrap,
)

# the starts of mmengine's INFO messages that are reference material (kept in WORK/.../<timestamp>.log)
FILE_ONLY_MESSAGES = ("\n" + "-" * 60 + "\nSystem environment:", "Config:\n", "Hooks will be executed in the following order")


class FileOnly(logging.Filter):
    """Keeps mmengine's dumps (environment, config, hook table) off a console handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(FILE_ONLY_MESSAGES)


class CheckpointRunner(Runner):
    """Set ``resume_from`` (and ``force_resume``) after construction; ``train()`` restores it where
    mmengine would have resumed (before the optimizer's accumulation counters are initialised)."""

    resume_from: TrainingCheckpoint | None = None
    force_resume: bool = False
    checkpoint_hook: Any = None

    def build_logger(self, *args: Any, **kwargs: Any) -> Any:
        logger = super().build_logger(*args, **kwargs)
        for handler in logger.handlers:
            if not isinstance(handler, logging.FileHandler) and not any(isinstance(f, FileOnly) for f in handler.filters):
                handler.addFilter(FileOnly())
        return logger

    def load_or_resume(self) -> None:
        checkpoint = self.resume_from
        if checkpoint is None or self._has_loaded:
            return
        restore_weights(unwrap(self.model), checkpoint)
        self._restore_optimizer(checkpoint)
        self.train_loop._iter = checkpoint.iteration
        self.train_loop.resume_draws = int(checkpoint.record["sampler"]["draws"])
        if self.checkpoint_hook is not None:
            self.checkpoint_hook.pending_rng = (checkpoint.state, checkpoint.record["rng"])
        self._has_loaded = True
        self.logger.info(f"restored checkpoint {checkpoint.name} (iteration {checkpoint.iteration}) from "
                         f"{checkpoint.folder}")

    def _restore_optimizer(self, checkpoint: TrainingCheckpoint) -> None:
        optimizer = self.optim_wrapper.optimizer
        fresh = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
        saved = optimizer_state_dict(checkpoint.state, checkpoint.record["optimizer"], optimizer)
        try:
            optimizer.load_state_dict(saved)
        except (ValueError, KeyError, RuntimeError) as exc:
            path = checkpoint.folder / file_names(checkpoint.iteration)["state"]
            raise DataError(f"{path}: the optimizer state does not fit this phase's parameters ({exc})") from exc
        schedulers = self.param_schedulers or []
        for scheduler, state in zip(schedulers, checkpoint.record["schedulers"], strict=False):
            scheduler.load_state_dict({key: state[key] for key in SCHEDULER_COUNTERS if key in state})
        if self.force_resume:  # the new settings hold from here on: hyperparameters, and the lr they give now
            for group, settings in zip(optimizer.param_groups, fresh, strict=True):
                group.update(settings)
            for scheduler in schedulers:
                for group, value in zip(optimizer.param_groups, scheduler._get_value(), strict=True):
                    group[scheduler.param_name] = value
