"""The run pipeline's config sections (``corpus``, ``ood_corpus``, ``ood_data``, ``tasks``,
``evaluation``, ``report``): their keys and value checks, registered as ``config_section``s so that an
``Experiment`` accepts them (without reading them) and refuses a typo in them before anything runs."""

from __future__ import annotations

from typing import Any

from babyvlm import registry
from babyvlm.core.compose import check_spec_options
from babyvlm.core.constants import EVALUATION_MODES
from babyvlm.core.errors import ConfigError
from babyvlm.core.specs import plain, spec_dict
from babyvlm.core.validate import check_number, refuse_unknown

CORPUS_KEYS = ("kind", "minutes", "seed", "fps", "size", "video_minutes")
INSTRUCTION_KEYS = ("tasks", "split", "per_task", "include_held_out", "seed", "easy_match")
SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "corpus": CORPUS_KEYS, "ood_corpus": CORPUS_KEYS, "ood_data": ("source", "root"),
    "tasks": ("names", "seed", "max_items", "task_options", "instructions", "out_of_domain", "split_fractions",
              "builder"),
    "evaluation": ("evaluator", "mode", "baselines", "blind_twin", "tasks", "limit", "adapter_options", "split"),
}
DEFAULTS = dict(corpus_kind="saycam", ood_source="ego4d", task_builder="devcv", evaluator="devcv",
                baselines=("random", "oracle"), reporter="markdown", mode="loglikelihood", split="test")
# the splits a run may be scored on: test for results, val for choosing a recipe (never tune on test items)
EVALUATION_SPLITS = ("test", "val")


def section(cfg: Any, name: str) -> Any:
    """A section of the config as plain values ({} when absent)."""
    return plain(cfg.get(name) or {})


def _as_dict(name: str, value: Any) -> dict[str, Any]:
    value = plain(value)
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: expected a dict(...) section, got {value!r:.80}")
    refuse_unknown(value, SECTION_KEYS[name], name)
    return value


def check_corpus(value: Any, name: str = "corpus") -> None:
    corpus = _as_dict(name, value)
    if not corpus:
        return
    kinds = registry.names("corpus_writer")
    if corpus.get("kind", DEFAULTS["corpus_kind"]) not in kinds:
        raise ConfigError(f"{name}: kind must be one of {', '.join(kinds)}, got {corpus['kind']!r}")
    for key in ("minutes", "video_minutes"):
        if key in corpus:
            check_number(name, key, corpus[key], low=0, strict=True)
    for key in ("seed", "fps", "size"):
        if key in corpus:
            check_number(name, key, corpus[key], whole=True, low=0)


def check_ood_corpus(value: Any) -> None:
    check_corpus(value, "ood_corpus")


def check_ood_data(value: Any) -> None:
    ood = _as_dict("ood_data", value)
    if "source" in ood:
        check_spec_options("source", ood["source"], "ood_data.source")


