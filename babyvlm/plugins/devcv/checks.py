"""``babyvlm tasks check``: validity checks per task and split, as a registry of check functions.

Each check is ``fn(context) -> list[CheckResult]`` registered with ``@register_check(name)``; a plugin (the
evaluation engine's ``random`` and ``blind`` baselines, say) joins by registering another one — the
command runs every registered check. Built in:

- ``answer_space``: every gold answer lies in its item's answer space; shows the chance level from it.
- ``gold_balance``: gold positions (letters, or balanced answers) pass a chi-square test of uniformity
  (fails below p = ``GOLD_BALANCE_P``).
- ``no_leakage``: no image content (SHA-256) is shared between two splits, across tasks and domains.
- ``oracle``: the gold answers, scored through the task's own ``score`` as a model's responses, get 100%
  on the primary metric, in both modes.
- ``constant``: a model always giving the same answer must not beat chance the way a shortcut probe
  fails (``probes.MARGIN`` points above it with one-sided binomial p < ``probes.ALPHA`` over the scored
  units, Bonferroni-corrected over the constant answers tried).
- ``determinism``: with ``rebuild``, each task is rebuilt from the manifest's source and seed into a
  temporary folder and its files must be byte-identical.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babyvlm.core.errors import BabyVLMError
from babyvlm.core.io import load_json

GOLD_BALANCE_P = 0.001


@dataclass
class CheckResult:
    check: str
    where: str  # "saycam/baby_pv/test"
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.where:40} {self.check:13} {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "where": self.where, "ok": self.ok, "detail": self.detail}


@dataclass
class CheckContext:
    """What the checks see: every loaded (domain, task, split) and the folders they came from."""

    root: Path
    loaded: dict[tuple[str, str, str], list[Any]] = field(default_factory=dict)  # (domain, task, split) -> items
    tasks: dict[str, Any] = field(default_factory=dict)
    folders: dict[str, Path] = field(default_factory=dict)  # domain -> folder
    rebuild: bool = True


CHECKS: dict[str, Callable[[CheckContext], list[CheckResult]]] = {}


def register_check(name: str) -> Callable[[Callable], Callable]:
    def decorate(function: Callable[[CheckContext], list[CheckResult]]) -> Callable:
        CHECKS[name] = function
        return function
    return decorate


def run_checks(folder: str | Path, tasks: Sequence[str] = (), rebuild: bool = True) -> list[CheckResult]:
    context = load_context(Path(folder), tasks, rebuild)
    results = []
    for name, check in CHECKS.items():
        try:
            results += check(context)
        except BabyVLMError as exc:
            results.append(CheckResult(name, str(context.root), False, f"could not run: {exc}"))
    return results


def load_context(root: Path, names: Sequence[str], rebuild: bool) -> CheckContext:
    import babyvlm
    from babyvlm.plugins.devcv.runner import DOMAINS

    context = CheckContext(root=root, rebuild=rebuild)
    folders = [root / d for d in DOMAINS if (root / d).is_dir()] or [root]
    for folder in folders:
        domain = folder.name if folder.name in DOMAINS else "released"
        context.folders[domain] = folder
        for name in names or babyvlm.registry.names("task"):  # the registry is the only task list
            task = context.tasks.setdefault(name, babyvlm.build("task", name))
            for split in ("train", "val", "test"):
                if task.item_path(folder, split).is_file():
                    context.loaded[(domain, name, split)] = task.load(folder, split)
    if not context.loaded:
        raise BabyVLMError(f"{root}: no DevCV task files found (expected <short>_<split>.json or "
                           f"baby_winoground.csv, directly or under saycam/ or ego4d/)")
    return context


def _where(key: tuple[str, str, str]) -> str:
    return "/".join(key)


@register_check("answer_space")
def check_answer_space(context: CheckContext) -> list[CheckResult]:
    results = []
    for key, items in context.loaded.items():
        task = context.tasks[key[1]]
        outside = [item.item_id for item in items if key[1] not in ("baby_winoground", "baby_memory")
                   and item.answer not in task.answer_space(item)]
        detail = (f"chance {task.chance(items):.3f} over {len(items)} items; answers {task.answer_distribution(items)}"
                  if not outside else f"{len(outside)} gold answers outside the answer space (e.g. {outside[0]})")
        results.append(CheckResult("answer_space", _where(key), not outside and bool(items),
                                   detail if items else "no items"))
    return results


@register_check("gold_balance")
def check_gold_balance(context: CheckContext) -> list[CheckResult]:
    from scipy.stats import chisquare

    results = []
    for key, items in context.loaded.items():
        balanced = context.tasks[key[1]].gold_positions(items)
        if balanced is None or not items:
            continue
        counts, categories = balanced
        observed = [counts.get(c, 0) for c in categories]
        if sum(observed) < len(categories):
            results.append(CheckResult("gold_balance", _where(key), True, f"too few items to test: {observed}"))
            continue
        p = float(chisquare(observed).pvalue)
        results.append(CheckResult("gold_balance", _where(key), p >= GOLD_BALANCE_P,
                                   f"chi-square p={p:.3g} over {dict(zip(categories, observed, strict=True))}"))
    return results


@register_check("no_leakage")
def check_no_leakage(context: CheckContext) -> list[CheckResult]:
    owners: dict[str, set[tuple[str, str]]] = {}
    for (domain, _name, split), items in context.loaded.items():
        for item in items:
            for data in item.images:
                owners.setdefault(hashlib.sha256(data).hexdigest(), set()).add((domain, split))
    shared = {digest: groups for digest, groups in owners.items() if len(groups) > 1}
    groups = sorted({(d, s) for d, _, s in context.loaded})
    detail = (f"{len(owners)} distinct images over {['/'.join(g) for g in groups]}, none shared" if not shared else
              f"{len(shared)} images shared between splits, e.g. {sorted('/'.join(g) for g in next(iter(shared.values())))}")
    return [CheckResult("no_leakage", str(context.root), not shared, detail)]


def _primary(task: Any, items: list, mode: str, answer_of: Callable[[Any], Any]) -> float | None:
    predictions = [task.score(item, task.respond_with(item, mode, answer_of(item)), mode) for item in items]
    return task.aggregate(items, predictions)[task.primary_metric]


@register_check("oracle")
def check_oracle(context: CheckContext) -> list[CheckResult]:
    results = []
    for key, items in context.loaded.items():
        task = context.tasks[key[1]]
        if not items:
            continue
        scores = {mode: _primary(task, items, mode, task.oracle_answer) for mode in ("generate", "loglikelihood")}
        ok = all(score is None or score == 1.0 for score in scores.values())
        results.append(CheckResult("oracle", _where(key), ok, ", ".join(
            f"{mode} {'unavailable' if s is None else f'{s:.3f}'}" for mode, s in scores.items())))
    return results


@register_check("constant")
def check_constant(context: CheckContext) -> list[CheckResult]:
    from babyvlm.plugins.devcv.probes import ALPHA, MARGIN, constant_shortcut

    results = []
    for key, items in context.loaded.items():
        task = context.tasks[key[1]]
        if not items:
            continue
        chance = task.chance(items)
        scores = {}
        for answer in task.constant_answers(items):
            score = _primary(task, items, "loglikelihood", lambda item, answer=answer: answer)
            if score is not None:
                scores[answer] = score
        if not scores:
            results.append(CheckResult("constant", _where(key), True, "no constant answer applies"))
            continue
        best = max(scores, key=scores.get)
        units = max(1, task.scored_units(items))
        shortcut, p_value = constant_shortcut(scores[best], units, chance, tries=len(scores))
        ok = not shortcut
        detail = (f"best constant {best!r}: {scores[best]:.3f} vs chance {chance:.3f} (p={p_value:.2g} one-sided "
                  f"binomial over {units} units, Bonferroni x{len(scores)}; fails above +{MARGIN:.2f} at p < {ALPHA})")
        results.append(CheckResult("constant", _where(key), ok, detail))
    return results


@register_check("determinism")
def check_determinism(context: CheckContext) -> list[CheckResult]:
    from babyvlm.plugins.devcv.runner import MANIFEST, BuildRequest, build_tasks

    if not context.rebuild:
        return []
    results = []
    for domain, folder in context.folders.items():
        if not (folder / MANIFEST).is_file():
            results.append(CheckResult("determinism", domain, True, "no manifest (released files): not rebuilt"))
            continue
        manifest = load_json(folder / MANIFEST)
        names = sorted({name for d, name, _ in context.loaded if d == domain})
        with tempfile.TemporaryDirectory(prefix="devcv-rebuild-") as scratch:
            for name in names:
                entry = manifest["tasks"][name]
                request = BuildRequest(source=manifest["source"], root=manifest["root"], out=scratch, domain=domain,
                                       tasks=[name], splits=sorted(entry["splits"]), seed=manifest["seed"],
                                       source_options=manifest.get("source_options", {}),
                                       split_fractions=manifest.get("split_fractions") or {},
                                       task_options=entry.get("options", {}))
                build_tasks(request, log=lambda line: None)
                task = context.tasks[name]
                differing = [split for split in entry["splits"]
                             if _files_digest(task, folder, split) != _files_digest(task, Path(scratch) / domain, split)]
                results.append(CheckResult("determinism", f"{domain}/{name}", not differing,
                                           "rebuilt byte-identical" if not differing else
                                           f"rebuilt files differ for splits {differing}"))
    return results


def _files_digest(task: Any, folder: Path, split: str) -> str:
    """The item file and every image it names, hashed together."""
    digest = hashlib.sha256()
    path = task.item_path(folder, split)
    digest.update(path.read_bytes())
    for item in task.load(folder, split):
        for data in item.images:
            digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


@register_check("baselines")
def check_baselines(context: CheckContext) -> list[CheckResult]:
    """The ``random`` baseline scores near chance on each test split, and the real ``blind`` adapter passes
    nothing of the pictures on (``babyvlm.plugins.evaluation.baselines``)."""
    from babyvlm.plugins.evaluation.baselines import baseline_checks, blind_leak_checks

    results = []
    for check in baseline_checks(context.root, tasks=sorted(context.tasks)) + blind_leak_checks(context.loaded,
                                                                                                context.tasks):
        where = f"{check['domain']}/{check['task']}/test"
        results.append(CheckResult(check["check"], where, check["passed"] is not False, check["detail"]))
    return results


@register_check("shortcuts")
def check_shortcuts(context: CheckContext) -> list[CheckResult]:
    """The shortcut probes (``probes.py``) on every test split (every split of a released folder): fit on
    the same domain's train split, else another domain's, else cross-validated; a probe beating chance by
    more than ``probes.MARGIN`` with one-sided binomial p < ``probes.ALPHA`` fails, naming itself."""
    from babyvlm.plugins.devcv.probes import run_probes

    results = []
    for (domain, name, split), items in sorted(context.loaded.items()):
        if split != "test" or not items:
            continue
        task = context.tasks[name]
        train_key = next((key for key in [(domain, name, "train")] + sorted(context.loaded)
                          if key[1:] == (name, "train") and context.loaded.get(key)), None)
        train = context.loaded[train_key] if train_key else None
        for outcome in run_probes(task, items, train, "/".join(train_key) if train_key else "", seed=0):
            results.append(CheckResult(f"probe:{outcome.probe}", _where((domain, name, split)), not outcome.failed,
                                       outcome.describe()))
    return results
