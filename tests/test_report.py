"""The ``markdown`` reporter on constructed results: every table cell comes from the input, the blind-twin
flag, a self-contained HTML, valid PNGs, clear errors for malformed results."""

from __future__ import annotations

import base64
import json
import re

import pytest
from PIL import Image

import babyvlm.plugins.report as report_plugin
from babyvlm.core.errors import DataError
from babyvlm.plugins.report.scores import leaderboard_primary

Z = 1.959964
ROLES = ("model", "blind", "random", "oracle", "human")
LEADERBOARD_PRIMARY = leaderboard_primary()  # the tasks' own facts


@pytest.fixture
def reporter(fresh_registry):
    if "markdown" not in fresh_registry.names("reporter"):  # until the entry point is in pyproject.toml
        fresh_registry.register_plugin(report_plugin, "report")
    return fresh_registry.build("reporter", "markdown", lookup_tasks=False)


def lmms_results(scores: dict[str, tuple[float, float]]) -> dict:
    """An lmms-eval results object: ``{entry: (value, stderr)}`` on each entry's primary metric."""
    results = {}
    for entry, (value, stderr) in scores.items():
        metric = LEADERBOARD_PRIMARY.get(entry, "acc")
        results[entry] = {f"{metric},none": value, f"{metric}_stderr,none": stderr, "alias": entry}
    return {"results": results, "n-samples": {e: {"original": 200, "effective": 200} for e in scores}}


# Distinct values per role and entry, so a cell can only match its own input.
ENTRIES = ["baby_pv", "baby_winoground", "baby_localize", "baby_count", "baby_memory", "baby_subitizing"]
BASE = {"model": 0.52, "blind": 0.31, "random": 0.24, "oracle": 0.91, "human": 0.82}


def constructed() -> tuple[dict, dict]:
    table = {role: {entry: (round(BASE[role] + 0.013 * i, 4), round(0.011 + 0.002 * i, 4))
                    for i, entry in enumerate(ENTRIES)} for role in ROLES}
    table["model"]["baby_count"] = (0.335, 0.02)  # within the blind twin's CI (blind: 0.349 ± 0.033)
    table["model"]["baby_memory"] = (0.20, 0.02)  # below it (blind: 0.362 ± 0.037)
    evaluations = {"in_domain": {role: lmms_results(table[role]) for role in ROLES},
                   "out_of_domain": {role: lmms_results({e: table[role][e] for e in ENTRIES[:3]})
                                     for role in ("model", "blind")}}
    chance = {"baby_pv": 0.25, "baby_subitizing": 0.25, "baby_count": 1 / 12}
    results = {"evaluations": evaluations, "chance": chance, "machine": "test machine", "seconds": 42,
               "phases": [{"name": "1-alignment", "losses": [3.0, 2.0, 1.5], "steps": 3, "first_loss": 3.0,
                           "last_loss": 1.5, "seconds": 1.0},
                          {"name": "0-vision", "losses": [], "knn_probe": [{"step": 10, "accuracy": 0.2, "chance": 0.05},
                                                                           {"step": 20, "accuracy": 0.45}]}]}
    return results, table


def fmt(value: float, stderr: float | None = None) -> str:
    text = f"{100 * value:.1f}"
    if stderr is None:
        return text
    return f"{text} [{100 * max(0.0, value - Z * stderr):.1f}, {100 * min(1.0, value + Z * stderr):.1f}]"


def section_rows(markdown: str, heading: str) -> tuple[list[str], dict[str, list[str]]]:
    """The table under ``## heading``: its header cells and rows keyed by their first cell."""
    body = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in body.splitlines() if line.startswith("|")]
    split = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    header, rows = split[0], split[2:]
    return header, {row[0].strip("`*"): row for row in rows}


