"""Running a sweep: each point's config (the base config plus the point's overrides) goes through
``run_point(config, work_dir) -> results`` (by default the whole run, ``RunPipeline(config, work_dir).run()``,
injectable for tests and for custom pipelines), each in its own folder ``WORK_DIR/points/<label>/``.
The scores come from the reporter's scoreboard (so a point's overall is the leaderboard's), and the
sweep writes one table (``sweep.md`` and ``sweep.json``) and one plot (``sweep.png``).

A point whose ``point.json`` already holds results for the same settings is not run again, so an
interrupted sweep resumes; a point that fails with a ``BabyVLMError`` is recorded as failed (with its
error) and the others still run.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from babyvlm.core.compose import apply_overrides, load_config, write_resolved_config
from babyvlm.core.errors import BabyVLMError
from babyvlm.core.io import WriterLock, atomic_write_bytes, atomic_write_json, atomic_write_text, load_json
from babyvlm.plugins.sweep.grid import AGE_KEY, Point, check_points

IN_DOMAIN = ("in_domain", "saycam")  # listed first; per-entry columns show this domain

RunPoint = Callable[[Any, Path], Mapping[str, Any]]
Log = Callable[[str], None]
POINT_FILE = "point.json"


def run_experiment(config: Any, work_dir: Path) -> Mapping[str, Any]:
    """The default ``run_point``: the whole run (``RunPipeline``), its experiment's results with what its
    report reads (the evaluation folders per domain and role, the phases)."""
    from babyvlm.plugins.run_command.pipeline import RunPipeline

    outcome = RunPipeline(config, work_dir).run()
    return {**outcome.results.to_dict(), **outcome.report_inputs}


def _check_experiment_config(config: Any) -> None:
    from babyvlm.core.experiment import check_config

    check_config(config)


def run_sweep(config: Any, work_dir: str | os.PathLike, points: Sequence[Point], *, kind: str = "grid",
              run_point: RunPoint | None = None, reporter: Any = "markdown", log: Log = print) -> dict[str, Any]:
    """Run every point (resuming finished ones), then write ``sweep.json``, ``sweep.md`` and ``sweep.png``
    into ``work_dir``; returns the sweep (what ``sweep.json`` holds)."""
    from babyvlm.core.compose import build

    base = load_config(config)
    check_points(base, points, validate=None if run_point else _check_experiment_config)  # before any point runs
    out = Path(work_dir)
    runner = run_point or run_experiment
    board_maker = build("reporter", reporter) if isinstance(reporter, (str, Mapping)) else reporter
    with WriterLock(out, "a sweep"):
        write_resolved_config(base, out)
        records = [_run_one(base, out, point, runner, board_maker, kind, log) for point in points]
        sweep = _assemble(kind, list(points[0].settings) if points else [], records)
        atomic_write_json(out / "sweep.json", sweep)
        atomic_write_text(out / "sweep.md", sweep_markdown(sweep))
        if any(r.get("entries") for r in records):
            atomic_write_bytes(out / "sweep.png", board_maker.sweep_plot(sweep))
    return sweep


def _run_one(base: Any, out: Path, point: Point, runner: RunPoint, reporter: Any, kind: str, log: Log) -> dict[str, Any]:
    folder = out / "points" / point.slug
    record: dict[str, Any] = {"label": point.label, "value": point.value, "settings": point.settings,
                              "work_dir": str(folder)}
    cached = _cached(folder, point)
    if cached is not None:
        log(f"sweep point {point.label}: finished earlier, reusing {folder / POINT_FILE}")
        results = cached
    else:
        cfg = apply_overrides(copy.deepcopy(base), point.overrides(), flag=f"sweep point {point.label!r}:")
        log(f"== sweep point {point.label} ==")
        try:
            results = dict(runner(cfg, folder))
        except BabyVLMError as exc:  # recorded and shown in the table; the other points still run
            log(f"sweep point {point.label} failed: {exc}")
            return {**record, "status": "failed", "error": str(exc)}
        atomic_write_json(folder / POINT_FILE, {"settings": point.settings, "results": _json_safe(results)})
    board = reporter.scoreboard(results)
    summary = board.to_dict()
    record.update(status="ok", error=None, chance=summary["chance"], overall_chance=board.overall_chance(),
                  entries={d: v["entries"] for d, v in summary["domains"].items()},
                  overall={d: v["overall"] for d, v in summary["domains"].items()})
    if kind == "age":
        record["age_check"] = age_check(results, point.settings.get(AGE_KEY))
    return record


def _cached(folder: Path, point: Point) -> dict[str, Any] | None:
    path = folder / POINT_FILE
    if not path.is_file():
        return None
    saved = load_json(path)
    if not isinstance(saved, dict) or saved.get("settings") != _json_safe(point.settings):
        return None  # other settings under the same label: run it again
    return saved.get("results")


def age_check(results: Mapping[str, Any], limit: Any) -> str:
    """Whether the training store obeyed the age limit: ``ok``, ``ignored (data up to N months)``, or
    ``not reported`` when the results carry no per-age-month counts (``data.counts.by_age_month``)."""
    counts = results.get("data", {}).get("counts", {}) if isinstance(results.get("data"), Mapping) else {}
    months = [int(m) for m in (counts.get("by_age_month") or {}) if str(m).isdigit()]
    if not months or not isinstance(limit, (int, float)):
        return "not reported"
    oldest = max(months)
    return "ok" if oldest <= limit else f"ignored (data up to {oldest} months)"


def _assemble(kind: str, keys: list[str], records: list[dict[str, Any]]) -> dict[str, Any]:
    chances = [r["overall_chance"] for r in records if r.get("overall_chance") is not None]
    sweep = {"kind": kind, "keys": keys, "overall_chance": chances[0] if chances else None,
             "points": records, "failed": [r["label"] for r in records if r["status"] != "ok"]}
    if kind == "seed":
        sweep["across_seeds"] = across_seeds(records)
    return sweep


# The seed sweep's test of "uses vision" on an entry (stated in sweep.md): over the seeds, the model's mean
# beats its blind twin's mean by at least this margin, the model's mean lies above the mean upper end of the
# twin's 95% CIs, and the model beats its twin on every seed.
VISION_MARGIN = 0.10


def across_seeds(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per domain and entry: the model's and blind twin's scores per seed, mean and sd, the margin, and
    whether the entry passes the uses-vision test (``VISION_MARGIN``); failed points are left out."""
    done = [r for r in records if r.get("status") == "ok"]
    out: dict[str, Any] = {}
    for domain in sorted({d for r in done for d in r.get("entries", {})}, key=lambda d: (d not in IN_DOMAIN, d)):
        rows = {}
        for entry in _entry_order(done, domain):
            per_seed = [r["entries"].get(domain, {}).get(entry, {}) for r in done]
            if any(_value(roles.get("model")) is not None for roles in per_seed):  # entries the model was scored on
                rows[entry] = _entry_across_seeds(per_seed, next((r["chance"].get(entry) for r in done
                                                                  if r.get("chance")), None))
        out[domain] = {"entries": rows, "seeds": [r["value"] for r in done],
                       "uses_vision": sorted(e for e, row in rows.items() if row["uses_vision"])}
    return out


