"""The random and blind baseline checks ``babyvlm tasks check`` runs on a task folder.

``random_near_chance``: the seeded ``random`` adapter's primary score lies within the margin of the
task's chance level (a task where random guessing does better or worse has a wrong chance level or
biased scoring). ``blind_near_chance``: ``blind(model)`` for a given model (a checkpoint: does the text
alone give the answers away?) also lies within the margin. The test is stated: a two-sided binomial test
of the score's hits over the task's items against the chance rate fails at p < ``alpha`` (0.001: a check
run tests a few dozen entries, and a wrong chance level or a biased scorer moves the score far more).

``blind_is_blind`` (``blind_leak_checks``): every request of every item goes through the real ``blind``
adapter; what it passes on must be one constant picture in every slot, or else the image-statistics shortcut
probe, fit and scored on the blinded items, must not beat chance — a blank that kept anything of the real
picture (its mean colour, say) fails here. (On one constant picture that probe can only learn the answer
prior, which is the majority probe's business, so it is shown but does not decide.)
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from babyvlm import registry
from babyvlm.core.records import TaskItem


def baseline_checks(data_dir: str | os.PathLike, tasks: Sequence[str] | str = "all", model: Any = "random",
                    out_dir: str | os.PathLike | None = None, mode: str = "loglikelihood", split: str = "test",
                    seed: int = 0, alpha: float = 0.001, limit: int | None = None) -> list[dict[str, Any]]:
    """One dict per (domain, task, check): ``check``, ``task``, ``domain``, ``score``, ``chance``,
    ``margin``, ``n``, ``passed``, ``detail``."""
    evaluator = registry.build("evaluator", "devcv")
    random_spec = dict(type="random", seed=seed)
    with tempfile.TemporaryDirectory(prefix="babyvlm-baselines-") as scratch:
        root = Path(out_dir) if out_dir is not None else Path(scratch)
        runs = {"random_near_chance": evaluator.evaluate(random_spec, tasks, data_dir, root / "random", mode=mode,
                                                         split=split, limit=limit, seed=seed, log=_quiet)}
        if model != "random":  # blind(random) is random again: only a real model says something here
            runs["blind_near_chance"] = evaluator.evaluate(dict(type="blind", adapter=model), tasks, data_dir,
                                                           root / "blind", mode=mode, split=split, limit=limit,
                                                           seed=seed, log=_quiet)
    checks = []
    for check, summary in runs.items():
        for domain, data in summary["domains"].items():
            for name, task in data["tasks"].items():
                checks.append(_check(check, domain, name, task, alpha))
    return checks


def blind_leak_checks(loaded: Mapping[tuple[str, str, str], Sequence[TaskItem]], tasks: Mapping[str, Any],
                      seed: int = 0, blank: str = "grey") -> list[dict[str, Any]]:
    """``blind_is_blind`` per test split (see the module docstring): ``loaded`` maps (domain, task, split)
    to items, ``tasks`` task names to tasks; ``blank`` is the blind adapter's (its default, or the named
    ``mean_colour`` option, which this check shows leaking)."""
    from babyvlm.plugins.devcv.probes import run_probes
    from babyvlm.plugins.evaluation.blind_adapter import BlindAdapter

    blind = BlindAdapter(adapter=dict(type="random", seed=seed), blank=blank)
    checks = []
    for (domain, name, split), items in sorted(loaded.items()):
        if split != "test" or not items:
            continue
        task = tasks[name]
        requests = [request for item in items for request in task.requests(item, "loglikelihood")]
        seen = {hashlib.sha256(image).hexdigest() for request in blind.blinded(requests) for image in request.images}
        train = next((v for (d, n, s), v in sorted(loaded.items()) if (n, s) == (name, "train") and v), None)
        probe = next(o for o in run_probes(task, _blinded(blind, items), _blinded(blind, train) if train else None,
                                           "blinded train split" if train else "", seed, only=("image_stats",)))
        # one constant picture carries nothing of the real ones: whatever the probe scores then is the answer
        # prior, which the majority probe judges; with several pictures the probe must find nothing in them
        passed = len(seen) <= 1 or not probe.failed
        detail = (f"{len(seen)} distinct picture(s) reach the model over {len(requests)} requests; "
                  f"on what it sees: {probe.describe()}")
        checks.append(dict(check="blind_is_blind", task=name, domain=domain, passed=passed, detail=detail))
    return checks


def _blinded(blind: Any, items: Sequence[TaskItem]) -> list[TaskItem]:
    return [replace(item, images=[blind.blank_of(image, f"{item.task} item {item.item_id}") for image in item.images])
            for item in items]


def _check(check: str, domain: str, name: str, task: dict[str, Any], alpha: float) -> dict[str, Any]:
    from scipy.stats import binomtest

    score, chance, n = task["metrics"].get(task["primary_metric"]), task["chance"], task["n"]
    if not isinstance(score, (int, float)) or chance is None:
        return dict(check=check, task=name, domain=domain, score=score, chance=chance, p_value=None, n=n,
                    passed=None, detail=f"{task['primary_metric']} unavailable ({score!r}); not checked")
    units = max(1, int(n))
    hits = min(units, max(0, round(float(score) * units)))
    p_value = float(binomtest(hits, units, min(max(float(chance), 1e-9), 1.0), alternative="two-sided").pvalue)
    passed = p_value >= alpha
    detail = (f"{task['primary_metric']} {score:.3f} vs chance {chance:.3f} (two-sided binomial p={p_value:.2g}, "
              f"n={n}; fails at p < {alpha})"
              + ("" if passed else ": check the chance level, gold balance and scoring"))
    return dict(check=check, task=name, domain=domain, score=float(score), chance=float(chance), p_value=p_value,
                n=n, passed=passed, detail=detail)


def _quiet(message: str) -> None:
    del message