def test_every_cell_of_the_results_table_comes_from_the_input(reporter, tmp_path):
    results, table = constructed()
    reporter.write(results, tmp_path)
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    header, rows = section_rows(markdown, "Results, in-domain")
    assert header[:8] == ["entry", "metric", "chance", "model [95% CI]", "blind twin [95% CI]", "random [95% CI]",
                          "oracle [95% CI]", "human [95% CI]"]
    for entry in LEADERBOARD_PRIMARY:
        assert rows[entry][1] == LEADERBOARD_PRIMARY[entry]
    for entry in ENTRIES:
        for column, role in enumerate(ROLES, start=3):
            assert rows[entry][column] == fmt(*table[role][entry]), (entry, role)
        delta = table["model"][entry][0] - table["blind"][entry][0]
        assert rows[entry][8] == f"{100 * delta:+.1f}"
    assert rows["baby_pv"][2] == "25.0" and rows["baby_count"][2] == "8.3"
    assert rows["baby_localize"][2] == "25.0*"  # the published chance, marked as such
    for entry in set(LEADERBOARD_PRIMARY) - set(ENTRIES):  # missing: shown empty, counted 0 below
        assert rows[entry][3:8] == ["—"] * 5
    # overall = mean of the 11 leaderboard entries, a missing one counting 0; baby_subitizing is not one
    for column, role in enumerate(ROLES, start=3):
        values = [table[role][e][0] for e in ENTRIES if e in LEADERBOARD_PRIMARY]
        stderr = sum(table[role][e][1] ** 2 for e in ENTRIES if e in LEADERBOARD_PRIMARY) ** 0.5 / 11
        assert rows["overall"][column] == fmt(sum(values) / 11, stderr), role
    out_header, out_rows = section_rows(markdown, "Results, out-of-domain")
    assert out_header[3:5] == ["model [95% CI]", "blind twin [95% CI]"] and "human [95% CI]" not in out_header
    assert out_rows["baby_pv"][3] == fmt(*table["model"]["baby_pv"])
    assert out_rows["baby_count"][3] == "—"
    assert "machine: test machine; run time: 42 s." in markdown


def test_blind_twin_flag_marks_answer_priors(reporter, tmp_path):
    results, _ = constructed()
    reporter.write(results, tmp_path)
    _, rows = section_rows((tmp_path / "report.md").read_text(encoding="utf-8"), "Results, in-domain")
    assert "answer priors, not vision" in rows["baby_count"][-1]
    assert "below blind twin" in rows["baby_memory"][-1]
    for entry in ("baby_pv", "baby_winoground", "baby_localize", "baby_subitizing"):
        assert rows[entry][-1] == "", entry
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["domains"]["in_domain"]["flags"] == {"baby_count": "within", "baby_memory": "below"}
    summary = (tmp_path / "report.md").read_text(encoding="utf-8").split("## Summary", 1)[1].split("##", 1)[0]
    assert "above the blind twin's 95% CI on 4 of 6 entries" in summary
    assert "baby_count, baby_memory" in summary


def test_html_is_self_contained_and_plots_are_valid_pngs(reporter, tmp_path):
    results, _ = constructed()
    paths = reporter.write(results, tmp_path)
    pngs = sorted(p for p in paths if p.suffix == ".png")
    assert [p.name for p in pngs] == ["accuracy_in_domain.png", "accuracy_out_of_domain.png", "dino_probe.png",
                                      "loss_curves.png"]
    for png in pngs:
        with Image.open(png) as image:
            assert image.format == "PNG" and image.size[0] > 200 and image.size[1] > 150
            image.verify()
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r'src="([^"]*)"', html)
    assert len(sources) == len(pngs) and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"<link|href=|<script|url\(", html)  # nothing fetched from elsewhere
    inlined = sorted(base64.b64decode(s.split(",", 1)[1]) for s in sources)
    assert inlined == sorted(p.read_bytes() for p in pngs)
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    for png in pngs:
        assert f"(plots/{png.name})" in markdown
    assert "<td><code>baby_pv</code></td>" in html and "&#x27;" in html  # cells escaped, marks rendered


def test_training_section_probe_and_skipped_phase(reporter, tmp_path):
    results, _ = constructed()
    reporter.write(results, tmp_path)
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| 1-alignment | 3 | — | 3.000 | 1.500 | 1 |" in markdown
    assert "| 10 | 20.0 | 5.0 |" in markdown and "| 20 | 45.0 | 5.0 |" in markdown
    assert "phase_without_losses: 1 (e.g. results['phases'][1] (0-vision))" in markdown