def _entry_across_seeds(per_seed: list[Mapping[str, Any]], chance: float | None) -> dict[str, Any]:
    model = [_value(roles.get("model")) for roles in per_seed]
    blind = [_value(roles.get("blind")) for roles in per_seed]
    upper = [(roles.get("blind") or {}).get("ci") for roles in per_seed]
    row: dict[str, Any] = {"model": model, "blind": blind, "chance": chance, "model_mean": _mean(model),
                           "model_sd": _sd(model), "blind_mean": _mean(blind), "blind_sd": _sd(blind),
                           "margin": None, "uses_vision": False}
    if None in model or None in blind or not model:
        return row  # a seed without both scores: no verdict
    row["margin"] = row["model_mean"] - row["blind_mean"]
    uppers = [ci[1] for ci in upper if isinstance(ci, list) and len(ci) == 2]
    above_ci = len(uppers) == len(model) and row["model_mean"] > _mean(uppers)
    every_seed = all(m > b for m, b in zip(model, blind, strict=True))
    row["uses_vision"] = bool(row["margin"] >= VISION_MARGIN and above_ci and every_seed)
    return row


def _value(score: Any) -> float | None:
    value = score.get("score") if isinstance(score, Mapping) else None
    return float(value) if isinstance(value, (int, float)) else None


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _sd(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    if len(known) < 2:
        return None
    mean = sum(known) / len(known)
    return (sum((v - mean) ** 2 for v in known) / (len(known) - 1)) ** 0.5


def sweep_markdown(sweep: Mapping[str, Any]) -> str:
    """One table: a row per point; overall model and blind twin per domain, each beside chance; then
    the model's primary metric per entry (in-domain)."""
    points = sweep["points"]
    domains = sorted({d for p in points for d in p.get("overall", {})}, key=lambda d: (d not in IN_DOMAIN, d))
    first = domains[0] if domains else "in_domain"  # per-entry columns: the in-domain scores
    entries = [e for e in _entry_order(points, first)
               if any(p.get("entries", {}).get(first, {}).get(e, {}).get("model") for p in points)]
    header = ["seed" if sweep["kind"] == "seed" else " / ".join(sweep["keys"]) or "point", "status"]
    for domain in domains:
        label = domain.replace("_", "-")
        header += [f"overall {label}: model", f"overall {label}: blind twin"]
    header += ["overall chance"] + [f"{e.removeprefix('baby_')}: model vs blind (chance)" for e in entries]
    if sweep["kind"] == "age":
        header.append("age filter")
    rows = []
    chance = sweep.get("overall_chance")
    for point in points:
        row = [str(point["label"]), point["status"] if point["status"] == "ok" else f"failed: {point['error']}"]
        for domain in domains:
            overall = point.get("overall", {}).get(domain, {})
            row += [_cell(overall.get("model")), _cell(overall.get("blind"))]
        row.append(_pct(chance) if chance is not None else "unknown")
        for entry in entries:
            roles = point.get("entries", {}).get(first, {}).get(entry, {})
            level = point.get("chance", {}).get(entry)
            blind = f" vs blind {_cell(roles['blind'])}" if roles.get("blind") else ""
            row.append(f"{_cell(roles.get('model'))}{blind} (chance {_pct(level) if level is not None else '?'})")
        if sweep["kind"] == "age":
            row.append(point.get("age_check", "—"))
        rows.append(row)
    title = {"age": f"Developmental curve (age sweep): {', '.join(sweep['keys'])}",
             "seed": "Seed sweep (training seeds; the world and the DevCV items are the same for every seed)"}
    lines = [f"# {title.get(sweep['kind'], 'Sweep: ' + ', '.join(sweep['keys']))}", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    lines += ["", "Scores in % (primary metrics; [95% CI]); overall = the DevCV leaderboard's mean of 11 entries, "
              "a missing entry counting 0. Per-entry columns: the model in-domain, beside its blind twin and the entry's "
              "chance."]
    if sweep["kind"] == "age":
        lines.append(f"Each point trains on data recorded up to that age (`{AGE_KEY}`); 'age filter' says "
                     "whether the training store's age months respected it.")
    if sweep.get("failed"):
        lines.append(f"Failed points: {', '.join(sweep['failed'])}.")
    if sweep.get("across_seeds"):
        lines += ["", *seed_markdown(sweep["across_seeds"])]
    return "\n".join(lines) + "\n"


def seed_markdown(across: Mapping[str, Any]) -> list[str]:
    """The seed sweep's summary: per domain, each entry's model and blind twin as mean ± sd over seeds,
    the margin, and the uses-vision verdict, with the test stated."""
    lines = ["## Across seeds"]
    for domain, summary in across.items():
        entries = summary["entries"]
        lines += ["", f"### {domain}: {len(summary['uses_vision'])} of {len(entries)} entries use vision "
                      f"(seeds {', '.join(str(s) for s in summary['seeds'])})", "",
                  "| entry | model mean ± sd | blind twin mean ± sd | chance | margin (points) | per seed model / blind "
                  "| uses vision |", "|---|---|---|---|---|---|---|"]
        for entry, row in entries.items():
            per_seed = ", ".join(f"{_maybe_pct(m)}/{_maybe_pct(b)}" for m, b in zip(row["model"], row["blind"], strict=True))
            margin = f"{100 * row['margin']:+.1f}" if row["margin"] is not None else "—"
            lines.append(f"| {entry.removeprefix('baby_')} | {_mean_sd(row['model_mean'], row['model_sd'])} | "
                         f"{_mean_sd(row['blind_mean'], row['blind_sd'])} | {_maybe_pct(row['chance'])} | {margin} | "
                         f"{per_seed} | {'yes' if row['uses_vision'] else 'no'} |")
    lines += ["", f"Uses vision: over the seeds, the model's mean beats its blind twin's mean by at least "
                  f"{100 * VISION_MARGIN:.0f} points, lies above the mean upper end of the twin's 95% CIs, and the "
                  f"model beats its twin on every seed. Scores in %; sd over seeds (n−1)."]
    return lines


def _maybe_pct(value: float | None) -> str:
    return _pct(value) if value is not None else "—"


def _mean_sd(mean: float | None, sd: float | None) -> str:
    if mean is None:
        return "—"
    return f"{_pct(mean)} ± {_pct(sd)}" if sd is not None else _pct(mean)


def _entry_order(points: Sequence[Mapping[str, Any]], domain: str) -> list[str]:
    order: list[str] = []
    for point in points:
        for entry in point.get("entries", {}).get(domain, {}):
            if entry not in order:
                order.append(entry)
    return order


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _cell(score: Any) -> str:
    if not isinstance(score, Mapping) or not isinstance(score.get("score"), (int, float)):
        return "—"
    ci = score.get("ci")
    text = _pct(score["score"])
    return f"{text} [{_pct(ci[0])}, {_pct(ci[1])}]" if isinstance(ci, list) and len(ci) == 2 else text


def _json_safe(value: Any) -> Any:
    """Results as JSON (paths and other objects become strings), so they can be cached and compared."""
    return json.loads(json.dumps(value, default=str))
