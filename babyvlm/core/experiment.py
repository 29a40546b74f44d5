"""A whole experiment from one config: source -> sample store -> datasets -> tokenizer -> model ->
training phases -> evaluation -> report. Each stage is an explicit method; every component is looked
up by its registered name, so a config (or the equivalent Python dict) swaps any of them::

    from babyvlm import Experiment
    exp = Experiment("babyvlm/configs/demo.py", work_dir="runs/demo")
    report = exp.run()            # or call the stages one by one:
    exp.build_data(); exp.build_tokenizer(); exp.build_model(); exp.train(); exp.evaluate()

Config sections: ``data`` (``source``: a source spec, ``root``, ``builder``: a builder spec,
``heldout_recordings``: whole recordings kept out of training, chosen by ``seed`` and saved as
``heldout.json`` so later processes see the same split), ``tokenizer`` (a tokenizer spec, trained on
the training recordings' distinct utterances), ``model`` (as for ``build_model``), ``phases`` (each
``name``, ``formats``, ``trainer`` spec). A spec is a registered name or ``dict(type=name, ...)``.
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
from babyvlm.core.io import atomic_write_json, load_json

Log = Callable[[str], None]


class Experiment:
    def __init__(self, config: str | os.PathLike | Mapping[str, Any], work_dir: str | os.PathLike,
                 log: Log = print, seed: int = 0):
        self.cfg = load_config(config)
        self.data, self.phases = _check_config(self.cfg)
        self.work_dir, self.log, self.seed = Path(work_dir), log, seed
        self.store_dir = self.work_dir / "store"
        self.builder = build("builder", self.data["builder"])
        self._heldout: set[str] | None = None
        self.tokenizer: Any = None
        self.model: Any = None
        self.results: dict[str, Any] = {"phases": []}

    # ---- stages ---------------------------------------------------------------------------
    def build_data(self) -> Path:
        """Cut the pretraining set from the source into the store (resumes an interrupted build)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        write_resolved_config(self.cfg, self.work_dir)
        root = Path(self.data.get("root") or self.work_dir / "corpus")
        result = self.builder.build(self.data["source"], root, self.store_dir, log=self.log)
        self.log(result.summary())
        self.results["data"] = self.builder.describe(self.store_dir)
        self._heldout = self._pick_heldout(self.data["heldout_recordings"])
        atomic_write_json(self._heldout_file, sorted(self._heldout))
        self.results["heldout_recordings"] = sorted(self._heldout)
        return self.store_dir

    @property
    def heldout(self) -> set[str]:
        """The held-out recordings: chosen by ``build_data``, read back from the work dir afterwards."""
        if self._heldout is None:
            if not self._heldout_file.exists():
                raise ConfigError(f"{self.work_dir}: no built store here yet; call build_data() first")
            self._heldout = set(load_json(self._heldout_file))
        return self._heldout

    def dataset(self, formats: list[str] | None = None, split: str = "train") -> Any:
        """The store's samples of ``formats`` from training (``train``) or held-out (``heldout``) recordings."""
        if split not in ("train", "heldout"):
            raise ConfigError(f"split must be 'train' or 'heldout', got {split!r}")
        if split == "train":
            return self.builder.dataset(self.store_dir, formats=formats, exclude_recordings=self.heldout)
        return self.builder.dataset(self.store_dir, formats=formats, recordings=self.heldout)

    def build_tokenizer(self) -> Any:
        """Train the tokenizer on the training recordings' distinct utterances; save it in the work dir."""
        spec = self.cfg.get("tokenizer")
        if spec is None:
            raise ConfigError("experiment config has no 'tokenizer' section to train")
        texts = self.builder.texts(self.store_dir, exclude_recordings=self.heldout)
        self.tokenizer = build("tokenizer", _spec(spec, "tokenizer"), corpus=texts)
        self.tokenizer.save(self.work_dir / "tokenizer")
        return self.tokenizer

    def build_model(self) -> Any:
        model_cfg = _plain(self.cfg.model)
        if self.tokenizer is not None:
            model_cfg["tokenizer"] = dict(type=_spec(self.cfg.tokenizer, "tokenizer")["type"],
                                          path=str(self.work_dir / "tokenizer"))
        self.model = build_model({"model": model_cfg})
        return self.model

    def train(self) -> list[dict[str, Any]]:
        """Run each phase's trainer on that phase's formats (training recordings only)."""
        model = self._built_model()
        for phase in self.phases:
            data = self.dataset(phase["formats"])
            self.log(f"== phase {phase['name']}: {len(data)} samples ({', '.join(phase['formats'])}) ==")
            result = build("trainer", phase["trainer"]).fit(model, data, log=self.log)
            self.results["phases"].append({"name": phase["name"], "dataset_size": len(data), **result.to_dict()})
        model.save_pretrained(self.work_dir / "checkpoint")
        return self.results["phases"]

    def evaluate(self) -> dict[str, Any]:
        """Held-out loss with the true images and with images swapped between samples."""
        model = self._built_model()
        heldout = list(self.dataset(split="heldout"))
        if not heldout:
            return {}
        return {"heldout_samples": len(heldout),
                "heldout_loss": heldout_loss(model, heldout),
                "heldout_loss_shuffled_images": heldout_loss(model, heldout, shuffle_seed=self.seed)}

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.build_data()
        if "tokenizer" in self.cfg:
            self.build_tokenizer()
        self.build_model()
        self.results["untrained"] = self.evaluate()
        self.train()
        self.results["trained"] = self.evaluate()
        self.results["seconds"] = round(time.perf_counter() - started, 1)
        atomic_write_json(self.work_dir / "report.json", self.results)
        return self.results

    @property
    def _heldout_file(self) -> Path:
        return self.work_dir / "heldout.json"

    def _built_model(self) -> Any:
        if self.model is None:
            raise ConfigError("no model yet; call build_model() first")
        return self.model

    def _pick_heldout(self, count: int) -> set[str]:
        if count <= 0:
            return set()
        recordings = sorted(self.builder.recording_ids(self.store_dir))
        if len(recordings) <= count:
            raise ConfigError(f"data.heldout_recordings={count} leaves nothing to train on: the store has "
                              f"{len(recordings)} recordings")
        random.Random(self.seed).shuffle(recordings)
        return set(recordings[:count])


def _spec(value: Any, where: str) -> dict[str, Any]:
    """A component spec as ``dict(type=name, ...)`` from a name or a dict."""
    value = _plain(value)
    if isinstance(value, str):
        return {"type": value}
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return value
    raise ConfigError(f"{where}: expected a registered name or dict(type=name, ...), got {value!r}")


def _check_config(cfg: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``data`` section (specs normalised) and the phases, checked before any work starts."""
    for section in ("data", "model"):
        if section not in cfg:
            raise ConfigError(f"experiment config has no {section!r} section")
    data = _plain(cfg.data)
    for key in ("source", "builder"):
        if key not in data:
            raise ConfigError(f"experiment config: data.{key} is required (a registered {key} name or dict)")
        data[key] = _spec(data[key], f"data.{key}")
    count = data.setdefault("heldout_recordings", 0)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ConfigError(f"data.heldout_recordings must be a whole number >= 0, got {count!r}")
    phases = _plain(cfg.get("phases", []))
    for number, phase in enumerate(phases):
        missing = [k for k in ("name", "formats", "trainer") if k not in phase]
        if missing:
            raise ConfigError(f"phases[{number}] needs {', '.join(missing)}")
        phase["trainer"] = _spec(phase["trainer"], f"phases[{number}].trainer")
        phase["formats"] = list(phase["formats"])
    return data, phases


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