def test_a_collapsed_dino_phase_is_flagged_beside_its_probe_of_trained_vs_random(reporter, tmp_path):
    results, _ = constructed()
    warning = "DINO collapsed (uniform): its outputs sit at the uniform distribution (loss 6.21 vs ln K 6.24)"
    results["phases"][1].update(collapse="uniform", collapse_warning=warning, probe_trained=0.43, probe_random=0.41,
                                knn_probe={"accuracy": 0.43, "chance": 0.29, "history": [{"step": 0, "accuracy": 0.4},
                                                                                          {"step": 40, "accuracy": 0.43}]})
    reporter.write(results, tmp_path)
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert f"**Warning (0-vision):** {warning}" in markdown
    assert "trained encoder 43.0 vs a random-init encoder 41.0 (chance 29.0). ⚠ Less than 5 points above" in markdown
    assert "DINO collapsed (uniform)" in (tmp_path / "report.html").read_text(encoding="utf-8")
    results["phases"][1].update(collapse="none", collapse_warning=None, probe_trained=0.6)
    reporter.write(results, tmp_path)
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "Warning (0-vision)" not in markdown and "Less than 5 points" not in markdown
    assert "trained encoder 60.0 vs a random-init encoder 41.0 (chance 29.0)." in markdown


def test_rewriting_replaces_the_plots_folder(reporter, tmp_path):
    results, _ = constructed()
    reporter.write(results, tmp_path)
    assert (tmp_path / "plots" / "dino_probe.png").exists()
    del results["phases"]
    reporter.write(results, tmp_path)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "accuracy_in_domain.png", "accuracy_out_of_domain.png", "plots.json"]
    assert "DINO" not in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_results_read_from_lmms_eval_files(reporter, tmp_path):
    folder = tmp_path / "eval" / "model"
    folder.mkdir(parents=True)
    (folder / "20260101_000000_results.json").write_text(json.dumps(lmms_results({"baby_pv": (0.1, 0.01)})))
    (folder / "20260102_000000_results.json").write_text(json.dumps(lmms_results({"baby_pv": (0.6, 0.01)})))
    blind = tmp_path / "eval" / "blind_results.json"
    blind.write_text(json.dumps(lmms_results({"baby_pv": (0.3, 0.01)})))
    results = {"evaluations": {"in_domain": {"model": str(folder), "blind": blind}}}
    reporter.write(results, tmp_path / "out")
    markdown = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    _, rows = section_rows(markdown, "Results, in-domain")
    assert rows["baby_pv"][3] == fmt(0.6, 0.01)  # the newest results file of the folder
    assert "20260102_000000_results.json" in markdown


def test_developmental_curve_from_an_age_sweep(reporter, tmp_path):
    def point(age, model, blind):
        return {"label": f"{age}", "value": age, "status": "ok",
                "entries": {"in_domain": {"baby_pv": {"model": {"score": model, "ci": None},
                                                      "blind": {"score": blind, "ci": None}}}},
                "overall": {"in_domain": {"model": {"score": model / 11, "ci": [model / 11 - 0.01, model / 11 + 0.01]},
                                          "blind": {"score": blind / 11, "ci": None}}}}
    sweep = {"kind": "age", "keys": ["data.max_age_months"], "overall_chance": 0.3,
             "points": [point(12, 0.3, 0.25), point(24, 0.6, 0.26)]}
    paths = reporter.write({"developmental": sweep}, tmp_path)
    assert tmp_path / "plots" / "developmental.png" in paths
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert f"| 24 | {fmt(0.6 / 11)} [{100 * (0.6 / 11 - 0.01):.1f}, {100 * (0.6 / 11 + 0.01):.1f}] | " \
           f"{fmt(0.26 / 11)} | 30.0 | ok |" in markdown
    assert "No evaluation results were given" in markdown


