"""A whole experiment from one config: source -> sample store -> tokenizer -> model -> training phases,
each phase in its own folder. Every component is looked up by its registered name, so a config (or
the equivalent Python dict) swaps any of them::

    from babyvlm import Experiment
    exp = Experiment("babyvlm/configs/demo.py", work_dir="runs/demo")
    results = exp.run()                       # or the stages one by one:
    exp.build_data(); exp.build_tokenizer(); exp.build_model(); exp.train(["2-joint"])

Config keys
-----------
``data``
    ``source`` (a source spec), ``root`` (corpus folder; default ``WORK/corpus``), ``builder`` (a builder
    spec), ``heldout_splits`` (a JSON file mapping recording id -> split, e.g. the evaluation tasks' split:
    every recording not in ``"train"`` is kept out of every training phase), ``heldout_recordings`` (that
    many more whole recordings kept out, chosen by ``seed``); the held-out set is saved with the reason for
    each recording as ``WORK/heldout.json``, so later processes see the same split, and every phase's
    training data is checked against it. ``store`` (a store folder to use
    instead of ``WORK/store``, e.g. shared with another run), ``blank_images`` (every image blanked: a
    blind twin's training data), ``max_age_months`` (only recordings of children up to that age: a
    developmental sweep's data; recordings without an age are counted as skipped).
``tokenizer``
    A tokenizer spec. ``build_tokenizer`` passes it ``corpus=`` the training recordings' distinct
    utterances (each once, held-out recordings excluded) and saves it in ``WORK/tokenizer``; later
    runs load it from there (``path=WORK/tokenizer``) instead of training again.
``model``
    As for ``build_model``; the trained tokenizer is put in as ``tokenizer=dict(type=..., path=...)``.
``phases``
    A list, each ``dict(name=..., trainer=SPEC, formats=[...], stage=NAME, data=..., init="previous")``:

    - ``name``: the phase's folder ``WORK/phases/<name>/`` (trainer logs, events, checkpoints,
      ``config.py`` with the phase's resolved section, ``weights.safetensors``, ``model/`` export);
    - ``stage``: what the model unfreezes (``model.stages()``), default ``name``;
    - ``template``: the chat template from this phase on (e.g. ``baby_v1`` for instruction tuning; the
      model's own ``template`` until a phase sets one); the saved checkpoint records the last one;
    - ``trainer``: a trainer spec; its ``fit`` gets ``stage``, ``work_dir``, ``resume`` and ``context``
      (a ``PhaseContext``);
    - ``data``: ``"store"`` (default: the store's samples of ``formats`` from training recordings),
      ``"transcripts"`` (default for ``0-language``: the training utterances as strings), or
      ``dict(llava_json=PATH)`` (an instruction file, e.g. from ``babyvlm tasks build``, imported
      into the phase's own store; ``task=NAME`` keeps only the items of that task);
    - ``init``: ``"previous"`` (default: the weights of the latest earlier phase that has finished, so
      one phase can run alone on an earlier work dir), ``"none"`` (from initialisation) or a path to a
      ``weights.safetensors``;
    - ``tuning`` (instruction phases): ``"mixed"`` (default: one model on every task's items of
      ``data.llava_json``) or ``"task_specific"`` (the paper's other mode: one model per task, grouped by
      each item's ``task`` field, every one from the same starting weights, in
      ``WORK/phases/<name>/<task>/`` with its model in ``checkpoint/``; ``task_models()`` lists them, and the shared
      starting model stays the run's model).
``seed``
    (top level, optional) seeds the held-out split and model initialisation (default: the ``seed``
    argument).
Other sections
    Sections a plugin registers as ``config_section`` (e.g. the run pipeline's ``corpus``, ``tasks``,
    ``evaluation``, ``report``): checked by that plugin, accepted here, not read. The whole run (corpora,
    tasks, model, blind twin, evaluation, report) is the run pipeline plugin's (``babyvlm run``), which
    trains through an ``Experiment``.

``run()`` returns an ``ExperimentResults`` record (typed, versioned; also written to
``WORK/results.json``, merged with what is there: a phase trained alone keeps the others') that later
stages extend through its ``evaluation`` mapping.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from babyvlm import registry
from babyvlm.core.compose import (
    _plain,
    build,
    build_model,
    check_spec_options,
    load_config,
    write_resolved_config,
)
from babyvlm.core.constants import LANGUAGE_STAGE
from babyvlm.core.contracts import InstructionImporter
from babyvlm.core.errors import ConfigError
from babyvlm.core.io import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    json_strict,
    load_json,
    path_inside,
)
from babyvlm.core.ranks import is_main_process
from babyvlm.core.specs import spec_dict
from babyvlm.core.validate import check_number, refuse_unknown

Log = Callable[[str], None]
RESULTS_VERSION = 2
PHASE_WEIGHTS = "weights.safetensors"
STORE_DATA = ("store", "transcripts")
SECTIONS = ("data", "tokenizer", "model", "phases", "seed")
RESULTS_FILE = "results.json"
DATA_KEYS = ("source", "root", "builder", "heldout_recordings", "heldout_splits", "store", "blank_images",
             "max_age_months")
PHASE_KEYS = ("name", "trainer", "stage", "data", "init", "formats", "template", "tuning")
TUNING_MODES = ("mixed", "task_specific")
TASK_MODELS = "task_models.json"  # in a task-specific phase's folder: task -> its exported model folder
BRANCH_CHECKPOINT = "checkpoint"  # each task-specific branch's exported model, beside its phase files


@dataclass
class PhaseContext:
    """What a trainer may need beyond the model and its training data.

    ``stage``: the stage being trained; ``experiment_dir``: the experiment's work dir; ``tokenizer``:
    the experiment's tokenizer (for packing text); ``heldout``: the held-out recordings' samples of the
    phase's formats (``None`` without held-out recordings); ``source`` / ``root``: the source spec and
    corpus folder (e.g. for the DINO probe's annotated object crops); ``heldout_recordings``: their ids;
    ``seed``: the experiment's seed.
    """

    stage: str
    experiment_dir: Path
    tokenizer: Any = None
    heldout: Any = None
    source: dict[str, Any] = field(default_factory=dict)
    root: Path | None = None
    heldout_recordings: tuple[str, ...] = ()
    seed: int = 0


@dataclass
class PhaseResult:
    name: str
    stage: str
    trainer: str
    dataset_size: int
    seconds: float
    work_dir: str
    metrics: dict[str, Any] = field(default_factory=dict)  # the trainer result's to_dict()

    def __getitem__(self, key: str) -> Any:  # phase["last_loss"] reads the trainer's numbers too
        return self.metrics[key] if key in self.metrics else getattr(self, key)


@dataclass
class ExperimentResults(Mapping):
    """What ``Experiment.run`` produced; ``version`` changes when fields change meaning. Later stages
    (evaluation, reports) add their results under ``evaluation`` (or extend the record)."""

    version: int = RESULTS_VERSION
    data: dict[str, Any] = field(default_factory=dict)
    heldout_recordings: list[str] = field(default_factory=list)
    tokenizer: dict[str, Any] = field(default_factory=dict)
    phases: list[PhaseResult] = field(default_factory=list)
    evaluation: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ExperimentResults:
        version = raw.get("version")
        if version != RESULTS_VERSION:
            raise ConfigError(f"experiment results version {version!r}; this babyvlm reads version {RESULTS_VERSION}")
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        known["phases"] = [PhaseResult(**p) for p in raw.get("phases", [])]
        return cls(**known)

    # Mapping view (``results["phases"]``), so callers that expect plain results keep working
    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dataclass_fields__)

    def __len__(self) -> int:
        return len(self.__dataclass_fields__)

    def merged_over(self, earlier: ExperimentResults, order: list[str]) -> ExperimentResults:
        """These results over ``earlier`` ones of the same work dir: phases by name (a phase trained now
        replaces its earlier record; the others are kept, in ``order``), and every other field this
        run left empty taken from ``earlier`` -- so training one phase, or reusing every cached stage,
        never drops what an earlier process recorded."""
        phases = {p.name: p for p in earlier.phases} | {p.name: p for p in self.phases}
        rank = {name: number for number, name in enumerate(order)}
        return ExperimentResults(
            data=self.data or earlier.data, heldout_recordings=self.heldout_recordings or earlier.heldout_recordings,
            tokenizer=self.tokenizer or earlier.tokenizer,
            phases=sorted(phases.values(), key=lambda p: rank.get(p.name, len(rank))),
            evaluation={**earlier.evaluation, **self.evaluation}, seconds=self.seconds or earlier.seconds)


class Experiment:
    def __init__(self, config: str | os.PathLike | Mapping[str, Any], work_dir: str | os.PathLike,
                 log: Log = print, seed: int = 0):
        self.cfg = load_config(config)
        self.data, self.phases = _check_config(self.cfg)
        self.work_dir, self.log = Path(work_dir), log
        self.seed = int(self.cfg.get("seed", seed))
        self.store_dir = Path(self.data["store"]) if self.data.get("store") else self.work_dir / "store"
        self.tokenizer_source: Path | None = None  # a tokenizer folder to use instead of training one
        self._reused: dict[str, Path] = {}  # phase -> weights of another run's identical phase
        self.builder = build("builder", self.data["builder"])
        self._heldout: set[str] | None = None
        self.tokenizer: Any = None
        self.model: Any = None
        self.results = ExperimentResults()

    # ---- data ---------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return Path(self.data.get("root") or self.work_dir / "corpus")

    def build_data(self) -> Path:
        """Cut the pretraining set from the source into the store (resumes an interrupted build)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        write_resolved_config(self.cfg, self.work_dir)
        age = {"max_age_months": self.data["max_age_months"]} if self.data.get("max_age_months") else {}
        result = self.builder.build(self.data["source"], self.root, self.store_dir, log=self.log, **age)
        self.log(result.summary())
        self.results.data = self.builder.describe(self.store_dir)
        reasons = self._pick_heldout(self.data["heldout_recordings"])
        self._heldout = set(reasons)
        atomic_write_json(self._heldout_file, {"recordings": sorted(reasons), "why": dict(sorted(reasons.items()))})
        self.results.heldout_recordings = sorted(self._heldout)
        self.log(f"held out of every training phase: {len(reasons)} recordings "
                 f"({', '.join(f'{n} {why}' for why, n in sorted(Counter(reasons.values()).items()))})")
        return self.store_dir

    def ensure_data(self) -> Path:
        """The store, built unless a completed build (its ``heldout.json``) is already in the work dir."""
        if self._heldout_file.exists():
            self.results.heldout_recordings = sorted(self.heldout)
            return self.store_dir
        return self.build_data()

    @property
    def heldout(self) -> set[str]:
        """The held-out recordings: chosen by ``build_data``, read back from the work dir afterwards."""
        if self._heldout is None:
            if not self._heldout_file.exists():
                raise ConfigError(f"{self.work_dir}: no built store here yet; call build_data() first")
            self._heldout = set(self.heldout_reasons())
        return self._heldout

    def heldout_reasons(self) -> dict[str, str]:
        """Held-out recording -> why (``"test"``, ``"val"``: its evaluation split; ``"random"``: one of
        ``data.heldout_recordings``)."""
        saved = load_json(self._heldout_file)
        if isinstance(saved, list):  # written by an earlier babyvlm: no reasons
            return dict.fromkeys(saved, "random")
        return dict(saved.get("why", {}))

    def dataset(self, formats: list[str] | None = None, split: str = "train") -> Any:
        """The store's samples of ``formats`` from training (``train``) or held-out (``heldout``) recordings."""
        if split not in ("train", "heldout"):
            raise ConfigError(f"split must be 'train' or 'heldout', got {split!r}")
        blank = {"blank_images": True} if self.data.get("blank_images") else {}  # a blind twin's view
        if split == "train":
            dataset = self.builder.dataset(self.store_dir, formats=formats, exclude_recordings=self.heldout, **blank)
            self._check_no_heldout(dataset)
            return dataset
        return self.builder.dataset(self.store_dir, formats=formats, recordings=self.heldout, **blank)

    def _check_no_heldout(self, dataset: Any) -> None:
        """The training data holds no held-out recording (the store's own recording filter, verified)."""
        if not hasattr(dataset, "recording_ids"):  # optional for a builder's dataset: say it went unchecked
            self.log(f"note: {type(dataset).__name__} has no recording_ids(); held-out exclusion not verified")
            return
        used = set(dataset.recording_ids())
        leaked = sorted(used & self.heldout)
        if leaked:
            raise ConfigError(f"{self.store_dir}: held-out recordings {leaked[:3]} reached the training data")

    def transcripts(self) -> list[str]:
        """The training recordings' distinct utterances (the tokenizer's and ``0-language``'s corpus)."""
        return self.builder.texts(self.store_dir, exclude_recordings=self.heldout)

    # ---- tokenizer and model ------------------------------------------------------------------
    def build_tokenizer(self) -> Any:
        """Train the tokenizer on the training recordings' distinct utterances; save it in the work dir."""
        spec = self._tokenizer_spec()
        self.tokenizer = build("tokenizer", spec, corpus=self.transcripts())
        if is_main_process():
            self.tokenizer.save(self.tokenizer_dir)
        self.results.tokenizer = {"type": spec["type"], "vocab_size": int(self.tokenizer.vocab_size),
                                  "path": str(self.tokenizer_dir)}
        return self.tokenizer

    def ensure_tokenizer(self) -> Any:
        """The tokenizer saved in the work dir, trained first when there is none yet."""
        if self.tokenizer is not None or "tokenizer" not in self.cfg:
            return self.tokenizer
        if not self.tokenizer_dir.is_dir() or not any(self.tokenizer_dir.iterdir()):
            return self.build_tokenizer()
        spec = self._tokenizer_spec()
        self.tokenizer = build("tokenizer", dict(type=spec["type"], path=str(self.tokenizer_dir)))
        self.results.tokenizer = {"type": spec["type"], "vocab_size": int(self.tokenizer.vocab_size),
                                  "path": str(self.tokenizer_dir)}
        return self.tokenizer

    def build_model(self) -> Any:
        """The model from the config (seeded), with the experiment's tokenizer when it has one."""
        import torch

        model_cfg = _plain(self.cfg.model)
        if self.tokenizer is not None:
            model_cfg["tokenizer"] = dict(type=self._tokenizer_spec()["type"], path=str(self.tokenizer_dir))
        torch.manual_seed(self.seed)
        self.model = build_model({"model": model_cfg})
        return self.model

    # ---- phases -------------------------------------------------------------------------------
    def phase_names(self) -> list[str]:
        return [phase["name"] for phase in self.phases]

    def phase_dir(self, name: str) -> Path:
        return self.work_dir / "phases" / name

    def select_phases(self, names: str | Iterable[str] | None) -> list[dict[str, Any]]:
        """The phases named (``None`` or ``"all"``: every phase, in config order); unknown names refused."""
        if names is None or names == "all":
            return list(self.phases)
        wanted = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in wanted if n not in self.phase_names()]
        if unknown:
            raise ConfigError(f"unknown phase {unknown[0]!r}; this config's phases: {', '.join(self.phase_names())}")
        return [phase for phase in self.phases if phase["name"] in wanted]

    def train(self, phases: str | Iterable[str] | None = None, resume: bool = False) -> list[PhaseResult]:
        """Run the selected phases (default all), each from the previous phase's weights by default."""
        self._built_model()
        done = []
        for phase in self.select_phases(phases):
            if phase["name"] in self._reused:
                done.append(self._reuse_phase(phase))
            elif phase["tuning"] == "task_specific":
                done.extend(self._train_per_task(phase, resume=resume))
            else:
                done.append(self.train_phase(phase["name"], resume=resume))
        return done

    def reuse_phases_without_images(self, other: Experiment) -> list[str]:
        """Phases that see no image (``data="transcripts"``) take ``other``'s finished weights instead of
        training again (a blind twin shares its text-only phases with the model it is the twin of)."""
        for phase in self.phases:
            source = other.phase_dir(phase["name"]) / PHASE_WEIGHTS
            if phase["data"] == "transcripts" and source.is_file():
                self._reused[phase["name"]] = source
        return sorted(self._reused)

    def _reuse_phase(self, phase: dict[str, Any]) -> PhaseResult:
        source = self._reused[phase["name"]]
        _load_weights(self._built_model(), source)
        folder = self.phase_dir(phase["name"])
        if is_main_process():
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(folder / PHASE_WEIGHTS, source.read_bytes())
        self.log(f"phase {phase['name']}: sees no image; reusing {source}")
        result = PhaseResult(name=phase["name"], stage=phase["stage"], trainer="reused", dataset_size=0, seconds=0.0,
                             work_dir=str(folder), metrics={"reused_from": str(source)})
        self.results.phases = [p for p in self.results.phases if p.name != phase["name"]] + [result]
        return result

    def train_phase(self, name: str, resume: bool = False) -> PhaseResult:
        """Train one whole-model phase. A task-specific phase trains one model per task and is refused here
        (``train([name])`` returns its results), so it is never trained as one mixed model by mistake."""
        phase = self.select_phases(name)[0]
        if phase.get("tuning") == "task_specific":
            raise ConfigError(f"phase {name!r} is task-specific (one model per task): train it with "
                              f"Experiment.train([{name!r}]), which returns one result per task")
        return self._train_phase(phase, resume)

    def _train_phase(self, phase: dict[str, Any], resume: bool) -> PhaseResult:
        name = phase["name"]
        folder = self.phase_dir(name)
        data = self._phase_dataset(phase, folder)  # a store lacking the phase's formats fails first
        trainer = build("trainer", phase["trainer"])
        model = self._built_model()
        self._load_initial_weights(phase, resume)
        if phase.get("template") is not None:
            model.use_template(phase["template"])
        if is_main_process():
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(folder / "config.py", load_config({"phase": phase}).pretty_text)
        self.log(f"== phase {name} (stage {phase['stage']}, trainer {phase['trainer']['type']}): "
                 f"{len(data)} training items ==")
        started = time.perf_counter()
        outcome = trainer.fit(model, data, log=self.log, stage=phase["stage"], work_dir=folder, resume=resume,
                              context=self._context(phase))
        if is_main_process():
            atomic_write_bytes(folder / PHASE_WEIGHTS, _weights_bytes(model))
        result = PhaseResult(name=name, stage=phase["stage"], trainer=phase["trainer"]["type"],
                             dataset_size=len(data), seconds=round(time.perf_counter() - started, 2),
                             work_dir=str(folder), metrics=outcome.to_dict())
        self.results.phases = [p for p in self.results.phases if p.name != name] + [result]
        self.write_results()
        return result

    def _train_per_task(self, phase: dict[str, Any], resume: bool) -> list[PhaseResult]:
        """``tuning="task_specific"``: one branch per task of the phase's instruction file, each from the
        same starting weights; the shared starting model is left in place afterwards."""
        folder = self.phase_dir(phase["name"])
        groups = _items_by_task(Path(str(phase["data"]["llava_json"])))
        start = self._starting_weights(phase)
        self.log(f"== phase {phase['name']}: task-specific tuning, {len(groups)} models from "
                 f"{start or 'initialisation'}: {', '.join(groups)} ==")
        if is_main_process():
            folder.mkdir(parents=True, exist_ok=True)
        initial = {k: v.detach().clone() for k, v in self._built_model().state_dict().items()} if start is None else None
        done, models = [], {}
        for task in groups:
            branch_dir = folder / task
            if initial is not None:
                self._built_model().load_state_dict(initial)
            branch = dict(phase, name=f"{phase['name']}/{task}", tuning="mixed", data=dict(phase["data"], task=task),
                          init=str(start) if start else "none")
            done.append(self._train_phase(branch, resume))
            if is_main_process():  # the branch's model, as the study saves its final one
                self._built_model().save_pretrained(branch_dir / BRANCH_CHECKPOINT)
            models[task] = f"{task}/{BRANCH_CHECKPOINT}"
        if start is not None:  # the run's model is the shared one the branches started from
            _load_weights(self._built_model(), start)
        elif initial is not None:
            self._built_model().load_state_dict(initial)
        if is_main_process():
            atomic_write_json(folder / TASK_MODELS, models)
        return done

    def task_models(self) -> dict[str, Path]:
        """Task -> exported model folder, from this run's task-specific phases (empty for mixed tuning)."""
        models: dict[str, Path] = {}
        for phase in self.phases:
            listing = self.phase_dir(phase["name"]) / TASK_MODELS
            if phase["tuning"] == "task_specific" and listing.is_file():
                for task, relative in load_json(listing).items():
                    models[task] = path_inside(listing.parent, relative, str(listing))
        return models

    def run(self, phases: str | Iterable[str] | None = None, resume: bool = False) -> ExperimentResults:
        """Every training stage: data, tokenizer (when configured), model, the selected phases."""
        started = time.perf_counter()
        self.ensure_data()
        self.ensure_tokenizer()
        self.build_model()
        self.train(phases, resume=resume)
        self.results.seconds = round(time.perf_counter() - started, 1)
        self.write_results()
        return self.results

    @property
    def results_file(self) -> Path:
        return self.work_dir / RESULTS_FILE

    def saved_results(self) -> ExperimentResults:
        """``WORK/results.json`` as written by an earlier process (empty results when there is none; one
        of another version is set aside with a note, never merged)."""
        if not self.results_file.is_file():
            return ExperimentResults()
        try:
            return ExperimentResults.from_dict(load_json(self.results_file))
        except ConfigError as exc:
            self.log(f"note: {self.results_file}: {exc}; it will be replaced")
            return ExperimentResults()

    def load_results(self) -> ExperimentResults:
        """Take what earlier processes recorded in the work dir into ``results`` (e.g. the phases of a
        model stage a cached rerun reuses)."""
        self.results = self.results.merged_over(self.saved_results(), self.phase_names())
        return self.results

    def write_results(self) -> Path | None:
        """``WORK/results.json``: these results merged over the saved ones, strict JSON (a NaN loss is
        written as null)."""
        if not is_main_process():
            return None
        self.load_results()
        return atomic_write_json(self.results_file, json_strict(self.results.to_dict()))

    # ---- helpers --------------------------------------------------------------------------------
    @property
    def _heldout_file(self) -> Path:
        return self.work_dir / "heldout.json"

    @property
    def tokenizer_dir(self) -> Path:
        return Path(self.tokenizer_source) if self.tokenizer_source else self.work_dir / "tokenizer"

    def _tokenizer_spec(self) -> dict[str, Any]:
        spec = self.cfg.get("tokenizer")
        if spec is None:
            raise ConfigError("experiment config has no 'tokenizer' section to train")
        return spec_dict(_plain(spec), "tokenizer")

    def _built_model(self) -> Any:
        if self.model is None:
            raise ConfigError("no model yet; call build_model() first")
        return self.model

    def _pick_heldout(self, count: int) -> dict[str, str]:
        """Recording -> why it is held out: every recording the ``heldout_splits`` file puts outside
        ``train``, then ``count`` more chosen by the seed."""
        recordings = sorted(self.builder.recording_ids(self.store_dir))
        reasons = {rid: split for rid, split in self._evaluation_splits().items() if split != "train"}
        rest = [rid for rid in recordings if rid not in reasons]
        if count > 0:
            if len(rest) <= count:
                raise ConfigError(f"data.heldout_recordings={count} leaves nothing to train on: the store has "
                                  f"{len(rest)} recordings besides the evaluation splits' {len(reasons)}")
            random.Random(self.seed).shuffle(rest)
            reasons.update(dict.fromkeys(rest[:count], "random"))
        if recordings and not set(recordings) - set(reasons):
            raise ConfigError(f"{self.store_dir}: every recording of the store is held out; nothing to train on")
        return reasons

    def _evaluation_splits(self) -> dict[str, str]:
        path = self.data.get("heldout_splits")
        if not path:
            return {}
        if not Path(path).is_file():
            raise ConfigError(f"data.heldout_splits: {path} is not a file (build the evaluation tasks first)")
        splits = load_json(Path(path))
        if not isinstance(splits, dict) or not all(isinstance(v, str) for v in splits.values()):
            raise ConfigError(f"data.heldout_splits: {path} must map recording ids to split names")
        return splits

    def _phase_dataset(self, phase: dict[str, Any], folder: Path) -> Any:
        data = phase["data"]
        if data == "transcripts":
            texts = self.transcripts()
            if not texts:
                raise ConfigError(f"phase {phase['name']}: the store {self.store_dir} has no training utterances")
            return texts
        if isinstance(data, dict):
            return self._instruction_dataset(phase, data, folder)
        missing = [f for f in phase["formats"] if len(self.dataset([f])) == 0]
        if missing:
            have = [f for f in ("image", "video", "interleaved") if f not in missing and len(self.dataset([f]))]
            raise ConfigError(f"phase {phase['name']}: the store {self.store_dir} has no training samples of "
                              f"format(s) {missing} that the phase needs (it has: {', '.join(have) or 'none'})")
        return self.dataset(phase["formats"])

    def _instruction_dataset(self, phase: dict[str, Any], data: dict[str, Any], folder: Path) -> Any:
        source = Path(str(data["llava_json"]))
        if not source.is_file():
            raise ConfigError(f"phase {phase['name']}: data.llava_json {source} is not a file")
        if not isinstance(self.builder, InstructionImporter):
            raise ConfigError(f"phase {phase['name']}: data.llava_json needs a builder that imports instruction "
                              f"files (import_instructions); builder {self.data['builder']['type']!r} does not")
        store = folder / "store"
        if is_main_process() and not (store / "manifest.json").exists():
            self.builder.import_instructions(source, store, task=data.get("task"), log=self.log)
        blank = {"blank_images": True} if self.data.get("blank_images") else {}  # a blind twin's view
        return self.builder.dataset(store, **blank)

    def _context(self, phase: dict[str, Any]) -> PhaseContext:
        heldout = None
        if self.heldout and phase["data"] == "store":
            heldout = self.dataset(phase["formats"], split="heldout")
        return PhaseContext(stage=phase["stage"], experiment_dir=self.work_dir, tokenizer=self.tokenizer,
                            heldout=heldout, source=dict(self.data["source"]), root=self.root,
                            heldout_recordings=tuple(sorted(self.heldout)), seed=self.seed)

    def _starting_weights(self, phase: dict[str, Any]) -> Path | None:
        """The weights file a phase starts from (``None``: from initialisation)."""
        init = phase["init"]
        if init == "none":
            return None
        if init == "previous":
            earlier = self.phase_names()[: self.phase_names().index(phase["name"])]
            found = [self.phase_dir(n) / PHASE_WEIGHTS for n in reversed(earlier)
                     if (self.phase_dir(n) / PHASE_WEIGHTS).is_file()]
            if not found:
                self.log(f"phase {phase['name']}: no earlier phase has finished here; starting from initialisation")
                return None
            return found[0]
        path = Path(init)
        if not path.is_file():
            raise ConfigError(f"phase {phase['name']}: init {init!r} is not a weights file")
        return path

    def _load_initial_weights(self, phase: dict[str, Any], resume: bool) -> None:
        """The phase's starting weights (a resumed phase's own checkpoint then overrides them)."""
        path = self._starting_weights(phase)
        if path is None:
            return
        _load_weights(self._built_model(), path)
        self.log(f"phase {phase['name']}: starting from {path}")

