"""A whole experiment from one config: source -> sample store -> datasets -> tokenizer -> model ->
training phases -> evaluation -> report. Each stage is an explicit method; every component is looked
up by its registered name, so a config (or the equivalent Python dict) swaps any of them::

    from babyvlm import Experiment
    exp = Experiment("babyvlm/configs/demo.py", work_dir="runs/demo")
    report = exp.run()            # or call the stages one by one:
    exp.build_data(); exp.build_tokenizer(); exp.build_model(); exp.train(); exp.evaluate()

Config sections: ``data`` (``source``: a source spec, ``root``, ``builder``: a builder spec,
``heldout_recordings``), ``tokenizer`` (a tokenizer spec, trained on the training transcripts),
``model`` (as for ``build_model``), ``phases`` (each ``name``, ``formats``, ``trainer`` spec).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from babyvlm.core.compose import _plain, build, build_model, load_config, write_resolved_config
from babyvlm.core.errors import ConfigError
from babyvlm.core.io import atomic_write_json

Log = Callable[[str], None]


class Experiment:
    def __init__(self, config: str | os.PathLike | Mapping[str, Any], work_dir: str | os.PathLike,
                 log: Log = print, seed: int = 0):
        self.cfg = load_config(config)
        for section in ("data", "model"):
            if section not in self.cfg:
                raise ConfigError(f"experiment config has no {section!r} section")
        self.work_dir, self.log, self.seed = Path(work_dir), log, seed
        self.store_dir = self.work_dir / "store"
        self.builder = build("builder", _plain(self.cfg.data.get("builder", "pretraining_set")))
        self.heldout: set[str] = set()
        self.tokenizer: Any = None
        self.model: Any = None
        self.results: dict[str, Any] = {"phases": []}

    # ---- stages ---------------------------------------------------------------------------
    def build_data(self) -> Path:
        """Cut the pretraining set from the source into the store (resumes an interrupted build)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        write_resolved_config(self.cfg, self.work_dir)
        data = self.cfg.data
        root = Path(data.get("root") or self.work_dir / "corpus")
        result = self.builder.build(_plain(data.source), root, self.store_dir, log=self.log)
        self.results["data"] = self.builder.describe(self.store_dir)
        self.log(result.summary())
        self.heldout = self._pick_heldout(int(data.get("heldout_recordings", 0)))
        self.results["heldout_recordings"] = sorted(self.heldout)
        return self.store_dir

    def dataset(self, formats: list[str] | None = None, split: str = "train") -> Any:
        """The store's samples of ``formats`` from training (``train``) or held-out (``heldout``) recordings."""
        if split not in ("train", "heldout"):
            raise ConfigError(f"split must be 'train' or 'heldout', got {split!r}")
        keep = {"train": None, "heldout": self.heldout}[split]
        drop = self.heldout if split == "train" else None
        return self.builder.dataset(self.store_dir, formats=formats, recordings=keep, exclude_recordings=drop)

    def build_tokenizer(self) -> Any:
        """Train the tokenizer on the training recordings' utterances and save it in the work dir."""
        texts = [turn["value"] for sample in self.dataset() for turn in sample["conversations"] if turn["from"] == "gpt"]
        self.tokenizer = build("tokenizer", dict(_plain(self.cfg.tokenizer), corpus=texts))
        self.tokenizer.save(self.work_dir / "tokenizer")
        return self.tokenizer

    def build_model(self) -> Any:
        model_cfg = _plain(self.cfg.model)
        if self.tokenizer is not None:
            model_cfg["tokenizer"] = dict(type=_plain(self.cfg.tokenizer)["type"], path=str(self.work_dir / "tokenizer"))
        self.model = build_model({"model": model_cfg})
        return self.model

    def train(self) -> list[dict[str, Any]]:
        """Run each phase's trainer on that phase's formats (training recordings only)."""
        for phase in self.cfg.get("phases", []):
            data = self.dataset(list(phase.formats))
            self.log(f"== phase {phase.name}: {len(data)} samples ({', '.join(phase.formats)}) ==")
            result = build("trainer", _plain(phase.trainer)).fit(self.model, data, log=self.log)
            self.results["phases"].append({"name": phase.name, "dataset_size": len(data), **result.to_dict()})
        self.model.save_pretrained(self.work_dir / "checkpoint")
        return self.results["phases"]

    def evaluate(self) -> dict[str, Any]:
        """Held-out loss with the true images and with images swapped between samples."""
        heldout = list(self.dataset(split="heldout"))
        if not heldout:
            return {}
        return {"heldout_samples": len(heldout),
                "heldout_loss": heldout_loss(self.model, heldout),
                "heldout_loss_shuffled_images": heldout_loss(self.model, heldout, shuffle_seed=self.seed)}

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.build_data()
        self.build_tokenizer()
        self.build_model()
        self.results["untrained"] = self.evaluate()
        self.train()
        self.results["trained"] = self.evaluate()
        self.results["seconds"] = round(time.perf_counter() - started, 1)
        atomic_write_json(self.work_dir / "report.json", self.results)
        return self.results

    def _pick_heldout(self, count: int) -> set[str]:
        if count <= 0:
            return set()
        recordings = sorted(self.builder.recording_ids(self.store_dir))
        if len(recordings) <= count:
            raise ConfigError(f"data.heldout_recordings={count} leaves nothing to train on: the store has "
                              f"{len(recordings)} recordings")
        random.Random(self.seed).shuffle(recordings)
        return set(recordings[:count])


def heldout_loss(model: Any, samples: list[dict[str, Any]], shuffle_seed: int | None = None,
                 batch_size: int = 16) -> float:
    """Mean loss over ``samples``; with ``shuffle_seed`` each sample gets another sample's images
    (repeated or cut to its own image count), which tells whether the model uses what it sees."""
    import torch

    if shuffle_seed is not None:
        donors = list(samples)
        random.Random(shuffle_seed).shuffle(donors)
        samples = [dict(s, images=_fit_images(d["images"], len(s["images"]))) for s, d in zip(samples, donors, strict=True)]
    model.eval()
    with torch.no_grad():
        losses = [float(model(**model.prepare_batch(samples[i:i + batch_size]))["loss"]) * len(samples[i:i + batch_size])
                  for i in range(0, len(samples), batch_size)]
    return round(sum(losses) / len(samples), 4)


def _fit_images(images: list[Any], count: int) -> list[Any]:
    repeated = list(images) * (count // max(1, len(images)) + 1)
    return repeated[:count]
