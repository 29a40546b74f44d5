"""Item-level human–model alignment (DevBench's method) over an exported human study.

For every item that both the model and the participants answered, the model's option scores (negative
mean token losses) pass through a softmax with one temperature per task; the temperature is fitted to
minimise the mean KL divergence KL(human response distribution ‖ model distribution) over the task's
items, and that minimum and the temperature are reported. Beside it: the item-level Spearman
correlation between human accuracy and the model's probability of the gold option (at the fitted
temperature; without option scores, the model's 0/1 correctness). The evaluation engine calls
``compare_with_humans`` for ``babyvlm eval --compare-human DIR``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from babyvlm.core.errors import DataError
from babyvlm.core.io import load_json
from babyvlm.core.records import SkipReport

HUMAN_ITEMS_FILE = "human_items.json"  # what ``babyvlm study export`` writes: per-item response distributions
LOG_TEMPERATURE_BOUNDS = (math.log(1e-3), math.log(1e3))
GOLDEN = (math.sqrt(5) - 1) / 2


def load_human_items(human_dir: str | os.PathLike) -> dict[str, dict[str, dict[str, Any]]]:
    """``{task: {item_id: {"counts": {response: n}, "n": int, "gold": str, "accuracy": float}}}``."""
    path = Path(human_dir) / HUMAN_ITEMS_FILE
    if not path.is_file():
        raise DataError(f"{human_dir}: no {HUMAN_ITEMS_FILE} (write one with `babyvlm study export DB --out DIR`)")
    data = load_json(path)
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, dict):
        raise DataError(f"{path}: expected an object with key 'tasks' mapping task -> item_id -> distribution")
    for task, items in tasks.items():
        if not isinstance(items, dict):
            raise DataError(f"{path}: tasks[{task!r}] must map item ids to distributions")
        for item_id, entry in items.items():
            counts = entry.get("counts") if isinstance(entry, dict) else None
            if not isinstance(counts, dict) or not all(isinstance(v, int) and v >= 0 for v in counts.values()):
                raise DataError(f"{path}: tasks[{task!r}][{item_id!r}]['counts'] must map responses to counts >= 0")
    return tasks


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    scaled = scores / temperature
    scaled = scaled - scaled.max()
    weights = np.exp(scaled)
    return weights / weights.sum()


def kl_divergence(human: np.ndarray, model: np.ndarray) -> float:
    """KL(human ‖ model) in nats; options no participant chose contribute nothing."""
    chosen = human > 0
    return float(np.sum(human[chosen] * (np.log(human[chosen]) - np.log(np.maximum(model[chosen], 1e-300)))))


def mean_kl(pairs: Sequence[tuple[np.ndarray, np.ndarray]], temperature: float) -> float:
    return float(np.mean([kl_divergence(human, softmax(scores, temperature)) for human, scores in pairs]))


def fit_temperature(pairs: Sequence[tuple[np.ndarray, np.ndarray]], tolerance: float = 1e-7) -> tuple[float, float]:
    """(temperature, mean KL) minimising the mean KL over ``(human distribution, model scores)`` pairs.

    A coarse grid over log-temperature finds the basin (the objective need not be convex in T), then a
    golden-section search refines it; the search is bounded to T in [1e-3, 1e3].
    """
    low, high = LOG_TEMPERATURE_BOUNDS
    grid = np.linspace(low, high, 61)
    values = [mean_kl(pairs, math.exp(x)) for x in grid]
    best = int(np.argmin(values))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    c, d = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
    fc, fd = mean_kl(pairs, math.exp(c)), mean_kl(pairs, math.exp(d))
    for _ in range(200):  # bounded: the interval shrinks by 0.618 per step
        if b - a < tolerance:
            break
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - GOLDEN * (b - a)
            fc = mean_kl(pairs, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + GOLDEN * (b - a)
            fd = mean_kl(pairs, math.exp(d))
    x = (a + b) / 2
    return math.exp(x), mean_kl(pairs, math.exp(x))


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n with ties sharing their mean rank (what Spearman's rho needs)."""
    array = np.asarray(values, dtype=float)
    order = np.argsort(array, kind="mergesort")
    ranks = np.empty(len(array))
    position = 0
    while position < len(array):
        end = position
        while end + 1 < len(array) and array[order[end + 1]] == array[order[position]]:
            end += 1
        ranks[order[position:end + 1]] = (position + end) / 2 + 1
        position = end + 1
    return ranks


