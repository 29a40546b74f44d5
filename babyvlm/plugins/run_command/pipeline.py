"""The whole run as cached stages: ``babyvlm run CONFIG`` and ``RunPipeline(config, work_dir).run()``.

corpus (in-domain) and ood_corpus (out-of-domain) -> task sets (in-domain train/val/test + instruction
files, out-of-domain test) -> pretraining store, tokenizer and training phases (an ``Experiment``) -> the
blind twin (the same recipe trained on blank images) -> evaluation of the model, its blind twin and the
sanity baselines on both domains -> report.

Each stage is a method a researcher can call alone (``build_corpora``, ``build_tasks``, ``train_model``,
``train_blind_twin``, ``evaluate_models``, ``write_report``); ``run`` runs them through the core
``StageCache`` so a rerun with nothing changed skips them all and a changed stage reruns with what
depends on it. Every stage calls registry-built components through their typed contracts
(``babyvlm.core.contracts``): a ``corpus_writer``, a ``task_builder`` (``TaskBuildRequest``), the
store ``builder`` and trainers (through ``Experiment``), an ``evaluator`` with its ``eval_adapter``s and
a ``reporter`` -- each swapped by config, none named in core.

Config sections (checked in ``sections.py``; all optional but ``evaluation``, whose presence makes
``run()`` the whole study):

``corpus`` / ``ood_corpus``
    ``dict(kind=WRITER, minutes, seed, fps, size, video_minutes)``: corpora written by the registered
    ``corpus_writer`` ``kind`` (default ``saycam``) into ``WORK/corpus`` and ``WORK/ood_corpus``. Leave
    ``corpus`` out and set ``data.root`` (and ``ood_data.root``) to run on real folders instead.
``ood_data``
    ``dict(source=SPEC, root=PATH)`` for the out-of-domain tasks (default: ``ego4d`` on ``WORK/ood_corpus``).
    The domain names (the task and evaluation folders ``WORK/tasks/<domain>``) are the sources'
    (``data.source`` in-domain, ``ood_data.source`` out-of-domain): the ``domain=`` a source plugin
    registers, else its registered name.
``tasks``
    ``dict(builder="devcv", names=[...] or "all", seed, max_items, task_options={...}, split_fractions,
    out_of_domain=True, instructions=dict(per_task=True) or [dict(...), ...])``: the task sets under
    ``WORK/tasks/<domain>/`` with the default instruction file of the in-domain train split, then one
    more set of instruction files per ``instructions`` step (the task builder's options). ``{tasks}`` in
    a phase's ``data.llava_json`` stands for ``WORK/tasks``.
``evaluation``
    ``dict(evaluator="devcv", mode="loglikelihood"|"generate", baselines=["random", "oracle"],
    blind_twin=True, tasks="all", limit=None, adapter_options={...})``; ``adapter_options`` go to the
    ``babyvlm`` adapter of the model and of its blind twin (e.g. ``template``, ``batch_size``).
``report``
    A reporter spec (default ``"markdown"``); the report goes to the work dir.
"""

from __future__ import annotations

import copy
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babyvlm import registry
from babyvlm.core.compose import load_config
from babyvlm.core.constants import TASK_SPLITS_FILE
from babyvlm.core.errors import ConfigError
from babyvlm.core.experiment import Experiment, ExperimentResults
from babyvlm.core.io import atomic_write_json, load_json
from babyvlm.core.pipeline import Stage, StageCache, with_dependents
from babyvlm.core.records import TaskBuildRequest
from babyvlm.core.specs import plain, spec_dict
from babyvlm.core.validate import refuse_unknown
from babyvlm.plugins.run_command.sections import (
    DEFAULTS,
    SECTION_KEYS,
    check_before_stages,
    instruction_steps,
    section,
)

Log = Callable[[str], None]
TASKS_PLACEHOLDER = "{tasks}"
TASKS_DIR = "tasks"
BLIND_TWIN_DIR = "blind_twin"
CHECKPOINT_DIR = "checkpoint"
RUN_SECTIONS = (*SECTION_KEYS, "report")  # what the training Experiment accepts but does not read
IN_DOMAIN_SPLITS, OUT_OF_DOMAIN_SPLITS = ("train", "val", "test"), ("test",)
REPORT_LABELS = ("in_domain", "out_of_domain")


