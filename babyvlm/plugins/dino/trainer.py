"""``DinoTrainer`` (trainer ``dino``): DINO for phase ``0-vision`` on the ``mmengine`` trainer's runner.
What it implements is described in the package docstring (``babyvlm/plugins/dino/__init__.py``)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from babyvlm.core.errors import ConfigError
from babyvlm.plugins.dino.crops import MultiCropDataset, collate_crops
from babyvlm.plugins.dino.objective import DinoObjective
from babyvlm.plugins.dino.probe import knn_probe, load_object_crops, random_init_copy
from babyvlm.plugins.mmengine_trainer.trainer import Log, MMEngineTrainer
from babyvlm.plugins.simple_trainer.shared import check_number

# Collapse thresholds, as fractions of log K (the entropy of a uniform output over K prototypes)
UNIFORM_AT = 0.9  # teacher per-sample entropy at or above: every teacher output is near uniform
ONE_PROTOTYPE_AT = 0.05  # entropy of the batch-mean teacher output at or below: one prototype for all inputs
LOSS_AT_LOG_K = 0.95  # the student's loss at or above: it has learned to predict nothing (loss ln K)


def collapse_verdict(teacher_entropy: float, batch_entropy: float, loss_over_log_k: float = 0.0) -> str:
    """``uniform`` (every output near uniform, or the loss at ln K), ``one-prototype`` (everything on the
    same prototypes) or ``none``; arguments are fractions of log K."""
    if teacher_entropy >= UNIFORM_AT or loss_over_log_k >= LOSS_AT_LOG_K:
        return "uniform"
    if batch_entropy <= ONE_PROTOTYPE_AT:
        return "one-prototype"
    return "none"


def collapse_warning(verdict: dict[str, Any]) -> str | None:
    """A one-line warning for a collapsed run (``None`` when it did not collapse)."""
    kind = verdict.get("collapse")
    if kind not in ("uniform", "one-prototype"):
        return None
    what = ("its outputs sit at the uniform distribution" if kind == "uniform"
            else "every input lands on the same prototypes")
    return (f"DINO collapsed ({kind}): {what} (loss {verdict['loss']:.2f} vs ln K {verdict['log_k']:.2f}, "
            f"teacher entropy {verdict['teacher_entropy']:.2f} and batch entropy {verdict['batch_entropy']:.2f} "
            f"of log K over the last tenth of the run), so the encoder learned little; try head_bn=True, "
            f"a faster teacher (lower teacher_momentum), a lower teacher_temp or more steps")


class DinoScheduleHook(Hook):
    """Teacher temperature warm-up, last-layer freezing before each step; the EMA teacher after it;
    the collapse verdict from the teacher's entropies over the last tenth of the run."""

    priority = "NORMAL"

    def __init__(self, objective: DinoObjective, trainer: DinoTrainer):
        self.objective, self.trainer = objective, trainer
        self.entropies: list[tuple[float, float]] = []
        self.losses: list[float] = []

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        step = runner.iter // self.trainer.accumulation
        self.objective.teacher_temp = self.trainer.teacher_temp_at(step)
        self.objective.freeze_last_layer = step < self.trainer.freeze_last_layer

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: dict | None = None) -> None:
        if (runner.iter + 1) % self.trainer.accumulation == 0:
            self.objective.update_teacher(self.trainer.teacher_momentum_at((runner.iter + 1) // self.trainer.accumulation))
        if outputs:
            self.entropies.append((float(outputs["teacher_entropy"]), float(outputs["batch_entropy"])))
            self.losses.append(float(outputs["loss"]))

    def verdict(self) -> dict[str, Any]:
        if not self.entropies:
            return {"collapse": "unknown"}
        count = max(1, len(self.entropies) // 10)
        teacher = sum(t for t, _ in self.entropies[-count:]) / count
        batch = sum(b for _, b in self.entropies[-count:]) / count
        loss = sum(self.losses[-count:]) / count
        log_k = math.log(self.objective.out_dim)
        return {"collapse": collapse_verdict(teacher, batch, loss / log_k), "teacher_entropy": round(teacher, 4),
                "batch_entropy": round(batch, 4), "loss": round(loss, 4), "log_k": round(log_k, 4)}


class ProbeHook(Hook):
    """The k-NN probe on the teacher's backbone: before training (untrained), every N steps, at the end;
    and once on a random-init copy of the encoder, the reference a trained encoder must beat."""

    priority = "LOW"

    def __init__(self, objective: DinoObjective, crops: list, every: int, k: int, out: Path, log: Log):
        self.objective, self.crops, self.every, self.k, self.out, self.log = objective, crops, every, k, out, log
        self.history: list[dict[str, Any]] = []
        self.random: dict[str, Any] | None = None

    def _probe(self, runner, step: int) -> None:
        if not is_main_process():
            return
        result = {"step": step, **knn_probe(self.objective.teacher.backbone, self.crops, self.k)}
        self.history.append(result)
        runner.message_hub.update_scalar("train/knn_accuracy", result["accuracy"])
        with self.out.open("a") as handle:
            handle.write(json.dumps(result) + "\n")
        self.log(f"0-vision k-NN probe at step {step}: accuracy {result['accuracy']:.3f} "
                 f"(chance {result['chance']:.3f}; {result['categories']} categories, {result['queries']} queries)")

    def before_train(self, runner) -> None:
        if is_main_process():
            self.random = knn_probe(random_init_copy(self.objective.teacher.backbone), self.crops, self.k)
            self.log(f"0-vision k-NN probe of a random-init encoder: accuracy {self.random['accuracy']:.3f} "
                     f"(chance {self.random['chance']:.3f})")
        if runner.iter == 0:
            self._probe(runner, 0)

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: dict | None = None) -> None:
        step = runner.iter + 1
        if self.every and step % self.every == 0 and step != runner.max_iters:
            self._probe(runner, step)

    def after_train(self, runner) -> None:
        self._probe(runner, runner.iter)


class DinoTrainer(MMEngineTrainer):
    component = "trainer 'dino'"

    def __init__(self, out_dim: int = 1024, hidden_dim: int = 512, bottleneck_dim: int = 128, local_crops: int = 4,
                 local_size: int | None = None, student_temp: float = 0.1,
                 teacher_temp: Sequence[float] = (0.04, 0.07), teacher_temp_warmup: float = 0.3,
                 center_momentum: float = 0.9, teacher_momentum: float = 0.996, freeze_last_layer: int = 0,
                 head_bn: bool = False, probe_every: int = 0, probe_k: int = 10, probe_crops: int = 200, probe: bool = True,
                 probe_context: float = 2.0, probe_greyscale: bool = True,
                 lr: float = 5e-4, weight_decay: float = 0.04, grad_clip: float = 3.0, warmup_ratio: float = 0.1,
                 **options: Any):
        if options.get("objective", "auto") != "auto":
            raise ConfigError(f"{self.component}: its objective is DINO; drop objective={options['objective']!r}")
        super().__init__(lr=lr, weight_decay=weight_decay, grad_clip=grad_clip, warmup_ratio=warmup_ratio, **options)
        c = self.component
        for name, value in (("out_dim", out_dim), ("hidden_dim", hidden_dim), ("bottleneck_dim", bottleneck_dim),
                            ("probe_k", probe_k), ("probe_crops", probe_crops)):
            check_number(c, name, value, whole=True, low=1)
        for name, value in (("local_crops", local_crops), ("freeze_last_layer", freeze_last_layer),
                            ("probe_every", probe_every)):
            check_number(c, name, value, whole=True, low=0)
        check_number(c, "student_temp", student_temp, low=0.0, strict=True)
        check_number(c, "probe_context", probe_context, low=1.0)
        check_number(c, "center_momentum", center_momentum, low=0.0, high=1.0)
        check_number(c, "teacher_momentum", teacher_momentum, low=0.0, high=1.0)
        check_number(c, "teacher_temp_warmup", teacher_temp_warmup, low=0.0, high=1.0)
        if len(teacher_temp) != 2 or any(not isinstance(t, (int, float)) or t <= 0 for t in teacher_temp):
            raise ConfigError(f"{c}: teacher_temp must be (start, end) temperatures > 0, got {teacher_temp!r}")
        self.dino = dict(out_dim=out_dim, hidden_dim=hidden_dim, bottleneck_dim=bottleneck_dim, local_crops=local_crops,
                         local_size=local_size, student_temp=student_temp, teacher_temp=list(teacher_temp),
                         teacher_temp_warmup=teacher_temp_warmup, center_momentum=center_momentum,
                         teacher_momentum=teacher_momentum, freeze_last_layer=freeze_last_layer, head_bn=head_bn,
                         probe_every=probe_every, probe_k=probe_k, probe_crops=probe_crops, probe=probe,
                         probe_context=probe_context, probe_greyscale=probe_greyscale)
        self.options.update(self.dino)
        self.__dict__.update(self.dino)
        self._schedule: DinoScheduleHook | None = None
        self._probe: ProbeHook | None = None

    # ---- schedules (pure functions of the optimizer step: identical after a resume) ------------
    def teacher_temp_at(self, step: int) -> float:
        start, end = self.teacher_temp
        warmup = int(self.teacher_temp_warmup * self.max_steps)
        return end if step >= warmup else start + (end - start) * step / max(1, warmup)

    def teacher_momentum_at(self, step: int) -> float:
        base = self.teacher_momentum
        return 1 - (1 - base) * (math.cos(math.pi * min(step, self.max_steps) / self.max_steps) + 1) / 2

    # ---- the phase ------------------------------------------------------------------------------
    def objective_for(self, model: torch.nn.Module, dataset: Any, stage: str | None, context: Any):
        encoder = model.parts()["encoder"] if hasattr(model, "parts") else getattr(model, "encoder", None)
        if encoder is None:
            raise ConfigError(f"{self.component}: the model has no 'encoder' part to train")
        size = int(encoder.image_size)
        local = self.local_size or max(16, round(size * 96 / 224 / 4) * 4)
        if local != size and not _accepts_size(encoder, local):
            local = size  # e.g. a ViT with fixed position embeddings: local crops at the global size
        objective = DinoObjective(encoder, self.out_dim, self.hidden_dim, self.bottleneck_dim, self.student_temp,
                                  self.center_momentum, self.head_bn)
        crops = MultiCropDataset(dataset, size, local, self.local_crops, seed=self.seed)
        return objective, crops, collate_crops

    def extra_hooks(self, objective: torch.nn.Module, context: Any, work_dir: Path, log: Log) -> list[Any]:
        self._schedule = DinoScheduleHook(objective, self)
        hooks: list[Any] = [self._schedule]
        self._probe = None
        if self.probe:
            crops = self._probe_crops(context, log)
            self._probe = ProbeHook(objective, crops, self.probe_every, self.probe_k, work_dir / "probe.jsonl", log)
            hooks.append(self._probe)
        return hooks

    def _probe_crops(self, context: Any, log: Log) -> list:
        recordings = tuple(getattr(context, "heldout_recordings", ()) or ())
        if not recordings or getattr(context, "root", None) is None:
            raise ConfigError(f"{self.component}: the k-NN probe needs held-out recordings with object annotations "
                              f"(data.heldout_recordings >= 1), or probe=False")
        crops = load_object_crops(context.source, context.root, recordings, max_per_recording=self.probe_crops,
                                  context=self.probe_context, greyscale=self.probe_greyscale)
        if not crops:
            raise ConfigError(f"{self.component}: the held-out recordings {', '.join(recordings)} have no annotated "
                              f"object crops for the k-NN probe (set probe=False to train without it)")
        log(f"{self.component}: k-NN probe on {len(crops)} object crops from {len(recordings)} held-out recording(s)")
        return crops

    def finish(self, model: torch.nn.Module, objective: torch.nn.Module, work_dir: Path, log: Log) -> dict[str, Any]:
        # the teacher (EMA) backbone is DINO's better encoder: it becomes the model's
        objective.student.backbone.load_state_dict(objective.teacher.backbone.state_dict())
        extra = dict(self._schedule.verdict()) if self._schedule else {}
        extra["collapse_warning"] = collapse_warning(extra)
        if self._probe and self._probe.history:
            history = self._probe.history
            random = self._probe.random["accuracy"] if self._probe.random else None
            extra["knn_probe"] = {**history[-1], "untrained": history[0]["accuracy"] if history[0]["step"] == 0 else None,
                                  "random": random,
                                  "history": [{"step": h["step"], "accuracy": h["accuracy"]} for h in history]}
            extra["probe_random"], extra["probe_trained"] = random, history[-1]["accuracy"]
            log(f"{self.component}: k-NN probe of the trained encoder {history[-1]['accuracy']:.3f} vs a random-init "
                f"one {random if random is None else format(random, '.3f')} (chance {history[-1]['chance']:.3f})")
        log(f"{self.component}: collapse check: {extra.get('collapse')} (loss {extra.get('loss')} vs ln K "
            f"{extra.get('log_k')}; teacher entropy {extra.get('teacher_entropy')}, batch entropy "
            f"{extra.get('batch_entropy')} of log K)")
        if extra["collapse_warning"]:
            log(f"WARNING {self.component}: {extra['collapse_warning']}")
        return {**super().finish(model, objective, work_dir, log), **extra}


def _accepts_size(encoder: torch.nn.Module, size: int) -> bool:
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            out = encoder(torch.zeros(1, 3, size, size, device=next(encoder.parameters()).device))
        return out.shape[-1] == encoder.hidden_size
    except Exception:  # any failure means this encoder only takes its own image size
        return False
    finally:
        encoder.train(was_training)
