"""``ContrastiveTrainer`` (trainer ``contrastive``): the CVCL-style image–utterance phase on the ``mmengine``
trainer's runner. What it implements is described in the package docstring
(``babyvlm/plugins/contrastive/__init__.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from babyvlm.core.compose import accepted_options
from babyvlm.core.errors import ConfigError
from babyvlm.core.validate import refuse_unknown
from babyvlm.plugins.contrastive.objective import ContrastiveObjective, PairCollate, PairDataset, retrieval
from babyvlm.plugins.mmengine_trainer.trainer import Log, MMEngineTrainer
from babyvlm.plugins.simple_trainer.shared import check_number

DEFAULT_TRAIN = ("encoder", "connector")


class RetrievalHook(Hook):
    """Held-out image -> utterance retrieval before the first step and after the last (rank 0)."""

    priority = "LOW"

    def __init__(self, objective: ContrastiveObjective, pairs: list, collate: PairCollate, out: Path, log: Log,
                 component: str):
        self.objective, self.pairs, self.collate, self.out, self.log = objective, pairs, collate, out, log
        self.component = component
        self.history: list[dict[str, Any]] = []

    def _measure(self, runner, step: int) -> None:
        if not is_main_process():
            return
        result = {"step": step, **retrieval(self.objective, self.pairs, self.collate)}
        self.history.append(result)
        runner.message_hub.update_scalar("train/retrieval_accuracy", result["accuracy"])
        with self.out.open("a") as handle:
            handle.write(json.dumps(result) + "\n")
        self.log(f"{self.component}: held-out image->utterance retrieval at step {step}: {result['accuracy']:.3f} "
                 f"(chance {result['chance']:.3f}, majority utterance {result['majority']:.3f}; "
                 f"{result['pairs']} pairs, {result['utterances']} utterances)")

    def before_train(self, runner) -> None:
        if runner.iter == 0:
            self._measure(runner, 0)

    def after_train(self, runner) -> None:
        self._measure(runner, runner.iter)


class ContrastiveTrainer(MMEngineTrainer):
    component = "trainer 'contrastive'"

    def __init__(self, temperature: float = 0.07, learn_temperature: bool = True, text_projection: bool = False,
                 retrieval: bool = True, retrieval_pairs: int = 256, lr: float = 1e-3, weight_decay: float = 0.0,
                 warmup_ratio: float = 0.05, **options: Any):
        c = self.component
        # a typo is refused here too, not only by the config check (``MMEngineTrainer`` would raise a TypeError)
        refuse_unknown(options, accepted_options(MMEngineTrainer), c, "option")
        if options.get("objective", "auto") != "auto":
            raise ConfigError(f"{c}: its objective is image-utterance InfoNCE; drop objective={options['objective']!r}")
        if options.get("train") is None:
            options["train"] = list(DEFAULT_TRAIN)
        super().__init__(lr=lr, weight_decay=weight_decay, warmup_ratio=warmup_ratio, **options)
        check_number(c, "temperature", temperature, low=0.0, strict=True)
        check_number(c, "retrieval_pairs", retrieval_pairs, whole=True, low=2)
        for name, value in (("learn_temperature", learn_temperature), ("text_projection", text_projection),
                            ("retrieval", retrieval)):
            if not isinstance(value, bool):
                raise ConfigError(f"{c}: {name} must be true or false, got {value!r}")
        self.contrastive = dict(temperature=temperature, learn_temperature=learn_temperature,
                                text_projection=text_projection, retrieval=retrieval, retrieval_pairs=retrieval_pairs)
        self.options.update(self.contrastive)
        self.__dict__.update(self.contrastive)
        self._retrieval: RetrievalHook | None = None
        self._collate: PairCollate | None = None

    def objective_for(self, model: torch.nn.Module, dataset: Any, stage: str | None, context: Any):
        for needed in ("encode_images", "language_model", "encoder"):
            if not hasattr(model, needed):
                raise ConfigError(f"{self.component}: the model has no {needed!r}; the phase needs a BabyLLaVA-style "
                                  f"model (encoder -> connector -> language model)")
        tokenizer = getattr(context, "tokenizer", None) or getattr(model, "tokenizer", None)
        if tokenizer is None:
            raise ConfigError(f"{self.component}: no tokenizer to encode the utterances (give the model one)")
        drop = [model.special_id(n) for n in ("pad_id", "sos_id", "eos_id", "image_id")]
        self._collate = PairCollate(model.encoder.preprocess, tokenizer, drop, model.special_id("pad_id"))
        objective = ContrastiveObjective(model, self.temperature, self.learn_temperature, self.text_projection)
        return objective, PairDataset(dataset, self.component), self._collate

    def extra_hooks(self, objective: torch.nn.Module, context: Any, work_dir: Path, log: Log) -> list[Any]:
        self._retrieval = None
        if not self.retrieval:
            return []
        pairs = heldout_pairs(context, self.retrieval_pairs)
        if len(pairs) < 2:
            log(f"{self.component}: no held-out image pairs (data.heldout_splits or data.heldout_recordings); "
                f"training without the retrieval check")
            return []
        self._retrieval = RetrievalHook(objective, pairs, self._collate, work_dir / "retrieval.jsonl", log,
                                        self.component)
        return [self._retrieval]

    def finish(self, model: torch.nn.Module, objective: torch.nn.Module, work_dir: Path, log: Log) -> dict[str, Any]:
        extra: dict[str, Any] = {"temperature": round(float(1 / objective.logit_scale.detach().exp()), 5)}
        if self._retrieval and self._retrieval.history:
            history = self._retrieval.history
            extra["retrieval"] = {**history[-1], "untrained": history[0]["accuracy"] if history[0]["step"] == 0 else None,
                                  "history": [{"step": h["step"], "accuracy": h["accuracy"]} for h in history]}
            log(f"{self.component}: held-out retrieval {extra['retrieval']['untrained']} -> {history[-1]['accuracy']:.3f} "
                f"(chance {history[-1]['chance']:.3f}, majority {history[-1]['majority']:.3f})")
        return {**super().finish(model, objective, work_dir, log), **extra}


def heldout_pairs(context: Any, limit: int) -> list[tuple[Any, str]]:
    """Up to ``limit`` (image, utterance) pairs of the held-out recordings, evenly spread over them;
    recordings the work dir's ``heldout.json`` marks ``test`` are always left out."""
    dataset = getattr(context, "heldout", None)
    if dataset is None or len(dataset) == 0:
        return []
    reasons: dict[str, str] = {}
    saved = Path(getattr(context, "experiment_dir", "") or ".") / "heldout.json"
    if saved.is_file():
        raw = json.loads(saved.read_text())
        reasons = raw.get("why", {}) if isinstance(raw, dict) else {}
    samples = []
    for index in range(len(dataset)):
        sample = dataset[index]
        if reasons.get((sample.get("meta") or {}).get("recording_id")) != "test":
            samples.append(sample)
    step = max(1, len(samples) / limit)
    chosen = sorted({int(i * step) for i in range(min(limit, len(samples)))})
    pairs = PairDataset([samples[i] for i in chosen])
    return [pairs[i] for i in range(len(pairs))]
