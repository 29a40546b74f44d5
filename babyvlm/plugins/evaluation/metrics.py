"""Uncertainty and the leaderboard's overall score.

``bootstrap`` resamples *clusters* of items with replacement (seeded) and recomputes the task's own
``aggregate`` on each resample, so every metric, including set-level ones (group score, adjusted memory
accuracy), gets a standard error (the resamples' standard deviation, lmms-eval's ``_stderr``) and a 95%
percentile interval. Items are not independent when they come from one recording or reuse one picture
(Memory reuses each crop across many items; Looking While Listening each frame), so the engine groups them
with ``babyvlm.core.clusters.cluster_items`` and resamples the groups. ``overall`` is the DevCV leaderboard's: the mean of the 11 entries' primary metrics, a
missing entry counting 0.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from babyvlm.core.contracts import LeaderboardTask
from babyvlm.core.errors import BabyVLMError
from babyvlm.core.records import Prediction, TaskItem


def leaderboard_tasks() -> dict[str, Any]:
    """The registered tasks that are scored entries of the leaderboard (``contracts.LeaderboardTask``
    with a ``leaderboard_position``), in its order: the tasks carry the facts, so a task plugin can
    join the leaderboard (or a bundled one leave it) without a list here. A task that cannot be built
    without options (or whose plugin is broken) is not an entry."""
    from babyvlm import registry

    placed = []
    for name in registry.names("task"):
        try:
            task = registry.build("task", name)
        except BabyVLMError:
            continue
        if isinstance(task, LeaderboardTask) and task.leaderboard_position is not None:
            placed.append((task.leaderboard_position, name, task))
    return {name: task for _, name, task in sorted(placed, key=lambda entry: entry[:2])}


def leaderboard_entries() -> tuple[str, ...]:
    """The leaderboard's scored entries (the 11 DevCV ones; ``baby_subitize`` is reported, not scored)."""
    return tuple(leaderboard_tasks())


def bootstrap(aggregate: Callable[[Sequence[TaskItem], Sequence[Prediction]], Mapping[str, float]],
              items: Sequence[TaskItem], predictions: Sequence[Prediction], resamples: int = 200,
              seed: int = 0, clusters: Sequence[int] | None = None) -> dict[str, dict[str, float]]:
    """``{metric: {"stderr", "ci_low", "ci_high"}}`` from ``resamples`` seeded resamples of the clusters
    (``clusters``: a label per item; default: each item its own)."""
    if not items or resamples < 2:
        return {}
    labels = list(clusters) if clusters is not None else list(range(len(items)))
    groups: dict[int, list[TaskItem]] = {}
    for label, item in zip(labels, items, strict=True):
        groups.setdefault(label, []).append(item)
    members = list(groups.values())
    by_id = {p.item_id: p for p in predictions}
    rng = random.Random(f"bootstrap:{seed}")
    draws: dict[str, list[float]] = {}
    for number in range(resamples):
        chosen = [item for _ in members for item in members[rng.randrange(len(members))]]
        # fresh ids, so a task that keys by id counts a twice-drawn item twice
        sample_items = [replace(item, item_id=f"{item.item_id}#{k}") for k, item in enumerate(chosen)]
        sample_predictions = [replace(by_id[item.item_id], item_id=f"{item.item_id}#{k}")
                              for k, item in enumerate(chosen) if item.item_id in by_id]
        for metric, value in aggregate(sample_items, sample_predictions).items():
            if _is_number(value):
                draws.setdefault(metric, []).append(float(value))
        del number
    return {metric: _summary(values) for metric, values in draws.items()}


def _summary(values: list[float]) -> dict[str, float]:
    mean = sum(values) / len(values)
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    ordered = sorted(values)
    return {"stderr": math.sqrt(variance), "ci_low": _quantile(ordered, 0.025), "ci_high": _quantile(ordered, 0.975)}


def _quantile(ordered: list[float], q: float) -> float:
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def overall(primary_by_entry: Mapping[str, float | None]) -> dict[str, Any]:
    """The leaderboard overall (mean of the 11 primaries, missing = 0) and the mean of those present."""
    entries = leaderboard_entries()
    present = {entry: float(v) for entry, v in primary_by_entry.items() if entry in entries and _is_number(v)}
    missing = [entry for entry in entries if entry not in present]
    evaluated = [float(v) for v in primary_by_entry.values() if _is_number(v)]
    return {"score": sum(present.values()) / len(entries) if entries else 0.0, "entries": len(present),
            "missing": missing, "mean_evaluated": sum(evaluated) / len(evaluated) if evaluated else None}