@dataclass
class RunOutcome:
    """What one ``RunPipeline.run`` did: the stages it ran and reused, each stage's outputs, the run's
    time (this invocation plus the recorded time of the stages it reused), the experiment's results and
    what the reporter read."""

    seconds: float
    ran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: ExperimentResults = field(default_factory=ExperimentResults)
    report_inputs: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "ran": self.ran, "cached": self.cached}


def tasks_dir(work_dir: str | os.PathLike) -> Path:
    return Path(work_dir) / TASKS_DIR


def training_config(config: Any, work_dir: str | os.PathLike) -> dict[str, Any]:
    """The config an ``Experiment`` trains from: ``{tasks}`` in phases' ``data.llava_json`` resolved to
    the run's task folder, and -- with a ``tasks`` section -- the in-domain tasks' val/test recordings
    held out of every phase (``data.heldout_splits``). Configs without run sections pass unchanged."""
    raw = plain(load_config(config).to_dict())
    folder = tasks_dir(work_dir)
    if raw.get("tasks") is not None and isinstance(raw.get("data"), dict):
        raw["data"].setdefault("heldout_splits", str(folder / TASK_SPLITS_FILE))
    for phase in raw.get("phases") or []:
        if isinstance(phase, dict) and isinstance(phase.get("data"), dict) and "llava_json" in phase["data"]:
            phase["data"]["llava_json"] = resolve_tasks_path(phase["data"]["llava_json"], folder)
    return raw


def training_experiment(config: Any, work_dir: str | os.PathLike, log: Log = print, seed: int = 0) -> Experiment:
    """An ``Experiment`` for a run's config (``training_config``): what ``babyvlm train`` trains."""
    return Experiment(training_config(config, work_dir), work_dir, log=log, seed=seed)


def resolve_tasks_path(value: Any, folder: Path) -> Any:
    """``{tasks}/...`` in a phase's ``data.llava_json`` -> the run's task folder."""
    if isinstance(value, str) and TASKS_PLACEHOLDER in value:
        return value.replace(TASKS_PLACEHOLDER, str(folder))
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"data.llava_json must be a path, got {value!r}")
    return value


def source_domain(spec: Any, where: str) -> str:
    """The domain a source's recordings belong to: what its plugin registered as ``domain=``, else its name."""
    name = spec_dict(spec, where)["type"]
    return str(registry.info("source", name).get("domain") or name)


