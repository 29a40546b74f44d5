"""``MMEngineTrainer`` (trainer ``mmengine``): one phase on mmengine's ``Runner``. What it implements is
described in the package docstring (``babyvlm/plugins/mmengine_trainer/__init__.py``).

Work dir layout (``work_dir``, the phase's folder): ``iter_N.safetensors`` + ``state_N.safetensors`` +
``iter_N.json`` (resume points, checksummed in ``checkpoints.sha256``; see ``checkpoints.py``),
``last_checkpoint`` (the newest, relative), ``metrics.jsonl``, ``trainer.json`` (resolved settings, stage,
per-part counts), ``<timestamp>/`` (mmengine's log and ``vis_data/`` with TensorBoard events and
``scalars.json``), ``model/`` (the final ``save_pretrained`` export), ``.babyvlm.lock`` (one training
per work dir: a second is refused naming the first).

Resume (``fit(..., resume=True)`` or ``resume=Resume(checkpoint="iter_8", force=False)``): the checkpoint
is verified before it is read; settings that would change the data order or the optimisation since it was
written are refused, listed (``force=True`` accepts them); a phase whose last checkpoint is its final
iteration is reported finished, with its recorded losses, and is not trained again.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence, Sized
from pathlib import Path
from typing import Any

import torch

from babyvlm.core.constants import LANGUAGE_STAGE
from babyvlm.core.contracts import FeatureRemembering, ImageFitting
from babyvlm.core.errors import BabyVLMError, ConfigError
from babyvlm.core.io import LockedError, WriterLock, atomic_write_json, disk_errors
from babyvlm.plugins.mmengine_trainer.checkpoints import (
    AFTER_DISK_FULL,
    LAST,
    TrainingCheckpoint,
    load_checkpoint,
    plain_settings,
    restore_weights,
    setting_differences,
)
from babyvlm.plugins.mmengine_trainer.fitted_images import FittedImages
from babyvlm.plugins.mmengine_trainer.hooks import CheckpointHook, MetricsHook, read_metrics
from babyvlm.plugins.mmengine_trainer.loop import ResumableIterLoop
from babyvlm.plugins.mmengine_trainer.objectives import ModelLoss, PhaseModule
from babyvlm.plugins.mmengine_trainer.packing import PackedTextDataset, collate_blocks
from babyvlm.plugins.mmengine_trainer.sampler import ResumableSampler
from babyvlm.plugins.mmengine_trainer.schedule import WarmupCosineLR
from babyvlm.plugins.simple_trainer.shared import (
    Resume,
    TrainResult,
    apply_stage,
    check_dataset,
    check_number,
    resume_request,
)

Log = Callable[[str], None]
PRECISIONS = ("fp32", "bf16")
STRATEGIES = ("ddp", "fsdp")
OBJECTIVES = ("auto", "vlm", "causal_lm")


def has_checkpoint(work_dir: str | os.PathLike) -> bool:
    return (Path(work_dir) / LAST).is_file()


def resolve_device(device: str, component: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{component}: device='cuda' but no CUDA GPU is visible on this machine")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"{component}: device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return device


class MMEngineTrainer:
    component = "trainer 'mmengine'"

    def __init__(self, max_steps: int = 100, lr: float = 1e-3, batch_size: int = 8, accumulation: int = 1,
                 weight_decay: float = 0.0, betas: Sequence[float] = (0.9, 0.95), warmup_ratio: float = 0.03,
                 grad_clip: float = 1.0, lr_per_part: dict[str, float] | None = None,
                 train: Sequence[str] | None = None, precision: str = "fp32", gradient_checkpointing: bool = False,
                 device: str = "auto", strategy: str = "ddp", checkpoint_every: int = 0, keep_checkpoints: int = 2,
                 log_every: int = 10, seed: int = 0, num_workers: int = 0, objective: str = "auto",
                 block_size: int = 64, export: bool = True, tensorboard: bool = True, image_cache_mb: int = 1024,
                 feature_cache_mb: int = 0):
        c = self.component
        for name, value in (("max_steps", max_steps), ("batch_size", batch_size), ("accumulation", accumulation),
                            ("block_size", block_size), ("keep_checkpoints", keep_checkpoints)):
            check_number(c, name, value, whole=True, low=1)
        for name, value in (("checkpoint_every", checkpoint_every), ("log_every", log_every),
                            ("num_workers", num_workers), ("seed", seed), ("image_cache_mb", image_cache_mb),
                            ("feature_cache_mb", feature_cache_mb)):
            check_number(c, name, value, whole=True, low=0)
        check_number(c, "lr", lr, low=0.0, strict=True)
        check_number(c, "weight_decay", weight_decay, low=0.0)
        check_number(c, "warmup_ratio", warmup_ratio, low=0.0, high=1.0)
        check_number(c, "grad_clip", grad_clip, low=0.0)
        for part, part_lr in (lr_per_part or {}).items():
            check_number(c, f"lr_per_part.{part}", part_lr, low=0.0, strict=True)
        _one_of(c, "precision", precision, PRECISIONS)
        _one_of(c, "strategy", strategy, STRATEGIES)
        _one_of(c, "objective", objective, OBJECTIVES)
        self.options = dict(max_steps=max_steps, lr=lr, batch_size=batch_size, accumulation=accumulation,
                            weight_decay=weight_decay, betas=list(betas), warmup_ratio=warmup_ratio,
                            grad_clip=grad_clip, lr_per_part=dict(lr_per_part or {}),
                            train=list(train) if train else None, precision=precision,
                            gradient_checkpointing=gradient_checkpointing, device=device, strategy=strategy,
                            checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints,
                            log_every=log_every, seed=seed, num_workers=num_workers, objective=objective,
                            block_size=block_size, export=export, tensorboard=tensorboard,
                            image_cache_mb=image_cache_mb, feature_cache_mb=feature_cache_mb)
        self.__dict__.update(self.options)
        self.device = resolve_device(device, c)
        if strategy == "fsdp" and self.device != "cuda":
            raise ConfigError(f"{c}: strategy='fsdp' needs CUDA GPUs; none is visible (use strategy='ddp')")

    # ---- the phase ------------------------------------------------------------------------------
    def fit(self, model: torch.nn.Module, dataset: Sized, log: Log = print, stage: str | None = None,
            work_dir: str | os.PathLike | None = None, resume: bool | Resume = False, context: Any = None,
            **_unused: Any) -> TrainResult:
        work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="babyvlm-phase-"))
        request = resume_request(resume)
        if request and request.checkpoint is None and not has_checkpoint(work_dir):
            raise ConfigError(f"--resume: no checkpoint to resume in {work_dir} (no last_checkpoint file)")
        lock = _lock_work_dir(work_dir, stage, log)
        try:
            return self._fit(model, dataset, log, stage, work_dir, request, context)
        finally:
            if lock is not None:
                lock.release()

    def _fit(self, model: torch.nn.Module, dataset: Sized, log: Log, stage: str | None, work_dir: Path,
             request: Resume | None, context: Any) -> TrainResult:
        checkpoint = load_checkpoint(work_dir, request.checkpoint) if request else None
        counts = apply_stage(self.component, model, stage, self.train, log)
        objective, dataset, collate = self.objective_for(model, dataset, stage, context)
        check_dataset(self.component, dataset)
        settings = self.resume_settings(stage, len(dataset))
        if checkpoint is not None:
            self._check_resumable(checkpoint, settings, request.force, log)
            if checkpoint.iteration >= self.max_steps * self.accumulation:
                return self._finished(model, objective, checkpoint, counts, work_dir, log)
        self._gradient_checkpointing(model, log)
        with disk_errors(work_dir / "trainer.json", AFTER_DISK_FULL):
            atomic_write_json(work_dir / "trainer.json", {"trainer": type(self).__name__, "stage": stage,
                                                         "options": self.options, "parts": counts,
                                                         "dataset_size": len(dataset)})
        metrics = MetricsHook(work_dir / "metrics.jsonl")
        saver = CheckpointHook(self.checkpoint_every or self.max_steps * self.accumulation, self.keep_checkpoints,
                               plain_settings(settings))
        hooks = [saver, metrics, *self.extra_hooks(objective, context, work_dir, log)]
        runner = self._runner(PhaseModule(objective, self.precision), dataset, collate, work_dir, hooks)
        runner.resume_from, runner.force_resume, runner.checkpoint_hook = checkpoint, bool(request and request.force), saver
        started = time.perf_counter()
        with self.remembered_features(model, objective) as memo:
            runner.train()
        result = TrainResult(steps=runner.iter, losses=metrics.losses, seconds=time.perf_counter() - started,
                             samples=metrics.samples, tokens=metrics.tokens, parts=counts)
        if memo is not None and (memo.pictures or memo.bypassed):
            result.extra["frozen_features"] = self._report_features(memo.stats(), log)
        stats = self._report_fitted(dataset, log) if isinstance(dataset, FittedImages) else None
        if stats is not None:
            result.extra["fitted_images"] = stats
        result.extra.update(self.finish(model, objective, work_dir, log))
        model.eval()
        return result

    def _report_fitted(self, dataset: FittedImages, log: Log) -> dict[str, int] | None:
        if self.num_workers:  # the counts live in the worker processes
            log(f"{self.component}: pictures fitted to the encoder once in each of {self.num_workers} loader "
                f"workers (up to {dataset.max_bytes / 2**20:.1f} MB each; counts stay in the workers){_per_rank()}")
            return None
        stats = dataset.stats()
        past = f"; {stats['over_budget']} items past the {self.image_cache_mb} MB budget (image_cache_mb), fitted " \
            f"on every draw" if stats["over_budget"] else ""
        other = f"; {stats['not_arrays']} items not kept (fit_image gave no numpy arrays)" if stats["not_arrays"] else ""
        log(f"{self.component}: pictures fitted to the encoder once: {stats['draws']} draws, {stats['fitted']} "
            f"fitted, {stats['kept_items']} items kept ({stats['kept_bytes'] / 2**20:.1f} MB){past}{other}{_per_rank()}")
        return stats

    def remembered_features(self, model: torch.nn.Module, objective: torch.nn.Module) -> Any:
        """A context for the phase's steps: inside, a frozen encoder's output per picture is computed once and
        reused (``contracts.FeatureRemembering``, up to ``feature_cache_mb``; the default 0: off). Yields the memo,
        or ``None`` where the model cannot remember or the objective is not the model's own loss."""
        if not self.feature_cache_mb or not isinstance(objective, ModelLoss) or not isinstance(model, FeatureRemembering):
            return contextlib.nullcontext()
        return model.remember_frozen_features(self.feature_cache_mb * 2**20)

    def _report_features(self, stats: dict[str, Any], log: Log) -> dict[str, Any]:
        if stats["pictures"]:
            past = f"; {stats['over_budget']} outputs past the {self.feature_cache_mb} MB budget " \
                f"(feature_cache_mb), encoded on every draw" if stats["over_budget"] else ""
            log(f"{self.component}: frozen encoder, each picture encoded once: {stats['pictures']} pictures, "
                f"{stats['reused']} reused, {stats['encoded']} encoded, {stats['kept']} outputs kept "
                f"({stats['kept_bytes'] / 2**20:.1f} MB){past}{_per_rank()}")
        return stats

    def resume_settings(self, stage: str | None, dataset_size: int) -> dict[str, Any]:
        """What a checkpoint records of this run, and a resume compares: the options, the stage, the
        dataset's size and the number of processes."""
        return {**self.options, "stage": stage, "dataset_size": dataset_size, "world_size": _world()}

    def _check_resumable(self, checkpoint: TrainingCheckpoint, settings: dict[str, Any], force: bool, log: Log) -> None:
        saved = checkpoint.record.get("settings", {})
        if saved.get("world_size", 1) != settings["world_size"]:
            raise ConfigError(f"checkpoint {checkpoint.name} in {checkpoint.folder} was written by "
                              f"{saved['world_size']} processes; resume it with the same number (now "
                              f"{settings['world_size']})")
        differences = setting_differences(saved, settings)
        if differences and not force:
            raise ConfigError(f"--resume: checkpoint {checkpoint.name} in {checkpoint.folder} was written with other "
                              f"settings, which would change the data order or the optimisation: "
                              f"{'; '.join(differences)}. Resume with the settings it was written with, or add "
                              f"--force-resume to accept the changes")
        if differences:
            log(f"{self.component}: --force-resume: resuming {checkpoint.name} with changed settings: "
                f"{'; '.join(differences)}")

    def _finished(self, model: torch.nn.Module, objective: torch.nn.Module, checkpoint: TrainingCheckpoint,
                  counts: dict[str, dict[str, int]], work_dir: Path, log: Log) -> TrainResult:
        """A phase whose checkpoint is its last iteration: its weights back in the model, its recorded
        losses as the result; nothing is trained."""
        restore_weights(PhaseModule(objective, self.precision), checkpoint)
        log(f"{self.component}: phase finished already ({checkpoint.name}: iteration {checkpoint.iteration} of "
            f"{self.max_steps * self.accumulation}); nothing to resume, its weights are loaded")
        metrics = work_dir / "metrics.jsonl"
        losses = [float(record["loss"]) for _, record in (read_metrics(metrics) if metrics.is_file() else [])
                  if record["iter"] <= checkpoint.iteration and "loss" in record]
        result = TrainResult(steps=checkpoint.iteration, losses=losses, parts=counts)
        result.extra.update(self.finish(model, objective, work_dir, log), finished_already=True)
        model.eval()
        return result

    def objective_for(self, model: torch.nn.Module, dataset: Sized, stage: str | None, context: Any):
        """(module to optimise, dataset, collate) for this phase; subclasses (``dino``) add their own."""
        objective = self.objective
        if objective == "auto":
            objective = "causal_lm" if stage == LANGUAGE_STAGE else "vlm"
        if objective == "causal_lm":
            texts = list(dataset)
            if texts and not isinstance(texts[0], str):
                raise ConfigError(f"{self.component}: objective 'causal_lm' needs texts (the experiment's "
                                  f"transcripts), got {type(texts[0]).__name__} items")
            packed = PackedTextDataset(texts, getattr(context, "tokenizer", None) or model.tokenizer,
                                       self.block_size)
            return ModelLoss(model), packed, collate_blocks
        return ModelLoss(model), self.fitted_images(model, dataset), model.prepare_batch

    def fitted_images(self, model: torch.nn.Module, dataset: Sized) -> Sized:
        """The dataset with each item's pictures fitted to the model's encoder once and kept (up to
        ``image_cache_mb`` per process, split between its loader workers; 0: every draw decodes and resizes
        again). Only where the model has ``fit_image`` and items do not change from draw to draw."""
        if not self.image_cache_mb or not isinstance(model, ImageFitting) or getattr(dataset, "keyed_by_draw", False):
            return dataset
        return FittedImages(dataset, model.fit_image, self.image_cache_mb * 2**20 // max(1, self.num_workers))

    def extra_hooks(self, objective: torch.nn.Module, context: Any, work_dir: Path, log: Log) -> list[Any]:
        """More runner hooks for this phase (the ``dino`` trainer's schedules and probe)."""
        return []

    def finish(self, model: torch.nn.Module, objective: torch.nn.Module, work_dir: Path, log: Log) -> dict[str, Any]:
        """Export the trained model (rank 0) as the HF-loadable checkpoint ``work_dir/model``."""
        if self.export and _rank() == 0 and hasattr(model, "save_pretrained"):
            model.save_pretrained(work_dir / "model")
            log(f"{self.component}: exported {work_dir / 'model'}")
        return {"work_dir": str(work_dir)}

    # ---- mmengine pieces ------------------------------------------------------------------------
    def _runner(self, module: PhaseModule, dataset: Sized, collate: Callable, work_dir: Path, hooks: list[Any]):
        from babyvlm.plugins.mmengine_trainer.runner import CheckpointRunner

        distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        sampler = ResumableSampler(len(dataset), self.batch_size, seed=self.seed,
                                   with_draw=getattr(dataset, "keyed_by_draw", False))
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.batch_size, sampler=sampler,
                                             collate_fn=collate, num_workers=self.num_workers,
                                             pin_memory=self.device == "cuda",
                                             persistent_workers=self.num_workers > 0)
        iters = self.max_steps * self.accumulation
        if self.device == "cpu":
            os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # mmengine moves the model to get_device()
        backends = [dict(type="LocalVisBackend")]  # vis_data/scalars.json (JSONL) always
        if self.tensorboard and importlib.util.find_spec("tensorboard") is not None:
            backends.append(dict(type="TensorboardVisBackend"))
        runner = CheckpointRunner(
            model=module, work_dir=str(work_dir), experiment_name=f"{work_dir.name}-{uuid.uuid4().hex[:8]}",
            train_dataloader=loader, train_cfg=dict(type=ResumableIterLoop, max_iters=iters),
            optim_wrapper=self._optim_wrapper(), param_scheduler=[dict(
                type=WarmupCosineLR, total=self.max_steps, warmup=int(round(self.warmup_ratio * self.max_steps)),
                accumulation=self.accumulation, by_epoch=False, end=iters)],
            default_hooks=dict(
                runtime_info=dict(type="RuntimeInfoHook"), timer=dict(type="IterTimerHook"),
                logger=dict(type="LoggerHook", interval=max(1, self.log_every or iters), log_metric_by_epoch=False),
                param_scheduler=dict(type="ParamSchedulerHook"),
                checkpoint=None),  # mmengine's pickles; hooks.CheckpointHook writes babyvlm's format
            custom_hooks=hooks,
            launcher="pytorch" if distributed else "none",
            env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend="nccl" if self.device == "cuda" else "gloo")),
            cfg=dict(model_wrapper_cfg=self._wrapper_cfg()) if distributed else None,
            randomness=dict(seed=self.seed), resume=False, visualizer=dict(type="Visualizer", vis_backends=backends),
            log_processor=dict(by_epoch=False), log_level="INFO")
        return runner

    def _optim_wrapper(self) -> dict[str, Any]:
        custom = {f"objective.model.{part}.": dict(lr_mult=part_lr / self.lr)
                  for part, part_lr in self.lr_per_part.items()}
        return dict(type="OptimWrapper", accumulative_counts=self.accumulation,
                    optimizer=dict(type="AdamW", lr=self.lr, betas=tuple(self.betas), weight_decay=self.weight_decay),
                    clip_grad=dict(max_norm=self.grad_clip) if self.grad_clip else None,
                    paramwise_cfg=dict(custom_keys=custom) if custom else None)

    def _wrapper_cfg(self) -> dict[str, Any]:
        if self.strategy == "fsdp":
            return dict(type="MMFullyShardedDataParallel")
        return dict(type="MMDistributedDataParallel", broadcast_buffers=False, find_unused_parameters=False,
                    device_ids=[int(os.environ.get("LOCAL_RANK", 0))] if self.device == "cuda" else None)

    def _gradient_checkpointing(self, model: torch.nn.Module, log: Log) -> None:
        if not self.gradient_checkpointing:
            return
        enabled = []
        for name, module in model.named_modules():
            if hasattr(module, "gradient_checkpointing_enable") and getattr(module, "supports_gradient_checkpointing", False):
                module.gradient_checkpointing_enable()
                enabled.append(name or type(module).__name__)
        if not enabled:
            raise ConfigError(f"{self.component}: gradient_checkpointing=True but no part of the model supports it")
        log(f"{self.component}: gradient checkpointing on in {', '.join(enabled)}")


def _one_of(component: str, name: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{component}: {name} must be one of {', '.join(allowed)}, got {value!r}")


def _rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def _per_rank() -> str:
    """What a count logged by one process says under DDP: it is that rank's own."""
    return f" (rank {_rank()}; each rank keeps its own)" if _world() > 1 else ""


def _world() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def _lock_work_dir(work_dir: Path, stage: str | None, log: Log) -> WriterLock | None:
    """One training per phase work dir: rank 0 holds the ``WriterLock``; when it cannot, every process
    stops with its message (the others would otherwise wait for it at the first collective)."""
    lock, error = None, None
    if _rank() == 0:
        try:
            lock = WriterLock(work_dir, f"training phase {stage or work_dir.name}").acquire()
        except BabyVLMError as exc:
            if _world() == 1:
                raise
            error = str(exc)
    if _world() > 1 and torch.distributed.is_initialized():
        errors: list[str | None] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(errors, error)
        error = next((e for e in errors if e), None)
    if error:
        if lock is not None:
            lock.release()
        raise LockedError(error)
    if lock is not None and lock.stale_note():
        log(lock.stale_note())
    return lock