def check_tasks(value: Any) -> None:
    tasks = _as_dict("tasks", value)
    if isinstance(tasks.get("names"), str) and tasks["names"] != "all":
        raise ConfigError(f"tasks: names must be 'all' or a list of task names, got {tasks['names']!r:.80}")
    names = task_names_option("tasks", tasks.get("names", "all"))
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
    instruction_steps(tasks)
    check_spec_options("task_builder", tasks.get("builder", DEFAULTS["task_builder"]), "tasks.builder")
    options = tasks.get("task_options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"tasks: task_options must be a dict of task options, got {options!r:.80}")
    for name in names or registry.names("task"):  # the options' values, as `tasks build --task-opt` checks them
        registry.build("task", dict(type=name, **options))


def instruction_steps(tasks: dict[str, Any]) -> list[dict[str, Any]]:
    """``tasks.instructions``: one ``dict(per_task=True, ...)`` or a list of them, each an instruction
    file set the task builder writes from the in-domain train split after the build."""
    steps = tasks.get("instructions") or []
    steps = [steps] if isinstance(steps, dict) else steps
    if not isinstance(steps, list):
        raise ConfigError(f"tasks.instructions: expected dict(per_task=True, ...) or a list of them, got {steps!r:.80}")
    for number, step in enumerate(steps):
        where = f"tasks.instructions[{number}]"
        if not isinstance(step, dict):
            raise ConfigError(f"{where}: expected dict(per_task=True, ...), got {step!r:.80}")
        refuse_unknown(step, INSTRUCTION_KEYS, where)
        for flag in ("per_task", "include_held_out"):
            _check_flag(where, flag, step)
        if "easy_match" in step:  # refused here, before the corpora are written, not at the tasks stage
            check_number(where, "easy_match", step["easy_match"], whole=True, low=0)
    return [dict(step) for step in steps]


def check_evaluation(value: Any) -> None:
    evaluation = _as_dict("evaluation", value)
    if evaluation.get("mode", DEFAULTS["mode"]) not in EVALUATION_MODES:
        raise ConfigError(f"evaluation: mode must be one of {', '.join(EVALUATION_MODES)}, got {evaluation['mode']!r}")
    task_names_option("evaluation", evaluation.get("tasks", "all"))
    if not isinstance(evaluation.get("adapter_options", {}), dict):
        raise ConfigError(f"evaluation: adapter_options must be a dict, got {evaluation['adapter_options']!r:.80}")
    _check_flag("evaluation", "blind_twin", evaluation)
    if evaluation.get("split", DEFAULTS["split"]) not in EVALUATION_SPLITS:
        raise ConfigError(f"evaluation: split must be one of {', '.join(EVALUATION_SPLITS)} (val to choose a recipe, "
                          f"test for results), got {evaluation['split']!r}")
    if "evaluator" in evaluation:
        check_spec_options("evaluator", evaluation["evaluator"], "evaluation.evaluator")


def check_report(value: Any) -> None:
    check_spec_options("reporter", plain(value), "report")


def check_before_stages(cfg: Any) -> None:
    """What the section checks leave to the registry (every named component exists, the limit is
    positive), run before any stage, so a typo fails in a second rather than after training."""
    spec = section(cfg, "evaluation")
    registry.get("evaluator", spec_dict(spec.get("evaluator", DEFAULTS["evaluator"]), "evaluation.evaluator")["type"])
    for baseline in spec.get("baselines", DEFAULTS["baselines"]):
        registry.get("eval_adapter", spec_dict(baseline, "evaluation.baselines")["type"])
    limit = spec.get("limit")
    values = list(limit.values()) if isinstance(limit, dict) else [limit]
    if any(v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1) for v in values):
        raise ConfigError(f"evaluation.limit: expected a positive whole number or {{task: number}}, got {limit!r}")
    registry.get("reporter", spec_dict(plain(cfg.get("report") or DEFAULTS["reporter"]), "report")["type"])
    tasks = section(cfg, "tasks")
    registry.get("task_builder", spec_dict(tasks.get("builder", DEFAULTS["task_builder"]), "tasks.builder")["type"])


def task_names_option(where: str, names: Any) -> list[str]:
    """``"all"`` (-> []), a comma-separated string or a list of registered task names."""
    if names == "all":
        return []
    listed = [n.strip() for n in names.split(",")] if isinstance(names, str) else names
    if not isinstance(listed, list) or not listed or not all(isinstance(n, str) and n for n in listed):
        raise ConfigError(f"{where}: tasks must be 'all' or a non-empty list of task names, got {names!r:.80}")
    for name in listed:
        registry.get("task", name)  # an unknown name: the registry's error, with a did-you-mean
    return listed


def _check_flag(where: str, key: str, values: dict[str, Any]) -> None:
    if key in values and not isinstance(values[key], bool):
        raise ConfigError(f"{where}: {key} must be true or false, got {values[key]!r}")
