"""The report's PNG plots, drawn with matplotlib's Agg backend (no display needed) and returned as bytes:
accuracy per entry (model vs blind twin vs random/oracle/human, with chance), loss curves per phase, the
DINO k-NN probe over steps, and sweep curves (accuracy against age, or per grid point)."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: never open a window, work on headless machines

import matplotlib.pyplot as plt  # noqa: E402

from babyvlm.plugins.report.scores import DomainBoard, Scoreboard  # noqa: E402

ROLE_COLOURS = {"model": "#1f77b4", "blind": "#7f7f7f", "blind_at_test": "#bcbd22", "random": "#d62728", "oracle": "#2ca02c",
                "human": "#9467bd"}
ROLE_LABELS = {"model": "model", "blind": "blind twin", "blind_at_test": "blind at test", "random": "random", "oracle": "oracle", "human": "human"}


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def short_entry(entry: str) -> str:
    return entry.removeprefix("baby_")


def accuracy_plot(board: Scoreboard, domain: DomainBoard) -> bytes:
    """Grouped bars per entry (each role's primary metric with its 95% CI) and chance as a black tick."""
    entries = [e for e in board.entries if any(e in domain.scores[r] for r in domain.roles)]
    roles = domain.roles
    figure, axes = plt.subplots(figsize=(max(6.0, 0.75 * len(entries) * max(1, len(roles)) / 2 + 2), 4.2))
    width = 0.8 / max(1, len(roles))
    for offset, role in enumerate(roles):
        xs, values, below, above = [], [], [], []
        for position, entry in enumerate(entries):
            score = domain.scores[role].get(entry)
            if score is None:
                continue
            low, high = score.ci or (score.value, score.value)  # the table's 95% CI, as whiskers
            xs.append(position - 0.4 + width * (offset + 0.5))
            values.append(100 * score.value)
            below.append(100 * max(0.0, score.value - low))
            above.append(100 * max(0.0, high - score.value))
        axes.bar(xs, values, width, yerr=[below, above], capsize=2, label=ROLE_LABELS.get(role, role),
                 color=ROLE_COLOURS.get(role))
    for position, entry in enumerate(entries):
        level = board.chance.get(entry)
        if level is not None:
            axes.hlines(100 * level, position - 0.45, position + 0.45, colors="black", linewidth=1.5,
                        label="chance" if position == 0 else None)
    axes.set_xticks(range(len(entries)), [short_entry(e) for e in entries], rotation=35, ha="right")
    axes.set_ylabel("primary metric (%)")
    axes.set_ylim(0, 125)  # headroom above 100 for the legend
    axes.set_yticks(range(0, 101, 20))
    axes.set_title(f"DevCV entries, {domain.label}")
    axes.legend(fontsize=8, ncol=len(roles) + 1, loc="upper left")
    return _png(figure)


def loss_plot(phases: Sequence[tuple[str, list[float], list[float]]]) -> bytes:
    """One panel per phase: training loss against step."""
    figure, axes = plt.subplots(1, len(phases), figsize=(3.6 * len(phases) + 0.6, 3.2), squeeze=False)
    for axis, (name, steps, losses) in zip(axes[0], phases, strict=True):
        axis.plot(steps, losses, linewidth=1.2)
        axis.set_title(name)
        axis.set_xlabel("step")
        axis.set_ylabel("loss")
    return _png(figure)


def probe_plot(steps: Sequence[float], accuracy: Sequence[float], chance: float | None) -> bytes:
    """The DINO k-NN probe's accuracy over training steps, with its chance level."""
    figure, axis = plt.subplots(figsize=(5.5, 3.4))
    axis.plot(steps, [100 * a for a in accuracy], marker="o", label="k-NN probe")
    if chance is not None:
        axis.axhline(100 * chance, color="black", linestyle="--", linewidth=1, label="chance")
    axis.set_xlabel("step")
    axis.set_ylabel("object-category accuracy (%)")
    axis.set_ylim(0, 100)
    axis.set_title("phase 0-vision: DINO k-NN probe")
    axis.legend(fontsize=8)
    return _png(figure)


def sweep_plot(sweep: Mapping[str, Any], domain: str = "in_domain") -> bytes:
    """An age sweep: each entry's model score (and overall, model vs blind) against age. A grid sweep:
    overall per point, every role side by side, with the overall chance."""
    points = [p for p in sweep["points"] if p.get("entries")]
    if sweep.get("kind") == "age":
        return _age_curve(sweep, points, domain)
    return _grid_bars(sweep, points)


def _age_curve(sweep: Mapping[str, Any], points: list[Mapping[str, Any]], domain: str) -> bytes:
    ages = [p["value"] for p in points]
    figure, axis = plt.subplots(figsize=(7.0, 4.2))
    entries = sorted({e for p in points for e, roles in p["entries"].get(domain, {}).items() if roles.get("model")})
    for entry in entries:
        values = [_score(p["entries"].get(domain, {}).get(entry, {}).get("model")) for p in points]
        axis.plot(ages, values, marker=".", linewidth=1, alpha=0.8, label=short_entry(entry))
    for role, style in (("model", "-"), ("blind", "--")):
        values = [_score(p["overall"].get(domain, {}).get(role)) for p in points]
        if any(v is not None for v in values):
            axis.plot(ages, values, style, color="black", linewidth=2.2, label=f"overall ({ROLE_LABELS[role]})")
    if sweep.get("overall_chance") is not None:
        axis.axhline(100 * sweep["overall_chance"], color="black", linestyle=":", linewidth=1, label="overall chance")
    axis.set_xticks(ages)
    axis.set_xlabel("training data up to age (months)")
    axis.set_ylabel(f"primary metric, {domain.replace('_', '-')} (%)")
    axis.set_ylim(0, 100)
    axis.set_title("developmental curve")
    axis.legend(fontsize=7, ncol=2, loc="upper left")
    return _png(figure)


def _grid_bars(sweep: Mapping[str, Any], points: list[Mapping[str, Any]]) -> bytes:
    domains = sorted({d for p in points for d in p["overall"]}, key=lambda d: (d not in ("in_domain", "saycam"), d))
    figure, axes = plt.subplots(1, max(1, len(domains)), figsize=(4.5 * max(1, len(domains)) + 1, 4.0), squeeze=False)
    for axis, domain in zip(axes[0], domains or ["in_domain"], strict=False):
        roles = [r for r in ROLE_LABELS if any(r in p["overall"].get(domain, {}) for p in points)]
        width = 0.8 / max(1, len(roles))
        for offset, role in enumerate(roles):
            values = [_score(p["overall"].get(domain, {}).get(role)) or 0.0 for p in points]
            xs = [i - 0.4 + width * (offset + 0.5) for i in range(len(points))]
            axis.bar(xs, values, width, label=ROLE_LABELS[role], color=ROLE_COLOURS[role])
        if sweep.get("overall_chance") is not None:
            axis.axhline(100 * sweep["overall_chance"], color="black", linestyle=":", linewidth=1, label="chance")
        axis.set_xticks(range(len(points)), [_point_tick(p) for p in points], rotation=30, ha="right", fontsize=8)
        axis.set_ylabel("overall (%)")
        axis.set_ylim(0, 100)
        axis.set_title(domain.replace("_", "-"))
        axis.legend(fontsize=7)
    figure.suptitle("sweep: " + ", ".join(sweep.get("keys", [])), fontsize=10)
    return _png(figure)


def _point_tick(point: Mapping[str, Any]) -> str:
    """The point's values only (the keys are in the title)."""
    settings = point.get("settings") or {}
    values = [v if isinstance(v, str) else json.dumps(v, separators=(",", ":")) for v in settings.values()]
    return ", ".join(values) or str(point["label"])


def _score(cell: Any) -> float | None:
    if isinstance(cell, Mapping) and isinstance(cell.get("score"), (int, float)):
        return 100 * float(cell["score"])
    return None