def spearman(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Spearman's rho (Pearson on average ranks); None for fewer than 3 items or a constant side."""
    if len(first) < 3:
        return None
    x, y = average_ranks(first), average_ranks(second)
    x, y = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(np.sum(x * x) * np.sum(y * y)))
    return None if denominator == 0 else float(np.sum(x * y) / denominator)


def _option_pair(sample: Mapping[str, Any], human: Mapping[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """The options both sides know, the human distribution over them and the model's scores (-loss)."""
    losses = sample.get("option_losses")
    if not isinstance(losses, Mapping) or not losses:
        return None
    options = [str(option) for option in losses]
    counts = np.array([human["counts"].get(option, 0) for option in options], dtype=float)
    if len(options) < 2 or counts.sum() == 0:
        return None
    scores = np.array([-float(losses[option]) for option in options])
    if not np.all(np.isfinite(scores)):
        return None
    return options, counts / counts.sum(), scores


def _human_accuracy(entry: Mapping[str, Any]) -> float:
    if isinstance(entry.get("accuracy"), (int, float)):
        return float(entry["accuracy"])
    total = sum(entry["counts"].values())
    return entry["counts"].get(str(entry.get("gold")), 0) / total if total else 0.0


def align_task(samples: Sequence[Mapping[str, Any]], human_items: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Alignment figures for one task (see the module docstring)."""
    report = SkipReport()
    scored: list[tuple[Mapping[str, Any], Mapping[str, Any], list[str], np.ndarray, np.ndarray]] = []
    matched: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = []
    for sample in samples:
        item_id = str(sample.get("item_id"))
        human = human_items.get(item_id)
        if human is None or not sum(human["counts"].values()):
            report.skip("no_human_responses", item_id)
            continue
        matched.append((sample, human))
        pair = _option_pair(sample, human)
        if pair is not None:
            scored.append((sample, human, *pair))
    result: dict[str, Any] = {"kl": None, "temperature": None, "spearman": None, "n_items": len(matched),
                              "basis": None, "human_accuracy": None, "skipped": report.to_dict()}
    if not matched:
        return result
    result["human_accuracy"] = float(np.mean([_human_accuracy(human) for _, human in matched]))
    if scored and len(scored) == len(matched):
        temperature, kl = fit_temperature([(human_dist, scores) for *_, human_dist, scores in scored])
        gold_probability = [_gold_probability(sample, options, scores, temperature)
                            for sample, _, options, _, scores in scored]
        result.update(kl=kl, temperature=temperature, basis="option_losses",
                      spearman=spearman([_human_accuracy(h) for _, h, *_ in scored], gold_probability))
    else:  # generation-scored (or partly unscored) items: no option probabilities, correctness only
        for sample, _ in matched:
            if not isinstance(sample.get("option_losses"), Mapping):
                report.skip("no_option_losses", str(sample.get("item_id")))
        correct = [1.0 if sample.get("correct") else 0.0 for sample, _ in matched]
        result.update(basis="correct", skipped=report.to_dict(),
                      spearman=spearman([_human_accuracy(h) for _, h in matched], correct))
    return result


def _gold_probability(sample: Mapping[str, Any], options: list[str], scores: np.ndarray, temperature: float) -> float:
    gold = str(sample.get("target"))
    probabilities = softmax(scores, temperature)
    return float(probabilities[options.index(gold)]) if gold in options else 0.0


def compare_with_humans(samples_by_task: Mapping[str, Sequence[Mapping[str, Any]]],
                        human_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Per task: ``{"kl", "temperature", "spearman", "n_items", "basis", "human_accuracy", "skipped"}``.

    ``samples_by_task``: per task, the model's per-item dicts (``item_id``, ``target``, ``parsed``,
    ``correct`` and, when scored by likelihood, ``option_losses`` ``{option: mean token loss}``).
    Tasks the study did not include are left out; ``kl``/``temperature`` are None where the items carry
    no option losses (``basis`` says which figures were computed).
    """
    human = load_human_items(human_dir)
    return {task: align_task(samples, human[task]) for task, samples in samples_by_task.items() if task in human}