class RunPipeline:
    """The whole run from one config (see the module docstring); ``experiment`` trains the model."""

    def __init__(self, config: Any, work_dir: str | os.PathLike, log: Log = print, seed: int = 0):
        self.cfg = load_config(config)
        self.work_dir, self.log = Path(work_dir), log
        self.experiment = training_experiment(self.cfg, self.work_dir, log=log, seed=seed)

    # ---- folders and domains --------------------------------------------------------------------
    @property
    def tasks_dir(self) -> Path:
        return tasks_dir(self.work_dir)

    @property
    def task_splits_file(self) -> Path:
        """Recording id -> split of the in-domain tasks (the training's ``data.heldout_splits``)."""
        return self.tasks_dir / TASK_SPLITS_FILE

    @property
    def ood_root(self) -> Path:
        return Path(section(self.cfg, "ood_data").get("root") or self.work_dir / "ood_corpus")

    @property
    def ood_source(self) -> dict[str, Any]:
        return spec_dict(section(self.cfg, "ood_data").get("source", DEFAULTS["ood_source"]), "ood_data.source")

    def domains(self) -> dict[str, str]:
        """Report label (``in_domain``, ``out_of_domain``) -> domain name, from the config's sources."""
        return dict(zip(REPORT_LABELS, (source_domain(self.experiment.data["source"], "data.source"),
                                        source_domain(self.ood_source, "ood_data.source")), strict=True))

    def final_checkpoint(self) -> Path:
        """The exported model of the last phase (what evaluation and ``babyvlm serve`` load)."""
        return self.work_dir / CHECKPOINT_DIR

    # ---- stages ---------------------------------------------------------------------------------
    def build_corpora(self) -> dict[str, Any]:
        """Write the corpora the config asks for (none for real data)."""
        paths = []
        for name, folder in (("corpus", self.experiment.root), ("ood_corpus", self.ood_root)):
            spec = section(self.cfg, name)
            if not spec:
                continue
            options = {key: value for key, value in spec.items() if key != "kind"}
            writer = registry.build("corpus_writer", dict(type=spec.get("kind", DEFAULTS["corpus_kind"]), **options))
            started = time.perf_counter()
            writer.write(folder, overwrite=True)
            self.log(f"{name}: {folder} written in {time.perf_counter() - started:.1f} s")
            paths.append(str(folder))
        return {"paths": paths}

    def build_tasks(self) -> dict[str, Any]:
        """The task sets: in-domain train/val/test (+ instructions), out-of-domain test."""
        spec = section(self.cfg, "tasks")
        builder = registry.build("task_builder", spec.get("builder", DEFAULTS["task_builder"]))
        names = spec.get("names", "all")
        common = dict(out=str(self.tasks_dir), seed=spec.get("seed", 0), max_items=spec.get("max_items"),
                      tasks=() if names in (None, "all") else tuple(names),
                      task_options=dict(spec.get("task_options") or {}),
                      split_fractions=dict(spec.get("split_fractions") or {}))
        domains = self.domains()
        in_domain = builder.build(TaskBuildRequest(
            source=dict(self.experiment.data["source"]), root=str(self.experiment.root), domain=domains["in_domain"],
            domain_splits=IN_DOMAIN_SPLITS, instructions=True, **common), log=self.log)
        # the split of every in-domain recording: its val and test recordings stay out of every training phase
        atomic_write_json(self.task_splits_file, in_domain.split_of)
        built = [str(in_domain.folder)]
        if spec.get("out_of_domain", True):
            ood = builder.build(TaskBuildRequest(
                source=self.ood_source, root=str(self.ood_root), domain=domains["out_of_domain"],
                domain_splits=OUT_OF_DOMAIN_SPLITS, splits=OUT_OF_DOMAIN_SPLITS, **common), log=self.log)
            built.append(str(ood.folder))
        for step in instruction_steps(spec):  # e.g. per-task instruction files for single-task phases
            for path in builder.write_instructions(in_domain.folder, log=self.log, **step):
                self.log(f"wrote {path}")
        return {"paths": built}

    def train_model(self, phases: Any = None, resume: bool = False) -> dict[str, Any]:
        """Data, tokenizer, model and the training phases; the final model saved as a checkpoint."""
        return _train_and_export(self.experiment, self.final_checkpoint(), phases, resume)

    def blind_twin(self) -> Experiment:
        """The same recipe on blank images: an ``Experiment`` in ``WORK/blind_twin`` sharing the corpus,
        store and held-out split (``data.blank_images=True``), training on this run's task sets."""
        model = self.experiment
        cfg = copy.deepcopy(plain(model.cfg.to_dict()))
        for name in RUN_SECTIONS:
            cfg.pop(name, None)
        cfg["data"] = dict(cfg["data"], root=str(model.root), store=str(model.store_dir), blank_images=True)
        if model.data.get("heldout_splits"):  # the twin holds out exactly what the model holds out
            cfg["data"]["heldout_splits"] = model.data["heldout_splits"]
        return Experiment(cfg, self.work_dir / BLIND_TWIN_DIR, log=self.log, seed=model.seed)

    def train_blind_twin(self) -> dict[str, Any]:
        twin = self.blind_twin()
        twin.tokenizer_source = self.experiment.tokenizer_dir  # the same tokenizer: text is not what differs
        twin.reuse_phases_without_images(self.experiment)  # phases that see no image take this run's weights
        return _train_and_export(twin, self.work_dir / BLIND_TWIN_DIR / CHECKPOINT_DIR)

    def evaluation_adapters(self) -> dict[str, Any]:
        """Role -> adapter spec: the model, its blind twin (blank images in training AND testing), and
        the sanity baselines."""
        spec = section(self.cfg, "evaluation")
        options = dict(spec.get("adapter_options") or {})  # e.g. template="baby_v1", batch_size=16
        adapters: dict[str, Any] = {"model": trained_adapter(self.experiment, self.final_checkpoint(), options)}
        if spec.get("blind_twin", True):
            twin = self.blind_twin()
            adapters["blind"] = dict(type="blind", adapter=trained_adapter(
                twin, self.work_dir / BLIND_TWIN_DIR / CHECKPOINT_DIR, options))
        for baseline in spec.get("baselines", DEFAULTS["baselines"]):
            adapters[baseline] = baseline
        return adapters

    def evaluate_models(self) -> dict[str, Any]:
        """Every adapter on every domain's ``evaluation.split`` (test; val to choose a recipe: an out-of-domain
        corpus has no val split); results under ``WORK/eval/<role>/``."""
        spec = section(self.cfg, "evaluation")
        evaluator = registry.build("evaluator", spec.get("evaluator", DEFAULTS["evaluator"]))
        summaries = {}
        for role, adapter in self.evaluation_adapters().items():
            self.log(f"== evaluate {role} ==")
            summaries[role] = evaluator.evaluate(
                adapter, spec.get("tasks", "all"), self.tasks_dir, self.work_dir / "eval" / role,
                mode=spec.get("mode", DEFAULTS["mode"]), split=spec.get("split", DEFAULTS["split"]),
                limit=spec.get("limit"), seed=self.experiment.seed, log=self.log)
        atomic_write_json(self.work_dir / "eval" / "summaries.json", summaries)
        return {"paths": [str(self.work_dir / "eval" / "summaries.json")], "roles": sorted(summaries)}

    def report_inputs(self) -> dict[str, Any]:
        """What the reporter reads: evaluations per domain and role, phases, the run's facts."""
        evaluations: dict[str, dict[str, str]] = {}
        for role in self.evaluation_adapters():
            for label, domain in self.domains().items():
                folder = self.work_dir / "eval" / role / domain
                if folder.is_dir():
                    evaluations.setdefault(label, {})[role] = str(folder)
        results = self.experiment.results
        phases = [dict(p.metrics, name=p.name, seconds=p.seconds) for p in results.phases]
        return {"evaluations": evaluations, "phases": phases, "config": str(self.work_dir / "config.py"),
                "seconds": results.seconds, "machine": _machine(), "tuning": self.tuning_description(),
                "split": section(self.cfg, "evaluation").get("split", DEFAULTS["split"])}

    def tuning_description(self) -> str | None:
        """The instruction-tuning mode in words (the report names it), ``None`` without instruction phases."""
        modes = {p["name"]: p["tuning"] for p in self.experiment.phases if isinstance(p.get("data"), dict)}
        if not modes:
            return None
        words = {"mixed": "mixed (one model on every task's instruction data)",
                 "task_specific": "task-specific (one model per task, each from the same pre-tuning weights)"}
        return "; ".join(f"{name}: {words[mode]}" for name, mode in modes.items())

    def write_report(self) -> dict[str, Any]:
        reporter = registry.build("reporter", plain(self.cfg.get("report") or DEFAULTS["reporter"]))
        written = reporter.write(self.report_inputs(), self.work_dir)
        return {"paths": [str(p) for p in written]}

    # ---- the whole run --------------------------------------------------------------------------
    def stages(self) -> list[Stage]:
        cfg = plain(self.cfg.to_dict())
        training = {k: cfg.get(k) for k in ("data", "tokenizer", "model", "phases", "seed")}
        stages = [
            Stage("corpora", {k: cfg.get(k) for k in ("corpus", "ood_corpus", "data", "ood_data")},
                  self.build_corpora),
            Stage("tasks", cfg.get("tasks"), self.build_tasks, depends_on=["corpora"]),
            Stage("model", training, self.train_model, depends_on=["corpora", "tasks"]),
        ]
        if section(cfg, "evaluation").get("blind_twin", True):
            stages.append(Stage("blind_twin", training, self.train_blind_twin, depends_on=["corpora", "tasks"]))
        stages.append(Stage("evaluation", cfg.get("evaluation"), self.evaluate_models,
                            depends_on=[s.name for s in stages]))
        stages.append(Stage("report", cfg.get("report"), self.write_report, depends_on=["evaluation"]))
        return stages

    def run(self, force: Iterable[str] = ()) -> RunOutcome:
        """Every stage, cached (see the module docstring); ``force`` names stages to rerun anyway, with every
        stage that depends on them (their cache keys name the config, not the outputs it produced). A
        config without an ``evaluation`` section only trains (``Experiment.run``)."""
        if "evaluation" not in self.cfg:
            results = self.experiment.run()
            return RunOutcome(seconds=results.seconds, results=results)
        check_before_stages(self.cfg)
        for phase in self.experiment.phases:  # trainer options' values, before the stages ahead of training
            registry.build("trainer", phase["trainer"])
        stages = self.stages()
        force = set(force)
        refuse_unknown(sorted(force), [s.name for s in stages], "--force", "stage")
        self.experiment.load_results()  # a reused model stage keeps its phases in results.json and the report
        forced = with_dependents(stages, force)  # their cache keys name configs, not what the forced stage made
        started = time.perf_counter()
        cache = StageCache(self.work_dir, log=self.log)
        cache.forget(forced)
        for number, stage in enumerate(stages, 1):
            elapsed = time.perf_counter() - started
            self.experiment.results.seconds = _run_seconds(elapsed, cache)  # what the report states
            self.log(f"\n[{number}/{len(stages)}] {stage.name}  (elapsed {elapsed:.0f} s{_eta(stage.name, cache)})")
            cache.run(stage, force=stage.name in forced)
        self.experiment.results.seconds = _run_seconds(time.perf_counter() - started, cache)
        self.experiment.write_results()
        return RunOutcome(seconds=round(time.perf_counter() - started, 1), ran=cache.ran, cached=cache.skipped,
                          outputs=cache.outputs, results=self.experiment.results,
                          report_inputs=self.report_inputs())


