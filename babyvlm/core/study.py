"""The whole study as cached stages of one run: ``babyvlm run CONFIG`` and ``Experiment(config).run()``.

corpus (in-domain) and ood_corpus (out-of-domain) -> pretraining store -> tokenizer + phases (the
``Experiment`` training stages) -> DevCV task sets (in-domain train/val/test, out-of-domain test) +
instruction data -> phase 3 -> the blind twin (the same recipe trained on blank images) -> evaluation of
the model, its blind twin and the sanity baselines on both domains -> report.

Each stage is a method a researcher can call alone (``build_corpora``, ``build_tasks``,
``train_model``, ``train_blind_twin``, ``evaluate_models``, ``write_report``); ``run_study`` runs them
through a ``StageCache`` so a rerun with nothing changed skips them all and a changed stage reruns with
what depends on it. Every component is reached through the registry by name (commands ``synth`` and
``tasks``, an ``evaluator``, ``eval_adapter``s and a ``reporter``), so each can be swapped by config.

Config sections (all optional but ``evaluation``, whose presence makes ``run()`` the whole study):

``corpus`` / ``ood_corpus``
    ``dict(kind="saycam"|"ego4d", minutes, seed, fps, size, video_minutes)``: synthetic corpora written
    with ``babyvlm synth`` into ``WORK/corpus`` and ``WORK/ood_corpus``. Leave ``corpus`` out and set
    ``data.root`` (and ``ood_data.root``) to run on real SAYCam / Ego4D folders instead.
``ood_data``
    ``dict(source=SPEC, root=PATH)`` for the out-of-domain tasks (default: ``ego4d`` on ``WORK/ood_corpus``).
``tasks``
    ``dict(names=[...] or "all", seed, max_items, task_options={...}, commands=[[...], ...])``: the DevCV
    task sets under ``WORK/tasks/<domain>/``, with the mixed instruction file for phase 3 (``{tasks}`` in
    a phase's ``data.llava_json`` stands for ``WORK/tasks``); ``commands`` are registered ``babyvlm``
    commands run after the build, e.g. ``["tasks", "instructions", "{tasks}/saycam", "--per-task"]``.
``evaluation``
    ``dict(evaluator="devcv", mode="loglikelihood"|"generate", baselines=["random", "oracle"],
    blind_twin=True, tasks="all", limit=None, adapter_options={...})``; ``adapter_options`` go to the
    ``babyvlm`` adapter of the model and of its blind twin (e.g. ``template``, ``batch_size``).
``report``
    A reporter spec (default ``"markdown"``); the report goes to the work dir.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from babyvlm import registry
from babyvlm.core.errors import ConfigError
from babyvlm.core.io import atomic_write_json, load_json
from babyvlm.core.pipeline import Stage, StageCache
from babyvlm.core.specs import plain, spec_dict
from babyvlm.core.validate import check_number, refuse_unknown

TASKS_PLACEHOLDER = "{tasks}"
IN_DOMAIN, OUT_OF_DOMAIN = "saycam", "ego4d"
REPORT_DOMAINS = {IN_DOMAIN: "in_domain", OUT_OF_DOMAIN: "out_of_domain"}
BLIND_TWIN_DIR = "blind_twin"
CORPUS_KEYS = ("kind", "minutes", "seed", "fps", "size", "video_minutes")
# the keys of each optional study section (a typo is refused before any stage runs)
STUDY_SECTIONS = {"corpus": CORPUS_KEYS, "ood_corpus": CORPUS_KEYS, "ood_data": ("source", "root"),
                  "tasks": ("names", "seed", "max_items", "task_options", "commands", "out_of_domain",
                            "split_fractions"),
                  "evaluation": ("evaluator", "mode", "baselines", "blind_twin", "tasks", "limit", "adapter_options")}
EVALUATION_MODES = ("generate", "loglikelihood")


def run_command(name: str, *args: str) -> None:
    """Run a registered ``babyvlm`` command in-process, exactly as the CLI would."""
    registry.get("command", name).main(list(args), prog_name=f"babyvlm {name}", standalone_mode=False)


class StudyStages:
    """Mixed into ``Experiment``: the stages of a whole study run (see the module docstring)."""

    cfg: Any
    work_dir: Path
    log: Any

    # ---- folders --------------------------------------------------------------------------------
    @property
    def tasks_dir(self) -> Path:
        return self.work_dir / "tasks"

    @property
    def task_splits_file(self) -> Path:
        """Recording id -> DevCV split of the in-domain tasks (``data.heldout_splits`` of a whole study)."""
        return self.tasks_dir / "splits.json"

    @property
    def ood_root(self) -> Path:
        ood = plain(self.cfg.get("ood_data") or {})
        return Path(ood.get("root") or self.work_dir / "ood_corpus")

    def final_checkpoint(self) -> Path:
        """The exported model of the last phase (what evaluation and ``babyvlm serve`` load)."""
        return self.work_dir / "checkpoint"

    # ---- stages ---------------------------------------------------------------------------------
    def build_corpora(self) -> dict[str, Any]:
        """Write the synthetic corpora the config asks for (skipped for real data)."""
        paths = []
        for section, folder in (("corpus", self.root), ("ood_corpus", self.ood_root)):
            spec = plain(self.cfg.get(section) or {})
            if not spec:
                continue
            args = [spec.get("kind", "saycam"), str(folder)]
            for key in ("minutes", "seed", "fps", "size", "video_minutes"):
                if key in spec:
                    args += [f"--{key.replace('_', '-')}", str(spec[key])]
            run_command("synth", *args, "--quiet", "--overwrite")
            paths.append(str(folder))
        return {"paths": paths}

    def build_tasks(self) -> dict[str, Any]:
        """The DevCV task sets: in-domain train/val/test (+ instructions), out-of-domain test."""
        spec = plain(self.cfg.get("tasks") or {})
        common = ["--out", str(self.tasks_dir), "--seed", str(spec.get("seed", 0))]
        if spec.get("names") not in (None, "all"):
            common += ["--tasks", ",".join(spec["names"])]
        if "max_items" in spec:
            common += ["--max-items", str(spec["max_items"])]
        for key, value in (spec.get("task_options") or {}).items():
            common += ["--task-opt", f"{key}={value}"]
        source = self.data["source"]["type"]
        for key, value in (spec.get("split_fractions") or {}).items():
            common += ["--split-fraction", f"{key}={value}"]
        run_command("tasks", "build", "--source", source, "--root", str(self.root), "--domain", IN_DOMAIN, *common)
        built = [str(self.tasks_dir / IN_DOMAIN)]
        # the split of every in-domain recording: its val and test recordings stay out of every training phase
        manifest = load_json(self.tasks_dir / IN_DOMAIN / "manifest.json")
        atomic_write_json(self.task_splits_file, manifest.get("split_of", {}))
        if spec.get("out_of_domain", True):
            ood = plain(self.cfg.get("ood_data") or {})
            ood_source = spec_dict(ood.get("source", "ego4d"), "ood_data.source")["type"]
            run_command("tasks", "build", "--source", ood_source, "--root", str(self.ood_root),
                        "--domain", OUT_OF_DOMAIN, "--splits", "test", *common)
            built.append(str(self.tasks_dir / OUT_OF_DOMAIN))
        for command in spec.get("commands") or []:  # e.g. per-task or balanced instruction files
            name, *args = [str(resolve_tasks_path(str(arg), self.tasks_dir)) for arg in command]
            run_command(name, *args)
        return {"paths": built}

    def train_model(self, phases: Any = None, resume: bool = False) -> dict[str, Any]:
        """Data, tokenizer, model and the training phases; the final model saved as a checkpoint."""
        self.ensure_data()
        self.ensure_tokenizer()
        self.build_model()
        self.train(phases, resume=resume)
        self.model.save_pretrained(self.final_checkpoint())
        self.write_results()
        return {"paths": [str(self.final_checkpoint())], "phases": [p.name for p in self.results.phases]}

    def blind_twin(self) -> Any:
        """The same recipe on blank images: an ``Experiment`` in ``WORK/blind_twin`` sharing the corpus and
        store (``data.blank_images=True``); phases that see no image reuse this run's weights."""
        cfg = copy.deepcopy(plain(self.cfg.to_dict() if hasattr(self.cfg, "to_dict") else self.cfg))
        for section in ("corpus", "ood_corpus", "tasks", "evaluation", "report"):
            cfg.pop(section, None)
        cfg["data"] = dict(cfg["data"], root=str(self.root), store=str(self.store_dir), blank_images=True)
        if self.data.get("heldout_splits"):  # the twin holds out exactly what the model holds out
            cfg["data"]["heldout_splits"] = self.data["heldout_splits"]
        for phase in cfg.get("phases", []):  # the twin trains on this run's task sets
            if isinstance(phase.get("data"), dict) and "llava_json" in phase["data"]:
                phase["data"]["llava_json"] = resolve_tasks_path(phase["data"]["llava_json"], self.tasks_dir)
        return type(self)(cfg, self.work_dir / BLIND_TWIN_DIR, log=self.log, seed=self.seed)

    def train_blind_twin(self) -> dict[str, Any]:
        twin = self.blind_twin()
        twin.tokenizer_source = self._tokenizer_dir  # the same tokenizer: text is not what differs
        twin.reuse_phases_without_images(self)
        return twin.train_model()

    def evaluation_adapters(self) -> dict[str, Any]:
        """Role -> adapter spec: the model, its blind twin (blank images in training AND testing), and
        the sanity baselines."""
        spec = plain(self.cfg.get("evaluation") or {})
        options = dict(spec.get("adapter_options") or {})  # e.g. template="baby_v1", batch_size=16
        adapters: dict[str, Any] = {"model": self.trained_adapter(self, options)}
        if spec.get("blind_twin", True):
            adapters["blind"] = dict(type="blind", adapter=self.trained_adapter(self.blind_twin(), options))
        for baseline in spec.get("baselines", ["random", "oracle"]):
            adapters[baseline] = baseline
        return adapters

    @staticmethod
    def trained_adapter(run: Any, options: dict[str, Any]) -> dict[str, Any]:
        """The adapter spec of a trained run: its checkpoint, or with task-specific tuning one model per
        task (``per_task``), the shared pre-tuning model answering any task without its own."""
        checkpoint = dict(type="babyvlm", path=str(run.final_checkpoint()), **options)
        per_task = run.task_models()
        if not per_task:
            return checkpoint
        return dict(type="per_task", default=checkpoint,
                    adapters={task: dict(type="babyvlm", path=str(path), **options) for task, path in per_task.items()})

    def evaluate_models(self) -> dict[str, Any]:
        """Every adapter on every domain's test split; results under ``WORK/eval/<role>/``."""
        spec = plain(self.cfg.get("evaluation") or {})
        evaluator = registry.build("evaluator", spec.get("evaluator", "devcv"))
        summaries = {}
        for role, adapter in self.evaluation_adapters().items():
            self.log(f"== evaluate {role} ==")
            summaries[role] = evaluator.evaluate(
                adapter, spec.get("tasks", "all"), self.tasks_dir, self.work_dir / "eval" / role,
                mode=spec.get("mode", "loglikelihood"), limit=spec.get("limit"), seed=self.seed, log=self.log)
        atomic_write_json(self.work_dir / "eval" / "summaries.json", summaries)
        return {"paths": [str(self.work_dir / "eval" / "summaries.json")], "roles": sorted(summaries)}

    def report_inputs(self) -> dict[str, Any]:
        """What the reporter reads: evaluations per domain and role, phases, the run's facts."""
        evaluations: dict[str, dict[str, str]] = {}
        for role in self.evaluation_adapters():
            for domain, label in REPORT_DOMAINS.items():
                folder = self.work_dir / "eval" / role / domain
                if folder.is_dir():
                    evaluations.setdefault(label, {})[role] = str(folder)
        phases = [dict(p.metrics, name=p.name, seconds=p.seconds) for p in self.results.phases]
        return {"evaluations": evaluations, "phases": phases, "config": str(self.work_dir / "config.py"),
                "seconds": self.results.seconds, "machine": _machine(), "tuning": self.tuning_description()}

    def tuning_description(self) -> str | None:
        """The instruction-tuning mode in words (the report names it), ``None`` without instruction phases."""
        modes = {p["name"]: p["tuning"] for p in getattr(self, "phases", []) if isinstance(p.get("data"), dict)}
        if not modes:
            return None
        words = {"mixed": "mixed (one model on every task's instruction data)",
                 "task_specific": "task-specific (one model per task, each from the same pre-tuning weights)"}
        return "; ".join(f"{name}: {words[mode]}" for name, mode in modes.items())

    def write_report(self) -> dict[str, Any]:
        reporter = registry.build("reporter", plain(self.cfg.get("report") or "markdown"))
        written = reporter.write(self.report_inputs(), self.work_dir)
        return {"paths": [str(p) for p in written]}

    def check_study_config(self) -> None:
        """Refuse a bad ``tasks``/``evaluation``/``report`` section before any stage runs, so a typo there
        fails in a second rather than after the minutes of training that come before its stage."""
        tasks = plain(self.cfg.get("tasks") or {})
        for number, command in enumerate(tasks.get("commands") or []):
            if not isinstance(command, (list, tuple)) or not command or not all(isinstance(a, str) for a in command):
                raise ConfigError(f"tasks.commands[{number}]: expected a list of strings (a babyvlm command and "
                                  f"its arguments, e.g. ['tasks', 'instructions', '{{tasks}}/saycam']), got {command!r}")
            registry.get("command", command[0])
        spec = plain(self.cfg.get("evaluation") or {})
        registry.get("evaluator", spec_dict(spec.get("evaluator", "devcv"), "evaluation.evaluator")["type"])
        for baseline in spec.get("baselines", ["random", "oracle"]):
            registry.get("eval_adapter", spec_dict(baseline, "evaluation.baselines")["type"])
        limit = spec.get("limit")
        values = list(limit.values()) if isinstance(limit, dict) else [limit]
        if any(v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1) for v in values):
            raise ConfigError(f"evaluation.limit: expected a positive whole number or {{task: number}}, got {limit!r}")
        registry.get("reporter", spec_dict(self.cfg.get("report") or "markdown", "report")["type"])

    def run_study(self, force: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
        """Every stage, cached (see the module docstring); ``force`` names stages to rerun anyway."""
        self.check_study_config()
        for phase in getattr(self, "phases", []):  # trainer options' values, before the stages ahead of training
            registry.build("trainer", phase["trainer"])
        started = time.perf_counter()
        cache = StageCache(self.work_dir, log=self.log)
        cfg = plain(self.cfg.to_dict() if hasattr(self.cfg, "to_dict") else self.cfg)
        training = {k: cfg.get(k) for k in ("data", "tokenizer", "model", "phases", "seed")}
        stages = [
            Stage("corpora", {k: cfg.get(k) for k in ("corpus", "ood_corpus", "data", "ood_data")},
                  self.build_corpora),
            Stage("tasks", cfg.get("tasks"), self.build_tasks, depends_on=["corpora"]),
            Stage("model", training, self.train_model, depends_on=["corpora", "tasks"]),
        ]
        if plain(cfg.get("evaluation") or {}).get("blind_twin", True):
            stages.append(Stage("blind_twin", training, self.train_blind_twin, depends_on=["corpora", "tasks"]))
        stages.append(Stage("evaluation", cfg.get("evaluation"), self.evaluate_models,
                            depends_on=[s.name for s in stages]))
        stages.append(Stage("report", cfg.get("report"), self.write_report, depends_on=["evaluation"]))
        refuse_unknown(sorted(force), [s.name for s in stages], "--force", "stage")
        for number, stage in enumerate(stages, 1):
            elapsed = time.perf_counter() - started
            self.results.seconds = round(elapsed, 1)  # what the report states, when it runs
            self.log(f"\n[{number}/{len(stages)}] {stage.name}  (elapsed {elapsed:.0f} s{_eta(stage.name, cache)})")
            cache.run(stage, force=stage.name in force)
        self.results.seconds = round(time.perf_counter() - started, 1)
        self.write_results()
        return {"seconds": self.results.seconds, "ran": cache.ran, "cached": cache.skipped,
                "outputs": cache.outputs}


def check_study_sections(cfg: Any) -> None:
    """The optional study sections: known keys only (with a did-you-mean) and values of the right type,
    each named by section and key, so ``corpus.minutes=abc`` fails here and not in the corpus stage."""
    from babyvlm.core.compose import check_spec_options

    sections = {name: plain(cfg.get(name)) for name in STUDY_SECTIONS if cfg.get(name) is not None}
    for name, section in sections.items():
        if not isinstance(section, dict):
            raise ConfigError(f"{name}: expected a dict(...) section, got {section!r:.80}")
        refuse_unknown(section, STUDY_SECTIONS[name], name)
    for name in ("corpus", "ood_corpus"):
        _check_corpus(name, sections.get(name, {}))
    if "source" in sections.get("ood_data", {}):
        check_spec_options("source", sections["ood_data"]["source"], "ood_data.source")
    _check_tasks(sections.get("tasks", {}))
    evaluation = sections.get("evaluation", {})
    if evaluation.get("mode", "loglikelihood") not in EVALUATION_MODES:
        raise ConfigError(f"evaluation: mode must be one of {', '.join(EVALUATION_MODES)}, got {evaluation['mode']!r}")
    _task_names_option("evaluation", evaluation.get("tasks", "all"))
    for key in ("adapter_options",):
        if not isinstance(evaluation.get(key, {}), dict):
            raise ConfigError(f"evaluation: {key} must be a dict, got {evaluation[key]!r:.80}")
    _check_flag("evaluation", "blind_twin", evaluation)
    if "evaluator" in evaluation:
        check_spec_options("evaluator", evaluation["evaluator"], "evaluation.evaluator")
    if cfg.get("report") is not None:
        check_spec_options("reporter", plain(cfg.get("report")), "report")


def _check_corpus(name: str, corpus: dict[str, Any]) -> None:
    if not corpus:
        return
    kinds = sorted(getattr(registry.get("command", "synth"), "commands", {}))
    if kinds and corpus.get("kind", "saycam") not in kinds:
        raise ConfigError(f"{name}: kind must be one of {', '.join(kinds)}, got {corpus['kind']!r}")
    for key in ("minutes", "video_minutes"):
        if key in corpus:
            check_number(name, key, corpus[key], low=0, strict=True)
    for key in ("seed", "fps", "size"):
        if key in corpus:
            check_number(name, key, corpus[key], whole=True, low=0)


def _check_tasks(tasks: dict[str, Any]) -> None:
    if isinstance(tasks.get("names"), str) and tasks["names"] != "all":
        raise ConfigError(f"tasks: names must be 'all' or a list of task names, got {tasks['names']!r:.80}")
    names = _task_names_option("tasks", tasks.get("names", "all"))
    for key, low in (("seed", 0), ("max_items", 1)):
        if key in tasks:
            check_number("tasks", key, tasks[key], whole=True, low=low)
    _check_flag("tasks", "out_of_domain", tasks)
    fractions = tasks.get("split_fractions") or {}
    if not isinstance(fractions, dict):
        raise ConfigError(f"tasks: split_fractions must be a dict like dict(test=0.3), got {fractions!r:.80}")
    refuse_unknown(fractions, ("val", "test"), "tasks.split_fractions")
    for key, value in fractions.items():
        check_number("tasks.split_fractions", key, value, low=0, high=1, strict=True)
    options = tasks.get("task_options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"tasks: task_options must be a dict of task options, got {options!r:.80}")
    for name in names or registry.names("task"):  # the options' values, as `tasks build --task-opt` checks them
        registry.build("task", dict(type=name, **options))


def _task_names_option(section: str, names: Any) -> list[str]:
    """``"all"`` (-> []), a comma-separated string or a list of registered task names."""
    if names == "all":
        return []
    listed = [n.strip() for n in names.split(",")] if isinstance(names, str) else names
    if not isinstance(listed, list) or not listed or not all(isinstance(n, str) and n for n in listed):
        raise ConfigError(f"{section}: tasks must be 'all' or a non-empty list of task names, got {names!r:.80}")
    for name in listed:
        registry.get("task", name)  # an unknown name: the registry's error, with a did-you-mean
    return listed


def _check_flag(section: str, key: str, values: dict[str, Any]) -> None:
    if key in values and not isinstance(values[key], bool):
        raise ConfigError(f"{section}: {key} must be true or false, got {values[key]!r}")


def _eta(name: str, cache: StageCache) -> str:
    """``; took N s last time`` from the stage's previous record, so a rerun shows what to expect."""
    from babyvlm.core.io import load_json

    record = cache.folder / f"{name}.json"
    if not record.is_file():
        return ""
    seconds = load_json(record).get("seconds")
    return f"; took {seconds:.0f} s last time" if isinstance(seconds, (int, float)) else ""


def _machine() -> str:
    import os
    import platform

    return f"{platform.machine()} {os.cpu_count()} CPU cores, {platform.system()} {platform.release()}"


def resolve_tasks_path(value: Any, tasks_dir: Path) -> Any:
    """``{tasks}/...`` in a phase's ``data.llava_json`` -> the run's task folder."""
    if isinstance(value, str) and TASKS_PLACEHOLDER in value:
        return value.replace(TASKS_PLACEHOLDER, str(tasks_dir))
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"data.llava_json must be a path, got {value!r}")
    return value
