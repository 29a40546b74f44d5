"""The random and blind baseline checks ``babyvlm tasks check`` runs on a task folder.

``random_near_chance``: the seeded ``random`` adapter's primary score lies within the margin of the
task's chance level (a task where random guessing does better or worse has a wrong chance level or
biased scoring). ``blind_near_chance``: ``blind(model)`` (``model`` defaults to ``random``; give a
checkpoint to ask whether the text alone gives the answers away) also lies within the margin. The
margin is ``z`` binomial standard errors of the chance rate at the task's item count, plus ``slack``.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from babyvlm import registry


def baseline_checks(data_dir: str | os.PathLike, tasks: Sequence[str] | str = "all", model: Any = "random",
                    out_dir: str | os.PathLike | None = None, mode: str = "loglikelihood", split: str = "test",
                    seed: int = 0, z: float = 3.5, slack: float = 0.02, limit: int | None = None) -> list[dict[str, Any]]:
    """One dict per (domain, task, check): ``check``, ``task``, ``domain``, ``score``, ``chance``,
    ``margin``, ``n``, ``passed``, ``detail``."""
    evaluator = registry.build("evaluator", "devcv")
    random_spec = dict(type="random", seed=seed)
    blind_spec = dict(type="blind", adapter=random_spec if model == "random" else model)
    with tempfile.TemporaryDirectory(prefix="babyvlm-baselines-") as scratch:
        root = Path(out_dir) if out_dir is not None else Path(scratch)
        runs = {"random_near_chance": evaluator.evaluate(random_spec, tasks, data_dir, root / "random", mode=mode,
                                                         split=split, limit=limit, seed=seed, log=_quiet),
                "blind_near_chance": evaluator.evaluate(blind_spec, tasks, data_dir, root / "blind", mode=mode,
                                                        split=split, limit=limit, seed=seed, log=_quiet)}
    checks = []
    for check, summary in runs.items():
        for domain, data in summary["domains"].items():
            for name, task in data["tasks"].items():
                checks.append(_check(check, domain, name, task, z, slack))
    return checks


def _check(check: str, domain: str, name: str, task: dict[str, Any], z: float, slack: float) -> dict[str, Any]:
    score, chance, n = task["metrics"].get(task["primary_metric"]), task["chance"], task["n"]
    if not isinstance(score, (int, float)) or chance is None:
        return dict(check=check, task=name, domain=domain, score=score, chance=chance, margin=None, n=n,
                    passed=None, detail=f"{task['primary_metric']} unavailable ({score!r}); not checked")
    margin = z * math.sqrt(chance * (1 - chance) / max(1, n)) + slack
    passed = abs(score - chance) <= margin
    detail = (f"{task['primary_metric']} {score:.3f} vs chance {chance:.3f} (margin {margin:.3f}, n={n})"
              + ("" if passed else ": outside the margin; check the chance level, gold balance and scoring"))
    return dict(check=check, task=name, domain=domain, score=float(score), chance=float(chance), margin=margin,
                n=n, passed=passed, detail=detail)


def _quiet(message: str) -> None:
    del message