def _items_by_task(source: Path) -> dict[str, list[Any]]:
    """An instruction file's items grouped by their ``task`` field (task-specific tuning), in task order;
    an item without one is refused by number."""
    if not source.is_file():
        raise ConfigError(f"task-specific tuning: instruction file {source} is not a file")
    items = load_json(source)
    if not isinstance(items, list):
        raise ConfigError(f"{source}: expected a list of LLaVA-style items")
    groups: dict[str, list[Any]] = {}
    for number, item in enumerate(items):
        task = item.get("task") if isinstance(item, dict) else None
        if not isinstance(task, str) or not task or "/" in task or task.startswith("."):
            raise ConfigError(f"{source}: item {number} has no usable 'task' field ({task!r}); task-specific "
                              f"tuning groups items by it (babyvlm tasks instructions writes it)")
        groups.setdefault(task, []).append(item)
    return dict(sorted(groups.items()))


def _weights_bytes(model: Any) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()})


def _load_weights(model: Any, path: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConfigError(f"{path}: weights do not fit this model (missing {list(missing)[:3]}, "
                          f"unexpected {list(unexpected)[:3]}); was it written for another model config?")


def _check_config(cfg: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``data`` section (specs normalised) and the phases, checked before any work starts."""
    for section in ("data", "model"):
        if section not in cfg:
            raise ConfigError(f"experiment config has no {section!r} section")
    data = _plain(cfg.data)
    for key in ("source", "builder"):
        if key not in data:
            raise ConfigError(f"experiment config: data.{key} is required (a registered {key} name or dict)")
        data[key] = spec_dict(data[key], f"data.{key}")
    count = data.setdefault("heldout_recordings", 0)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ConfigError(f"data.heldout_recordings must be a whole number >= 0, got {count!r}")
    _check_keys_and_specs(cfg, data)
    phases = [_check_phase(number, phase) for number, phase in enumerate(_plain(cfg.get("phases", [])))]
    names = [p["name"] for p in phases]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(f"phases: name {duplicated[0]!r} is used twice (each phase has its own folder)")
    return data, phases


def check_config(config: str | os.PathLike | Mapping[str, Any]) -> None:
    """Refuse a bad experiment config (unknown keys, wrong types) without building anything from it."""
    _check_config(load_config(config))


def _check_keys_and_specs(cfg: Any, data: dict[str, Any]) -> None:
    """Every section and key known (a typo names its closest known key); component specs' options taken
    by their components; the study sections' values of the right type."""
    owned = registry.names("config_section")  # sections a plugin checks (e.g. the run pipeline's)
    refuse_unknown([key for key in cfg if not str(key).startswith("_")], [*SECTIONS, *owned], "config", "section")
    refuse_unknown(data, DATA_KEYS, "data")
    for key in ("root", "store"):
        if data.get(key) is not None and not isinstance(data[key], str | os.PathLike):
            raise ConfigError(f"data: {key} must be a folder path, got {data[key]!r:.80}")
    if not isinstance(data.get("blank_images", False), bool):
        raise ConfigError(f"data: blank_images must be true or false, got {data['blank_images']!r}")
    if data.get("max_age_months") is not None:
        check_number("data", "max_age_months", data["max_age_months"], low=0, strict=True)
    if cfg.get("seed") is not None:
        check_number("config", "seed", cfg.get("seed"), whole=True, low=0)
    check_spec_options("source", data["source"], "data.source")
    check_spec_options("builder", data["builder"], "data.builder")
    if cfg.get("tokenizer") is not None:
        check_spec_options("tokenizer", _plain(cfg.tokenizer), "tokenizer")
    model = _plain(cfg.model)
    if isinstance(model, dict):
        model = {key: value for key, value in model.items() if key != "kernels"}  # build_model's, not the model's
    check_spec_options("model", model, "model")
    for name in owned:
        if cfg.get(name) is not None:
            registry.get("config_section", name)(cfg.get(name))


def _check_phase(number: int, phase: dict[str, Any]) -> dict[str, Any]:
    where = f"phases[{number}]"
    if not isinstance(phase, dict):
        raise ConfigError(f"{where}: expected dict(name=..., trainer=..., ...), got {phase!r:.80}")
    if "name" not in phase or "trainer" not in phase:
        missing = [k for k in ("name", "trainer") if k not in phase]
        raise ConfigError(f"{where} needs {', '.join(missing)}")
    refuse_unknown(phase, PHASE_KEYS, where)
    for key in ("name", "stage", "template"):
        if phase.get(key) is not None and (not isinstance(phase[key], str) or not phase[key]):
            raise ConfigError(f"{where}: {key} must be a non-empty string, got {phase[key]!r:.80}")
    phase = dict(phase)
    phase["trainer"] = spec_dict(phase["trainer"], f"{where}.trainer")
    check_spec_options("trainer", phase["trainer"], f"{where}.trainer")
    phase.setdefault("stage", phase["name"])
    phase.setdefault("data", "transcripts" if phase["stage"] == LANGUAGE_STAGE else "store")
    phase.setdefault("init", "previous")
    phase.setdefault("tuning", "mixed")
    if phase["tuning"] not in TUNING_MODES:
        raise ConfigError(f"{where}.tuning must be one of {', '.join(TUNING_MODES)}, got {phase['tuning']!r}")
    if phase["tuning"] == "task_specific" and not isinstance(phase["data"], dict):
        raise ConfigError(f"{where}: tuning='task_specific' needs data=dict(llava_json=PATH) (the items' "
                          f"'task' fields say which model each trains)")
    data = phase["data"]
    if isinstance(data, dict):
        if "llava_json" not in data:
            raise ConfigError(f"{where}.data: a dict needs llava_json=PATH (an instruction file)")
        refuse_unknown(data, ("llava_json", "task"), f"{where}.data")
    elif data not in STORE_DATA:
        raise ConfigError(f"{where}.data must be 'store', 'transcripts' or dict(llava_json=PATH), got {data!r}")
    if data == "store":
        if "formats" not in phase:
            raise ConfigError(f"{where} needs formats (the store formats it trains on)")
        if not isinstance(phase["formats"], list | tuple) or not all(isinstance(f, str) for f in phase["formats"]):
            raise ConfigError(f"{where}: formats must be a list of store formats, got {phase['formats']!r:.80}")
        phase["formats"] = list(phase["formats"])
    phase.setdefault("formats", [])
    if not isinstance(phase["init"], str):
        raise ConfigError(f"{where}.init must be 'previous', 'none' or a weights path, got {phase['init']!r}")
    return phase