def trained_adapter(experiment: Experiment, checkpoint: Path, options: dict[str, Any]) -> dict[str, Any]:
    """The adapter spec of a trained run: its checkpoint, or with task-specific tuning one model per task
    (``per_task``), the shared pre-tuning model answering any task without its own."""
    exported = dict(type="babyvlm", path=str(checkpoint), **options)
    per_task = experiment.task_models()
    if not per_task:
        return exported
    return dict(type="per_task", default=exported,
                adapters={task: dict(type="babyvlm", path=str(path), **options) for task, path in per_task.items()})


def _train_and_export(experiment: Experiment, checkpoint: Path, phases: Any = None,
                      resume: bool = False) -> dict[str, Any]:
    experiment.ensure_data()
    experiment.ensure_tokenizer()
    experiment.build_model()
    experiment.train(phases, resume=resume)
    experiment.model.save_pretrained(checkpoint)
    experiment.write_results()
    return {"paths": [str(checkpoint)], "phases": [p.name for p in experiment.results.phases]}


def _run_seconds(elapsed: float, cache: StageCache) -> float:
    """The run's time: this invocation's plus what the stages it reused took when they ran."""
    return round(elapsed + sum(_recorded_seconds(name, cache) or 0.0 for name in cache.skipped), 1)


def _recorded_seconds(name: str, cache: StageCache) -> float | None:
    record = cache.folder / f"{name}.json"
    if not record.is_file():
        return None
    seconds = load_json(record).get("seconds")
    return float(seconds) if isinstance(seconds, (int, float)) else None


def _eta(name: str, cache: StageCache) -> str:
    """``; took N s last time`` from the stage's previous record, so a rerun shows what to expect."""
    seconds = _recorded_seconds(name, cache)
    return f"; took {seconds:.0f} s last time" if seconds is not None else ""


def _machine() -> str:
    return f"{platform.machine()} {os.cpu_count()} CPU cores, {platform.system()} {platform.release()}"
