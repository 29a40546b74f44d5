"""Reading the non-evaluation parts of a run's results for the report: loss curves per phase, the DINO
k-NN probe and the developmental curve (an age sweep's ``sweep.json``). Anything malformed is a
``DataError`` naming the key; a phase without a loss curve is counted in the ``SkipReport``, not dropped
silently."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from babyvlm.core.errors import DataError
from babyvlm.core.io import load_json
from babyvlm.core.records import SkipReport


@dataclass
class Curve:
    """A named series of (step, value) points."""

    name: str
    steps: list[float]
    values: list[float]


def phase_records(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each phase as one flat dict: an ``Experiment`` phase keeps its trainer's numbers (``losses``,
    ``first_loss``, ``knn_probe``...) under ``metrics``; those are lifted beside ``name``/``seconds``."""
    phases = results.get("phases", [])
    if not isinstance(phases, Sequence) or isinstance(phases, (str, bytes)):
        raise DataError(f"results['phases'] must be a list of phase results, got {phases!r}")
    flat = []
    for number, phase in enumerate(phases):
        if not isinstance(phase, Mapping):
            raise DataError(f"results['phases'][{number}] must be an object, got {phase!r}")
        metrics = phase.get("metrics")
        flat.append({**(metrics if isinstance(metrics, Mapping) else {}), **phase})
    return flat


def phase_curves(results: Mapping[str, Any], skips: SkipReport) -> list[Curve]:
    """Each phase's training loss against step: ``phases[i]["losses"]`` as numbers (step = position + 1)
    or as ``{"step", "loss"}`` objects."""
    curves = []
    for number, phase in enumerate(phase_records(results)):
        name = str(phase.get("name", f"phase {number}"))
        losses = phase.get("losses")
        if not losses:
            skips.skip("phase_without_losses", f"results['phases'][{number}] ({name})")
            continue
        steps, values = _series(losses, "step", "loss", f"results['phases'][{number}]['losses']")
        curves.append(Curve(name, steps, values))
    return curves


def dino_probe(results: Mapping[str, Any]) -> tuple[Curve, float | None] | None:
    """The k-NN probe's accuracy over steps: ``results["dino_probe"]``, or the first phase holding a
    ``knn_probe``/``probe`` entry (in its ``metrics`` for an ``Experiment`` phase). One of: the ``dino``
    trainer's ``{"accuracy", "chance", "history": [{"step", "accuracy"}]}``, a list of ``{"step",
    "accuracy"}``, or ``{"steps", "accuracy", "chance"}``."""
    found, where = results.get("dino_probe"), "results['dino_probe']"
    if found is None:
        for number, phase in enumerate(phase_records(results)):
            for key in ("knn_probe", "probe"):
                if isinstance(phase, Mapping) and phase.get(key):
                    found, where = phase[key], f"results['phases'][{number}][{key!r}]"
                    break
            if found is not None:
                break
    if not found:
        return None
    chance = None
    if isinstance(found, Mapping) and "history" in found:  # the dino trainer's knn_probe: last result + history
        chance = _optional_fraction(found.get("chance"), f"{where}['chance']")
        points = found["history"]
        where = f"{where}['history']"
    elif isinstance(found, Mapping):
        chance = _optional_fraction(found.get("chance"), f"{where}['chance']")
        steps = found.get("steps")
        accuracy = found.get("accuracy")
        if not isinstance(steps, Sequence) or not isinstance(accuracy, Sequence) or len(steps) != len(accuracy):
            raise DataError(f"{where}: needs 'steps' and 'accuracy' lists of the same length")
        points = [{"step": s, "accuracy": a} for s, a in zip(steps, accuracy, strict=True)]
    else:
        points = found
        chances = [p.get("chance") for p in points if isinstance(p, Mapping) and p.get("chance") is not None]
        chance = _optional_fraction(chances[-1], f"{where}[-1]['chance']") if chances else None
    steps, values = _series(points, "step", "accuracy", where)
    return Curve("k-NN probe", steps, values), chance


def dino_checks(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per DINO phase (one whose metrics hold ``collapse``, ``collapse_warning`` or ``probe_trained``): its
    ``name``, ``collapse_warning`` (text or None) and the k-NN probe of the trained vs a random-init encoder
    (``probe_trained``, ``probe_random``, ``chance``; None where not measured)."""
    checks = []
    for number, phase in enumerate(phase_records(results)):
        if not any(phase.get(key) is not None for key in ("collapse", "collapse_warning", "probe_trained")):
            continue
        where = f"results['phases'][{number}]"
        warning = phase.get("collapse_warning")
        if warning is not None and not isinstance(warning, str):
            raise DataError(f"{where}['collapse_warning'] must be text or null, got {warning!r}")
        probe = phase.get("knn_probe") if isinstance(phase.get("knn_probe"), Mapping) else {}
        checks.append({"name": str(phase.get("name", f"phase {number}")), "collapse_warning": warning,
                       "probe_trained": _optional_fraction(phase.get("probe_trained"), f"{where}['probe_trained']"),
                       "probe_random": _optional_fraction(phase.get("probe_random"), f"{where}['probe_random']"),
                       "chance": _optional_fraction(probe.get("chance"), f"{where}['knn_probe']['chance']")})
    return checks


def developmental(results: Mapping[str, Any]) -> dict[str, Any] | None:
    """The age sweep (``results["developmental"]``: its ``sweep.json`` content, or that file's path)."""
    value = results.get("developmental")
    if value is None:
        return None
    where = "results['developmental']"
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        path = path / "sweep.json" if path.is_dir() else path
        value, where = load_json(path), str(path)
    if not isinstance(value, Mapping) or not isinstance(value.get("points"), list):
        raise DataError(f"{where}: expected an age sweep's sweep.json (an object with 'points')")
    for number, point in enumerate(value["points"]):
        if not isinstance(point, Mapping) or "label" not in point:
            raise DataError(f"{where}['points'][{number}]: expected an object with 'label'")
    return dict(value, kind=value.get("kind", "age"))


def _series(points: Any, x_key: str, y_key: str, where: str) -> tuple[list[float], list[float]]:
    if not isinstance(points, Sequence) or isinstance(points, (str, bytes)):
        raise DataError(f"{where}: expected a list, got {points!r}")
    xs, ys = [], []
    for index, point in enumerate(points):
        if isinstance(point, Mapping):
            if x_key not in point or y_key not in point:
                raise DataError(f"{where}[{index}]: needs {x_key!r} and {y_key!r}, got {dict(point)!r}")
            x, y = point[x_key], point[y_key]
        else:
            x, y = index + 1, point
        xs.append(_number(x, f"{where}[{index}]"))
        ys.append(_number(y, f"{where}[{index}]"))
    return xs, ys


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise DataError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _optional_fraction(value: Any, where: str) -> float | None:
    if value is None:
        return None
    number = _number(value, where)
    if not 0.0 <= number <= 1.0:
        raise DataError(f"{where}: expected a fraction between 0 and 1, got {number!r}")
    return number