@pytest.mark.parametrize(("results", "message"), [
    ({"evaluations": {"in_domain": {"model": {"results": {"baby_pv": {"accuracy,none": 0.5}}}}}},
     r"results\['evaluations'\]\['in_domain'\]\['model'\]: results\['baby_pv'\] has no 'acc,none'"),
    ({"evaluations": {"in_domain": {"model": {"results": {"baby_pv": {"acc,none": 57}}}}}},
     r"\['baby_pv'\]\['acc,none'\]: expected a score between 0 and 1, got 57"),
    ({"evaluations": {"in_domain": {"model": {"scores": {}}}}}, r"\['model'\]: no 'results' object"),
    ({"evaluations": {"in_domain": ["model"]}}, r"results\['evaluations'\]\['in_domain'\] must map roles"),
    ({"phases": "1-alignment"}, r"results\['phases'\] must be a list"),
    ({"phases": [{"name": "p", "losses": [1.0, "x"]}]}, r"results\['phases'\]\[0\]\['losses'\]\[1\]: expected a number"),
    ({"dino_probe": [{"step": 1, "accuracy": 45}]}, r"DINO probe accuracy at step 1 must be a fraction"),
    ({"chance": {"baby_pv": 2}}, r"results\['chance'\]\['baby_pv'\]: expected a score between 0 and 1"),
])
def test_malformed_results_name_the_key(reporter, tmp_path, results, message):
    with pytest.raises(DataError, match=message):
        reporter.write(results, tmp_path)


def test_missing_results_files_are_clear_errors(reporter, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"folder .*empty holds no \*_results.json file"):
        reporter.write({"evaluations": {"in_domain": {"model": tmp_path / "empty"}}}, tmp_path)
    (tmp_path / "bad_results.json").write_text("{not json")
    with pytest.raises(DataError, match=r"bad_results.json: invalid JSON at line 1"):
        reporter.write({"evaluations": {"in_domain": {"model": tmp_path / "bad_results.json"}}}, tmp_path)


def test_reporter_meets_its_contract(reporter):
    from babyvlm.core.contracts import missing_members

    assert missing_members("reporter", reporter) == []


def test_text_is_escaped_and_results_must_be_a_mapping(reporter, tmp_path):
    reporter.write({"title": "<b>run</b> & co", "notes": ["<script>x</script>"]}, tmp_path)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<title>&lt;b&gt;run&lt;/b&gt; &amp; co</title>" in html and "<h1>&lt;b&gt;run" in html
    assert "<script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    with pytest.raises(DataError, match="reporter 'markdown': results must be a mapping, got list"):
        reporter.write([1], tmp_path)


def test_the_leaderboard_facts_are_the_tasks_own(fresh_registry):
    """The 11 DevCV entries, in the leaderboard's order, with the published primary metrics and chance
    levels -- read from the task classes, so a task plugin joins the leaderboard by its attributes."""
    from babyvlm import hookimpl, registry
    from babyvlm.plugins.devcv.count import ObjectCounting
    from babyvlm.plugins.report.scores import published_chance

    assert list(LEADERBOARD_PRIMARY) == [
        "baby_pv", "baby_winoground", "baby_localize", "baby_leftright", "baby_spatialdetails", "baby_vdr_binary",
        "baby_vdr_open", "baby_compare_real", "baby_compare_synthetic", "baby_count", "baby_memory"]
    assert LEADERBOARD_PRIMARY["baby_winoground"] == "group_score"
    assert LEADERBOARD_PRIMARY["baby_memory"] == "acc_testing_adjusted"
    assert published_chance()["baby_count"] == 0.08 and "baby_subitize" not in published_chance()

    class TwelfthEntry(ObjectCounting):
        name, short = "zz_count_twelfth", "zz_count_twelfth"
        leaderboard_position, published_chance = 12, 0.1

    registry.register_plugin(type("Plugin", (), {"register_tasks": staticmethod(hookimpl(
        lambda register: register("zz_count_twelfth", TwelfthEntry)))})(), "twelfth")
    assert list(leaderboard_primary())[-1] == "zz_count_twelfth" and published_chance()["zz_count_twelfth"] == 0.1


@pytest.mark.parametrize(("extra", "shown", "hidden"), [
    ({"tuning": "3-instruction: task-specific (one model per task)"},
     ["instruction tuning: 3-instruction: task-specific (one model per task)"], ["split"]),
    ({"split": "val"}, ["scored on the **val** split"], ["instruction tuning"]),
    ({"split": "test"}, [], ["scored on the", "instruction tuning"]),
])
def test_the_header_names_the_tuning_mode_and_a_non_test_split(reporter, tmp_path, extra, shown, hidden):
    results, _ = constructed()
    reporter.write(dict(results, **extra), tmp_path)
    header = (tmp_path / "report.md").read_text(encoding="utf-8").split("\n## ", 1)[0]
    for text in shown:
        assert text in header
    for text in hidden:
        assert text not in header
