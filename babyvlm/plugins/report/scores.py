"""The scoreboard: evaluation results (lmms-eval style) -> per-entry scores with 95% CIs, chance, overall.

Input, per domain and per adapter role (``model``, ``blind``, ``random``, ``oracle``, ``human``, or any
other name): an lmms-eval results object — ``{"results": {entry: {"<metric>,none": x,
"<metric>_stderr,none": se}}, "n-samples": {entry: {"effective": n}}}`` — given as a dict, as the path
of a ``<date>_results.json`` file, or as a folder holding such files (the newest by name is read).

The overall score is the DevCV leaderboard's: the mean of the 11 entries' primary metrics, an entry
that is missing counting 0. Scores are fractions (0..1) here; the documents show percentages.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babyvlm.core.errors import DataError
from babyvlm.core.io import load_json


def leaderboard_primary() -> dict[str, str]:
    """The leaderboard's scored entries, in its order, with each entry's primary metric (the tasks'
    own facts: ``evaluation.metrics.leaderboard_tasks``)."""
    from babyvlm.plugins.evaluation.metrics import leaderboard_tasks

    return {name: task.primary_metric for name, task in leaderboard_tasks().items()}


def published_chance() -> dict[str, float]:
    """Chance of each entry's primary metric for the released answer spaces, as the tasks state it; a
    run's own tasks (which may use other answer spaces) pass theirs in ``results["chance"]``, which wins."""
    from babyvlm.plugins.evaluation.metrics import leaderboard_tasks

    return {name: float(task.published_chance) for name, task in leaderboard_tasks().items()
            if task.published_chance is not None}

# two different controls: the blind twin (the same recipe trained on blank images, tested on them: what
# `babyvlm run` evaluates as role "blind") and blind at test (the same model shown blank images at test only:
# `babyvlm eval --with-blind`). A board compares the model with the twin when it has one.
BLIND_TWIN, BLIND_AT_TEST = "blind", "blind_at_test"
BLIND_LABELS = {BLIND_TWIN: "blind twin", BLIND_AT_TEST: "blind at test"}
ROLE_ORDER = ("model", BLIND_TWIN, BLIND_AT_TEST, "random", "oracle", "human")
DOMAIN_LABELS = {"in_domain": "in-domain", "out_of_domain": "out-of-domain", "saycam": "in-domain (SAYCam)",
                 "ego4d": "out-of-domain (Ego4D)"}
IN_DOMAIN = ("in_domain", "saycam")
Z_95 = 1.959964


@dataclass(frozen=True)
class Score:
    """One primary-metric value with its standard error (None when the results gave none)."""

    value: float
    stderr: float | None = None
    n: int | None = None
    interval: tuple[float, float] | None = None  # a CI the results file gives (e.g. a bootstrap's)
    metric: str = ""  # the metric this is a value of

    @property
    def ci(self) -> tuple[float, float] | None:
        """The results file's 95% CI when it has one, else score ± 1.96 stderr (clipped to 0..1)."""
        if self.interval is not None:
            return self.interval
        if self.stderr is None:
            return None
        half = Z_95 * self.stderr
        return max(0.0, self.value - half), min(1.0, self.value + half)


@dataclass
class DomainBoard:
    """Every role's primary-metric score per entry, for one domain."""

    domain: str
    scores: dict[str, dict[str, Score]] = field(default_factory=dict)  # role -> entry -> score
    sources: dict[str, str] = field(default_factory=dict)  # role -> where its results came from

    @property
    def roles(self) -> list[str]:
        known = [role for role in ROLE_ORDER if role in self.scores]
        return known + sorted(role for role in self.scores if role not in ROLE_ORDER)

    @property
    def label(self) -> str:
        return DOMAIN_LABELS.get(self.domain, self.domain.replace("_", " "))


