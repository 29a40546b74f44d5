"""The ``markdown`` reporter: a run's results -> ``report.md``, a self-contained ``report.html``,
``scores.json`` and PNG plots under ``plots/``.

``write(results, out_dir)`` reads (every key optional):

- ``evaluations``: ``{domain: {role: lmms-eval results}}`` — domains ``in_domain`` / ``out_of_domain``
  (any others are shown too), roles ``model``, ``blind`` (its blind twin: the recipe trained on blank
  images), ``blind_at_test`` (the model shown blank images at test: ``eval --with-blind``), ``random``, ``oracle``,
  ``human`` or any other name; each value a results dict, a ``<date>_results.json`` path or its folder;
- ``chance``: ``{entry: fraction}`` for the run's own task answer spaces (otherwise a registered task's
  ``chance()``, then the published chance of the released DevCV answer space);
- ``phases``: ``[{"name", "losses": [...], "steps", "first_loss", "last_loss", "seconds"}]`` (a trainer
  result's ``to_dict()``), ``dino_probe`` (or a phase's ``knn_probe``): ``[{"step", "accuracy"}]``;
- ``developmental``: an age sweep's ``sweep.json`` content or path;
- ``title``, ``machine``, ``seconds``, ``config`` (the resolved config's path), ``tuning`` (the
  instruction-tuning mode, in words), ``split`` (the item split scored, when not test), ``notes`` (strings).

Every model score is printed beside its chance level and its blind twin (else its score blind at test,
labelled so); an entry where the model lies within that control's 95% CI is flagged "answer priors, not
vision".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from babyvlm.core.errors import DataError
from babyvlm.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text, replaced_folder
from babyvlm.core.records import SkipReport
from babyvlm.plugins.report import inputs, plots
from babyvlm.plugins.report.document import (
    Block,
    Bullets,
    Heading,
    Image,
    Paragraph,
    Table,
    render_html,
    render_markdown,
)
from babyvlm.plugins.report.scores import (
    BLIND_LABELS,
    DomainBoard,
    Score,
    Scoreboard,
    blind_flag,
    blind_role,
    build_scoreboard,
    compare_to_blind,
    expand_evaluation_dirs,
)

PLOTS_DIR = "plots"
PLOTS_MARKER = "plots.json"  # what a plots folder always holds, so only such a folder is replaced
FLAG_TEXT = {"within": "⚠ within {blind}'s CI: answer priors, not vision", "below": "⚠ below {blind}'s CI"}
ROLE_HEADERS = {"model": "model [95% CI]", **{role: f"{label} [95% CI]" for role, label in BLIND_LABELS.items()},
                "random": "random [95% CI]", "oracle": "oracle [95% CI]", "human": "human [95% CI]"}


def flag_text(flag: str, blind: str) -> str:
    return FLAG_TEXT[flag].format(blind=BLIND_LABELS[blind])


def pct(value: float) -> str:
    return f"{100 * value:.1f}"


def cell(score: Score | None, with_ci: bool = True) -> str:
    """``41.3 [38.1, 44.5]`` (percent); ``—`` when there is no score."""
    if score is None:
        return "—"
    if with_ci and score.ci is not None:
        low, high = score.ci
        return f"{pct(score.value)} [{pct(low)}, {pct(high)}]"
    return pct(score.value)


class MarkdownReporter:
    """Writes report.md, report.html (PNGs inlined), scores.json and plots/*.png into ``out_dir``."""

    def __init__(self, title: str = "BabyVLM-V2 run report", lookup_tasks: bool = True, plots: bool = True):
        self.title, self.lookup_tasks, self.plots = title, lookup_tasks, plots

    # ---- public API -------------------------------------------------------------------------------
    def scoreboard(self, results: Mapping[str, Any]) -> Scoreboard:
        """The per-entry scores, CIs, chance levels and overall of ``results["evaluations"]``."""
        if not isinstance(results, Mapping):
            raise DataError(f"reporter 'markdown': results must be a mapping, got {type(results).__name__}")
        return build_scoreboard(evaluations_of(results), results.get("chance"), results.get("primary_metrics"),
                                self.lookup_tasks)

    def sweep_plot(self, sweep: Mapping[str, Any], domain: str = "in_domain") -> bytes:
        """A sweep's PNG (the age curve, or overall per grid point); used by ``babyvlm sweep``."""
        return plots.sweep_plot(sweep, domain)

    def write(self, results: Mapping[str, Any], out_dir: str | os.PathLike) -> list[Path]:
        out = Path(out_dir)
        board = self.scoreboard(results)
        skips = SkipReport()
        curves = inputs.phase_curves(results, skips)
        probe = inputs.dino_probe(results)
        curve = inputs.developmental(results)
        pictures: dict[str, bytes] = {}
        blocks = self._header(results, board)
        for domain in board.domains:
            blocks += self._domain_section(board, domain, pictures)
        blocks += self._training_section(results, curves, probe, pictures)
        blocks += self._developmental_section(curve, pictures)
        blocks += self._notes(results, board, skips)
        self._write_plots(out, pictures)
        md = atomic_write_text(out / "report.md", render_markdown(blocks))
        html = atomic_write_text(out / "report.html", render_html(self._inline_images(blocks, pictures),
                                                                  results.get("title", self.title)))
        scores = atomic_write_json(out / "scores.json", board.to_dict())
        return [md, html, scores] + [out / PLOTS_DIR / name for name in sorted(pictures)]

    # ---- sections -------------------------------------------------------------------------------
    def _header(self, results: Mapping[str, Any], board: Scoreboard) -> list[Block]:
        blocks: list[Block] = [Heading(str(results.get("title", self.title)), 1)]
        facts = []
        if results.get("machine"):
            facts.append(f"machine: {results['machine']}")
        if isinstance(results.get("seconds"), (int, float)):
            facts.append(f"run time: {results['seconds']:.0f} s")
        if results.get("config"):
            facts.append(f"resolved config: `{results['config']}`")
        if results.get("tuning"):
            facts.append(f"instruction tuning: {results['tuning']}")
        if results.get("split") not in (None, "test"):  # a recipe-selection run: not a result
            facts.append(f"scored on the **{results['split']}** split (for choosing a recipe; results are test scores)")
        if facts:
            blocks.append(Paragraph("; ".join(facts) + "."))
        summary = []
        chance = board.overall_chance()
        for domain in board.domains:
            if "model" not in domain.scores:
                continue
            model = board.overall(domain, "model")
            parts = [f"model {cell(model)}"]
            parts += [f"{label} {cell(board.overall(domain, role))}" for role, label in BLIND_LABELS.items()
                      if role in domain.scores]
            parts.append(f"chance {pct(chance)}" if chance is not None else "chance unknown")
            blind = blind_role(domain)
            above = [e for e in board.entries if e in domain.scores["model"] and blind
                     and e in domain.scores[blind] and blind_flag(domain, e) is None]
            flagged = [e for e in board.entries if blind_flag(domain, e)]
            line = f"**{domain.label}** overall: " + ", ".join(parts)
            if blind:
                line += (f"; above the {BLIND_LABELS[blind]}'s 95% CI on {len(above)} of "
                         f"{len([e for e in board.entries if e in domain.scores['model']])} entries")
                if flagged:
                    line += f" (answer priors, not vision, on: {', '.join(flagged)})"
            summary.append(line)
        if summary:
            blocks += [Heading("Summary"), Bullets(summary)]
        elif not board.domains:
            blocks.append(Paragraph("No evaluation results were given (results['evaluations'] is empty)."))
        return blocks

    def _domain_section(self, board: Scoreboard, domain: DomainBoard, pictures: dict[str, bytes]) -> list[Block]:
        roles, blind = domain.roles, blind_role(domain)
        compared = "model" in roles and blind is not None
        header = ["entry", "metric", "chance"] + [ROLE_HEADERS.get(r, r) for r in roles]
        if compared:
            header += [f"model − {BLIND_LABELS[blind]}", "flag"]
        rows = []
        for entry in board.entries:
            if not any(entry in domain.scores[r] for r in roles) and entry not in board.leaderboard:
                continue
            level = board.chance.get(entry)
            mark = "" if board.chance_source.get(entry) == "run" else _source_mark(board.chance_source.get(entry))
            row = [f"`{entry}`", board.primary[entry], (pct(level) + mark) if level is not None else "unknown"]
            row += [cell(domain.scores[r].get(entry)) for r in roles]
            if compared:
                model, control = domain.scores["model"].get(entry), domain.scores[blind].get(entry)
                row.append(f"{100 * (model.value - control.value):+.1f}" if model and control else "—")
                flag = blind_flag(domain, entry)
                row.append(flag_text(flag, blind) if flag else ("" if model and control else "—"))
            rows.append(row)
        overall_chance = board.overall_chance()
        total = ["**overall**", f"mean of {len(board.leaderboard)}, missing = 0",
                 pct(overall_chance) if overall_chance is not None else "unknown"]
        total += [cell(board.overall(domain, r)) for r in roles]
        if compared:
            model, control = board.overall(domain, "model"), board.overall(domain, blind)
            flag = compare_to_blind(model, control)
            total += [f"{100 * (model.value - control.value):+.1f}", flag_text(flag, blind) if flag else ""]
        rows.append(total)
        caption = ("Scores in %, the primary metric of each entry; [95% CI] = score ± 1.96 × stderr from the "
                   "results files, bootstrapped over clusters of items (the recording each item was built from, "
                   "else items sharing a picture; each results file's ci_clusters says which and how many), since "
                   "items from one recording or reusing one picture are not independent. Chance: as the run's tasks state it unless marked (* published chance of the "
                   "released answer space, † from the registered task). Overall as the DevCV leaderboard: the "
                   "mean of its 11 entries, a missing entry counting 0.")
        blocks: list[Block] = [Heading(f"Results, {domain.label}"), Table(header, rows, caption)]
        missing = _missing_by_set(board, domain)
        if missing:
            blocks.append(Paragraph("Missing entries (each counts 0 in overall): " + "; ".join(missing) + "."))
        if self.plots and any(domain.scores[r] for r in roles):
            name = f"accuracy_{_slug(domain.domain)}.png"
            pictures[name] = plots.accuracy_plot(board, domain)
            blocks.append(Image(f"{PLOTS_DIR}/{name}", f"accuracy per entry, {domain.label}"))
        return blocks

    def _training_section(self, results: Mapping[str, Any], curves: list[inputs.Curve],
                          probe: tuple[inputs.Curve, float | None] | None, pictures: dict[str, bytes]) -> list[Block]:
        phases = inputs.phase_records(results)
        if not phases and probe is None:
            return []  # (a DINO phase is a phase: its checks below need one)
        blocks: list[Block] = [Heading("Training")]
        if phases:
            rows = [[str(p.get("name", f"phase {i}")), _plain(p.get("steps")), _plain(p.get("dataset_size")),
                     _loss(p.get("first_loss")), _loss(p.get("last_loss")), _plain(p.get("seconds"))]
                    for i, p in enumerate(phases)]
            blocks.append(Table(["phase", "steps", "samples in set", "first loss", "last loss", "seconds"], rows))
        if curves and self.plots:
            pictures["loss_curves.png"] = plots.loss_plot([(c.name, c.steps, c.values) for c in curves])
            blocks.append(Image(f"{PLOTS_DIR}/loss_curves.png", "training loss per phase"))
        if probe is not None:
            curve, chance = probe
            for step, value in zip(curve.steps, curve.values, strict=True):
                if not 0.0 <= value <= 1.0:
                    raise DataError(f"DINO probe accuracy at step {step:g} must be a fraction, got {value!r}")
            blocks.append(Heading("DINO k-NN probe (phase 0-vision)", 3))
            rows = [[f"{s:g}", pct(v), pct(chance) if chance is not None else "unknown"]
                    for s, v in zip(curve.steps, curve.values, strict=True)]
            blocks.append(Table(["step", "k-NN accuracy", "chance"], rows))
            if self.plots:
                pictures["dino_probe.png"] = plots.probe_plot(curve.steps, curve.values, chance)
                blocks.append(Image(f"{PLOTS_DIR}/dino_probe.png", "DINO k-NN probe over steps"))
        blocks += _dino_check_blocks(inputs.dino_checks(results))
        return blocks

    def _developmental_section(self, sweep: Mapping[str, Any] | None, pictures: dict[str, bytes]) -> list[Block]:
        if sweep is None:
            return []
        points = sweep["points"]
        blocks: list[Block] = [Heading("Developmental curve"),
                               Paragraph("Training data up to each age (months); model overall, in-domain, beside "
                                         "its blind twin and chance.")]
        chance = sweep.get("overall_chance")
        rows = []
        for point in points:
            overall = point.get("overall", {}).get("in_domain", {})
            rows.append([str(point["label"]), _sweep_cell(overall.get("model")), _sweep_cell(overall.get("blind")),
                         pct(chance) if isinstance(chance, (int, float)) else "unknown",
                         point.get("status", "ok")])
        blocks.append(Table(["age (months)", "model overall", "blind twin overall", "chance", "status"], rows))
        if self.plots and any(p.get("entries") for p in points):
            pictures["developmental.png"] = plots.sweep_plot(sweep)
            blocks.append(Image(f"{PLOTS_DIR}/developmental.png", "accuracy per entry against age"))
        return blocks

    def _notes(self, results: Mapping[str, Any], board: Scoreboard, skips: SkipReport) -> list[Block]:
        notes = [str(n) for n in results.get("notes", [])]
        if skips.total:
            notes.append(skips.summary())
        sources = [f"{board_.label} {role}: `{src}`" for board_ in board.domains
                   for role, src in board_.sources.items() if src != "given"]
        if sources:
            notes.append("results files: " + "; ".join(sources))
        return [Heading("Notes"), Bullets(notes)] if notes else []

    # ---- files ----------------------------------------------------------------------------------
    def _write_plots(self, out: Path, pictures: dict[str, bytes]) -> Path:
        """Replace the plots folder as a whole, so no plot of an earlier report is left beside new ones."""
        target = out / PLOTS_DIR
        with replaced_folder(target, marker=PLOTS_MARKER, what="report plots folder") as stage:
            for name, data in pictures.items():
                atomic_write_bytes(stage / name, data)
            atomic_write_json(stage / PLOTS_MARKER, sorted(pictures))
        return target

    @staticmethod
    def _inline_images(blocks: list[Block], pictures: dict[str, bytes]) -> list[Block]:
        return [Image(b.path, b.alt, pictures[b.path.rsplit("/", 1)[-1]]) if isinstance(b, Image) else b
                for b in blocks]


def evaluations_of(results: Mapping[str, Any]) -> dict[str, Any]:
    """``{domain: {role: results}}`` from ``evaluations`` and/or ``evaluation_dirs`` (``{role: OUT}`` of
    ``babyvlm eval`` runs), read at the top level or inside ``results["evaluation"]`` (where
    ``Experiment`` keeps what its evaluation stage adds)."""
    merged: dict[str, dict[str, Any]] = {}
    for holder in (results.get("evaluation"), results):
        if not isinstance(holder, Mapping):
            continue
        given = holder.get("evaluations") or {}
        if not isinstance(given, Mapping):
            raise DataError(f"results['evaluations'] must be {{domain: {{role: results}}}}, got {given!r}")
        dirs = holder.get("evaluation_dirs")
        for source in (expand_evaluation_dirs(dirs) if dirs else {}, given):
            for domain, roles in source.items():
                if not isinstance(roles, Mapping):
                    raise DataError(f"results['evaluations'][{domain!r}] must map roles (model, blind, ...) to results")
                merged.setdefault(domain, {}).update(roles)
    return merged


def _missing_by_set(board: Scoreboard, domain: DomainBoard) -> list[str]:
    """``"model, blind: baby_x, baby_y"``: roles missing the same leaderboard entries are named together."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for role in domain.roles:
        missing = tuple(board.missing(domain, role))
        if missing:
            groups.setdefault(missing, []).append(role)
    return [f"{', '.join(roles)}: {', '.join(missing)}" for missing, roles in groups.items()]


def _source_mark(source: str | None) -> str:
    return {"published": "*", "task": "†"}.get(source or "", "")


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)


def _plain(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _loss(value: Any) -> str:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # NaN: no loss
    return f"{value:.3f}" if ok else "—"


def _sweep_cell(value: Any) -> str:
    if isinstance(value, Mapping) and isinstance(value.get("score"), (int, float)):
        ci = value.get("ci")
        text = pct(value["score"])
        return f"{text} [{pct(ci[0])}, {pct(ci[1])}]" if isinstance(ci, list) and len(ci) == 2 else text
    return "—"


PROBE_MARGIN = 0.05  # a trained encoder this close to a random-init one shows no learning the probe can see


def _dino_check_blocks(checks: list[dict[str, Any]]) -> list[Block]:
    """Each DINO phase's collapse warning and its probe of the trained vs a random-init encoder."""
    blocks: list[Block] = []
    for check in checks:
        if check["collapse_warning"]:
            blocks.append(Paragraph(f"⚠ **Warning ({check['name']}):** {check['collapse_warning']}"))
        trained, random = check["probe_trained"], check["probe_random"]
        if trained is None or random is None:
            continue
        chance = pct(check["chance"]) if check["chance"] is not None else "unknown"
        text = (f"DINO probe ({check['name']}): trained encoder {pct(trained)} vs a random-init encoder "
                f"{pct(random)} (chance {chance}).")
        if trained < random + PROBE_MARGIN:
            text += (f" ⚠ Less than {PROBE_MARGIN * 100:g} points above the random encoder: no evidence that DINO "
                     f"learned features this probe can see.")
        blocks.append(Paragraph(text))
    return blocks