@dataclass
class Scoreboard:
    """All domains, the entries shown (leaderboard ones first), their metrics and chance levels."""

    domains: list[DomainBoard]
    entries: list[str]
    primary: dict[str, str]
    chance: dict[str, float | None]
    chance_source: dict[str, str]
    leaderboard: tuple[str, ...] = field(default_factory=lambda: tuple(leaderboard_primary()))

    def overall(self, domain: DomainBoard, role: str) -> Score:
        """Mean of the leaderboard entries' primary metrics (a missing entry counts 0)."""
        scores = domain.scores.get(role, {})
        values = [scores[e].value if e in scores else 0.0 for e in self.leaderboard]
        errors = [scores[e].stderr for e in self.leaderboard if e in scores]
        stderr = None
        if errors and all(se is not None for se in errors):
            stderr = math.sqrt(sum(se * se for se in errors)) / len(self.leaderboard)
        return Score(sum(values) / len(self.leaderboard), stderr)

    def overall_chance(self) -> float | None:
        levels = [self.chance.get(e) for e in self.leaderboard]
        return None if any(c is None for c in levels) else sum(levels) / len(levels)

    def missing(self, domain: DomainBoard, role: str) -> list[str]:
        return [e for e in self.leaderboard if e not in domain.scores.get(role, {})]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: per domain, per entry, per role ``{"score", "stderr", "ci", "n"}``, and overall."""
        out: dict[str, Any] = {"entries": self.entries, "primary": self.primary, "chance": self.chance,
                               "chance_source": self.chance_source, "domains": {}}
        for board in self.domains:
            rows = {entry: {role: _score_dict(board.scores[role][entry]) for role in board.roles
                            if entry in board.scores[role]} for entry in self.entries}
            out["domains"][board.domain] = {
                "entries": rows,
                "overall": {role: _score_dict(self.overall(board, role)) for role in board.roles},
                "missing": {role: self.missing(board, role) for role in board.roles},
                "flags": {entry: flag for entry in self.entries if (flag := blind_flag(board, entry))},
                "sources": board.sources,
            }
        return out


def _score_dict(score: Score) -> dict[str, Any]:
    return {"score": score.value, "stderr": score.stderr, "ci": list(score.ci) if score.ci else None, "n": score.n}


def blind_role(board: DomainBoard) -> str | None:
    """The blind control a board compares the model with: its blind twin, else blind at test, else None."""
    return next((role for role in (BLIND_TWIN, BLIND_AT_TEST) if role in board.scores), None)


def blind_flag(board: DomainBoard, entry: str) -> str | None:
    """``"within"`` when the model's score lies inside its blind control's 95% CI (answer priors, not
    vision), ``"below"`` when under it; None when the model is above it or either score is missing."""
    model = board.scores.get("model", {}).get(entry)
    blind = board.scores.get(blind_role(board) or BLIND_TWIN, {}).get(entry)
    if model is None or blind is None:
        return None
    return compare_to_blind(model, blind)


def compare_to_blind(model: Score, blind: Score) -> str | None:
    """``"within"``/``"below"`` the blind twin's 95% CI, else None. A blind score without a CI of its own
    (one embedded in the model's results) gets the model's CI widths around it."""
    if blind.ci is not None:
        low, high = blind.ci
    elif model.ci is not None:
        low, high = blind.value - (model.value - model.ci[0]), blind.value + (model.ci[1] - model.value)
    else:
        low = high = blind.value
    if model.value < low:
        return "below"
    if model.value <= high:
        return "within"
    return None


# ---- reading ---------------------------------------------------------------------------------------
def read_results(value: Any, where: str) -> tuple[dict[str, Any], str]:
    """An lmms-eval results object from a dict, a ``*_results.json`` path or a folder of them, with a
    description of where it came from."""
    if isinstance(value, Mapping):
        return dict(value), "given"
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if path.is_dir():
            found = sorted(path.glob("*_results.json"))
            if not found:
                raise DataError(f"{where}: folder {path} holds no *_results.json file")
            path = found[-1]
        data = load_json(path)
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected a JSON object with 'results', got {type(data).__name__}")
        return data, str(path)
    raise DataError(f"{where}: expected a results dict, a *_results.json path or a folder, got {value!r}")


def entry_scores(data: Mapping[str, Any], where: str, primary: Mapping[str, str]) -> dict[str, Score]:
    """``entry -> Score`` of each entry's primary metric from an lmms-eval results object (the entry's own
    ``primary_metric`` when it names one, else the leaderboard's)."""
    scores: dict[str, Score] = {}
    for entry, metrics in _results_of(data, where).items():
        metric = _primary_of(entry, metrics, primary)
        if metric is None:
            continue
        key = f"{metric},none"
        if key not in metrics:
            raise DataError(f"{where}: results[{entry!r}] has no {key!r} (its primary metric); "
                            f"it has {', '.join(sorted(metrics))}")
        value = _fraction(metrics[key], f"{where}: results[{entry!r}][{key!r}]")
        stderr = metrics.get(f"{metric}_stderr,none")
        stderr = None if stderr in (None, "N/A") else _number(stderr, f"{where}: results[{entry!r}] stderr")
        interval = _interval(metrics.get(f"{metric}_ci95,none"), f"{where}: results[{entry!r}] ci95")
        samples = data.get("n-samples") if isinstance(data.get("n-samples"), Mapping) else {}
        scores[entry] = Score(value, stderr, _sample_count(samples.get(entry), metrics), interval, metric)
    return scores


def embedded(data: Mapping[str, Any], where: str, primary: Mapping[str, str]) -> tuple[dict[str, float], dict[str, Score]]:
    """What ``babyvlm eval`` writes beside each score: the task's chance (``"chance,none"``) and, run
    ``--with-blind``, its score blind at test (``"blind_at_test_<metric>,none"``; older files:
    ``"blind_<metric>,none"``)."""
    chance, blind = {}, {}
    for entry, metrics in _results_of(data, where).items():
        if metrics.get("chance,none") is not None:
            chance[entry] = _fraction(metrics["chance,none"], f"{where}: results[{entry!r}]['chance,none']")
        metric = _primary_of(entry, metrics, primary)
        for key in (f"{BLIND_AT_TEST}_{metric},none", f"blind_{metric},none"):
            if metrics.get(key) is not None:
                blind[entry] = Score(_fraction(metrics[key], f"{where}: results[{entry!r}][{key!r}]"), metric=metric)
                break
    return chance, blind


def _results_of(data: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    results = data.get("results")
    if not isinstance(results, Mapping):
        raise DataError(f"{where}: no 'results' object (lmms-eval style: results[task]['<metric>,none'])")
    for entry, metrics in results.items():
        if not isinstance(metrics, Mapping):
            raise DataError(f"{where}: results[{entry!r}] must be an object of metrics, got {metrics!r}")
    return results


def _primary_of(entry: str, metrics: Mapping[str, Any], primary: Mapping[str, str]) -> str | None:
    own = metrics.get("primary_metric")
    return own if isinstance(own, str) and own else (primary.get(entry) or _first_metric(metrics))


def _interval(value: Any, where: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise DataError(f"{where}: expected [low, high], got {value!r}")
    low, high = (_number(v, where) for v in value)
    return low, high


def _first_metric(metrics: Mapping[str, Any]) -> str | None:
    names = [k.split(",", 1)[0] for k in metrics if k.endswith(",none") and "_stderr," not in k]
    return "acc" if "acc" in names else (names[0] if names else None)


def _sample_count(samples: Any, metrics: Mapping[str, Any]) -> int | None:
    if isinstance(samples, Mapping):
        count = samples.get("effective", samples.get("original"))
        return int(count) if isinstance(count, int) else None
    count = metrics.get("n-samples", metrics.get("samples"))
    return int(count) if isinstance(count, int) else None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise DataError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _fraction(value: Any, where: str) -> float:
    number = _number(value, where)
    if not 0.0 <= number <= 1.0:
        raise DataError(f"{where}: expected a score between 0 and 1, got {number!r}")
    return number


def build_scoreboard(evaluations: Mapping[str, Any], chance: Mapping[str, Any] | None = None,
                     primary: Mapping[str, str] | None = None, lookup_tasks: bool = True) -> Scoreboard:
    """The scoreboard of ``evaluations`` (``{domain: {role: results}}``).

    Chance per entry: ``chance`` (entry -> fraction) first, then what the results files state
    (``"chance,none"``), then a registered task's ``chance()`` (when ``lookup_tasks``), then the published
    chance of the released answer space. A domain without a ``blind_at_test`` role takes the scores blind at
    test embedded in the model's results (``"blind_at_test_<metric>,none"``), when there are any.
    """
    if not isinstance(evaluations, Mapping):
        raise DataError(f"results['evaluations'] must be {{domain: {{role: results}}}}, got {evaluations!r}")
    board_primary = leaderboard_primary()
    primary = {**board_primary, **dict(primary or {})}
    boards, stated = [], {}
    for domain in sorted(evaluations, key=lambda d: (d not in IN_DOMAIN, d)):
        roles = evaluations[domain]
        if not isinstance(roles, Mapping):
            raise DataError(f"results['evaluations'][{domain!r}] must map roles (model, blind, ...) to results")
        board = DomainBoard(str(domain))
        for role, value in roles.items():
            where = f"results['evaluations'][{domain!r}][{role!r}]"
            data, source = read_results(value, where)
            where = where if source == "given" else source
            board.scores[str(role)] = entry_scores(data, where, primary)
            board.sources[str(role)] = source
            levels, twin = embedded(data, where, primary)
            stated = {**levels, **stated}
            if role == "model" and twin and BLIND_AT_TEST not in roles:
                board.scores[BLIND_AT_TEST], board.sources[BLIND_AT_TEST] = twin, f"{source} (blind at test, embedded)"
        boards.append(board)
    seen = {entry for board in boards for scores in board.scores.values() for entry in scores}
    entries = list(board_primary) + sorted(seen - set(board_primary))
    levels, origin = chance_levels(entries, {**stated, **dict(chance or {})}, lookup_tasks)
    used = {e: primary.get(e) or "acc" for e in entries}
    for board in boards:  # the metric the results actually gave (an entry's own primary_metric)
        for scores in board.scores.values():
            used.update({entry: score.metric for entry, score in scores.items() if score.metric})
    return Scoreboard(boards, entries, used, levels, origin, tuple(board_primary))


def expand_evaluation_dirs(dirs: Mapping[str, Any]) -> dict[str, dict[str, Path]]:
    """``{role: OUT}`` (each ``babyvlm eval --out OUT`` folder, one sub-folder per domain) ->
    ``{domain: {role: OUT/domain}}``. The model's ``OUT/blind_at_test/<domain>`` (written by ``--with-blind``;
    ``OUT/blind`` by older versions) becomes the ``blind_at_test`` role, with its own CIs."""
    evaluations: dict[str, dict[str, Path]] = {}
    for role, folder in dirs.items():
        root = Path(folder)
        domains = _domain_folders(root)
        if not domains:
            raise DataError(f"results['evaluation_dirs'][{role!r}]: {root} holds no <domain>/<date>_results.json")
        for domain in domains:
            evaluations.setdefault(domain.name, {})[str(role)] = domain
        if role == "model" and BLIND_AT_TEST not in dirs:
            for domain in _domain_folders(root / BLIND_AT_TEST) or _domain_folders(root / "blind"):
                evaluations.setdefault(domain.name, {})[BLIND_AT_TEST] = domain
    return evaluations


def _domain_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("*_results.json")))


def chance_levels(entries: Sequence[str], given: Mapping[str, Any], lookup_tasks: bool
                  ) -> tuple[dict[str, float | None], dict[str, str]]:
    levels: dict[str, float | None] = {}
    origin: dict[str, str] = {}
    published = published_chance()
    for entry in entries:
        if entry in given:
            levels[entry], origin[entry] = _fraction(given[entry], f"results['chance'][{entry!r}]"), "run"
        elif lookup_tasks and (level := _registered_chance(entry)) is not None:
            levels[entry], origin[entry] = level, "task"
        elif entry in published:
            levels[entry], origin[entry] = published[entry], "published"
        else:
            levels[entry], origin[entry] = None, "unknown"
    return levels, origin


def _registered_chance(entry: str) -> float | None:
    """``chance()`` of a registered task of that name, when one builds without options."""
    from babyvlm import registry

    try:
        if entry not in registry.names("task"):
            return None
        level = float(registry.build("task", entry).chance())
    except Exception:  # a task that needs options (or is broken) simply gives no chance level here
        return None
    return level if 0.0 <= level <= 1.0 else None
