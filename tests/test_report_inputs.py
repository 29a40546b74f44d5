"""The reporter on the shapes the pipeline hands it: ``babyvlm eval`` output folders (per-domain
``<date>_results.json`` with their own CI, chance and embedded blind twin) and ``Experiment`` phases
(the trainer's numbers under ``metrics``, the dino trainer's ``knn_probe`` with its history)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import babyvlm.plugins.report as report_plugin
from babyvlm.core.errors import DataError


@pytest.fixture
def reporter(fresh_registry):
    if "markdown" not in fresh_registry.names("reporter"):
        fresh_registry.register_plugin(report_plugin, "report")
    return fresh_registry.build("reporter", "markdown", lookup_tasks=False)


def engine_results(scores: dict[str, tuple[float, float, float, float]], blind: dict[str, float] | None = None) -> dict:
    """``babyvlm eval``'s layout: ``{entry: (score, ci_low, ci_high, chance)}``; subitize names its metric."""
    results = {}
    for entry, (value, low, high, chance) in scores.items():
        results[entry] = {"alias": entry, "acc,none": value, "acc_stderr,none": 0.05, "acc_ci95,none": [low, high],
                          "chance,none": chance, "primary_metric": "acc", "ties": 0, "unparsed": 0}
        if blind and entry in blind:
            results[entry]["blind_at_test_acc,none"] = blind[entry]
    return {"results": results, "overall": {"score": 0.0}, "n-samples": {e: {"original": 50, "effective": 50}
                                                                         for e in scores}}


def write_eval(out: Path, domain: str, document: dict, date: str = "20260301_120000") -> None:
    folder = out / domain
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{date}_results.json").write_text(json.dumps(document))


def rows_of(markdown: str, heading: str) -> dict[str, list[str]]:
    body = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in body.splitlines() if line.startswith("| ")][1:]
    return {cells[0].strip("`*"): cells for cells in ([c.strip() for c in line.strip("|").split(" | ")]
                                                      for line in lines)}


def test_eval_output_folders_with_ci_chance_and_embedded_blind(reporter, tmp_path):
    model_out, random_out = tmp_path / "eval" / "model", tmp_path / "eval" / "random"
    write_eval(model_out, "saycam", engine_results({"baby_count": (0.42, 0.30, 0.55, 1 / 8),
                                                    "baby_subitize": (0.61, 0.5, 0.7, 0.25)},
                                                   blind={"baby_count": 0.40, "baby_subitize": 0.3}))
    write_eval(model_out, "ego4d", engine_results({"baby_count": (0.2, 0.1, 0.3, 1 / 8)}))
    write_eval(random_out, "saycam", engine_results({"baby_count": (0.12, 0.05, 0.2, 1 / 8)}))
    results = {"evaluation": {"evaluation_dirs": {"model": str(model_out), "random": str(random_out)}}}
    reporter.write(results, tmp_path / "run")
    markdown = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert markdown.index("## Results, in-domain (SAYCam)") < markdown.index("## Results, out-of-domain (Ego4D)")
    rows = rows_of(markdown, "Results, in-domain (SAYCam)")
    assert rows["baby_count"][2] == "12.5"  # the chance the results file states, unmarked
    assert rows["baby_count"][3] == "42.0 [30.0, 55.0]"  # the file's own 95% CI, not ±1.96 stderr
    assert rows["baby_count"][4] == "40.0"  # the embedded score blind at test (no CI of its own)
    assert rows["baby_count"][5] == "12.0 [5.0, 20.0]"
    # no CI of its own: the model's CI widths around it, 40.0 [28.0, 53.0], hold the model
    assert rows["baby_count"][-1] == "⚠ within blind at test's CI: answer priors, not vision"
    assert rows["baby_subitize"][3] == "61.0 [50.0, 70.0]" and rows["baby_subitize"][-1] == ""
    assert "(blind at test, embedded)" in markdown and "blind at test [95% CI]" in markdown
    assert "model − blind at test" in markdown and "blind twin" not in markdown  # no twin was trained here
    out_rows = rows_of(markdown, "Results, out-of-domain (Ego4D)")
    assert out_rows["baby_count"][3] == "20.0 [10.0, 30.0]"


def test_experiment_phases_and_dino_probe_history(reporter, tmp_path):
    phases = [{"name": "0-vision", "stage": "0-vision", "trainer": "dino", "dataset_size": 500, "seconds": 12.5,
               "work_dir": "w", "metrics": {"steps": 3, "losses": [9.0, 8.5, 8.0], "first_loss": 9.0, "last_loss": 8.0,
                                            "knn_probe": {"step": 80, "accuracy": 0.5, "chance": 0.1,
                                                          "history": [{"step": 0, "accuracy": 0.2},
                                                                      {"step": 40, "accuracy": 0.35},
                                                                      {"step": 80, "accuracy": 0.5}]}}},
              {"name": "1-alignment", "stage": "1-alignment", "trainer": "mmengine", "dataset_size": 100,
               "seconds": 3.0, "work_dir": "w", "metrics": {"steps": 2, "losses": [4.0, 3.0], "first_loss": 4.0,
                                                           "last_loss": 3.0}}]
    paths = reporter.write({"phases": phases}, tmp_path)
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| 0-vision | 3 | 500 | 9.000 | 8.000 | 12.5 |" in markdown
    assert "| 1-alignment | 2 | 100 | 4.000 | 3.000 | 3 |" in markdown
    assert "| 0 | 20.0 | 10.0 |" in markdown and "| 80 | 50.0 | 10.0 |" in markdown
    assert {p.name for p in paths} >= {"loss_curves.png", "dino_probe.png"}


def test_evaluation_dirs_without_results_is_an_error(reporter, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"results\['evaluation_dirs'\]\['model'\]: .*empty holds no <domain>"):
        reporter.write({"evaluation_dirs": {"model": tmp_path / "empty"}}, tmp_path / "run")


def test_bad_ci_in_a_results_file_names_it(reporter, tmp_path):
    document = engine_results({"baby_count": (0.4, 0.3, 0.5, 0.125)})
    document["results"]["baby_count"]["acc_ci95,none"] = 0.1
    write_eval(tmp_path / "eval", "saycam", document)
    with pytest.raises(DataError, match=r"saycam/20260301_120000_results.json: results\['baby_count'\] ci95: "
                                        r"expected \[low, high\], got 0.1"):
        reporter.write({"evaluation_dirs": {"model": tmp_path / "eval"}}, tmp_path / "run")


def test_real_evaluation_engine_output_reports_as_is(reporter, fresh_registry, tmp_path):
    """Tasks built by ``babyvlm tasks build`` from a synthetic corpus, run through the ``devcv`` engine with
    the ``random`` and ``oracle`` adapters (oracle with its blind twin): the report reads those folders."""
    import subprocess
    import sys

    import babyvlm.plugins.evaluation as evaluation_plugin

    if "devcv" not in fresh_registry.names("evaluator"):  # until its entry point is installed
        fresh_registry.register_plugin(evaluation_plugin, "evaluation")
    script = Path(sys.executable).with_name("babyvlm")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "babyvlm"]
    for args in (["synth", "saycam", "corpus", "--minutes", "0.5", "--size", "64", "--fps", "2", "--video-minutes",
                  "0.25", "--quiet"],
                 ["tasks", "build", "--source", "saycam", "--root", "corpus", "--out", "tasks", "--domain", "saycam",
                  "--tasks", "baby_count,baby_subitize", "--max-items", "12", "--splits", "test", "--no-instructions",
                  "--task-opt", "frame_size=64", "--task-opt", "crop_size=32"]):
        done = subprocess.run([*command, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    engine = fresh_registry.build("evaluator", "devcv")
    summaries = {}
    for role, blind in (("random", False), ("model", True)):  # the oracle stands in for a trained model here
        adapter = fresh_registry.build("eval_adapter", "oracle" if role == "model" else "random")
        summaries[role] = engine.evaluate(adapter, "all", tmp_path / "tasks", tmp_path / "eval" / role,
                                          with_blind=blind, log=lambda _: None)
    reporter.write({"evaluation_dirs": {r: tmp_path / "eval" / r for r in summaries}}, tmp_path / "run")
    scores = json.loads((tmp_path / "run" / "scores.json").read_text())
    saycam = scores["domains"]["saycam"]
    assert set(saycam["sources"]) == {"model", "blind_at_test", "random"}
    for role, summary in summaries.items():  # the report's overall is the engine's (the leaderboard's)
        assert saycam["overall"][role]["score"] == pytest.approx(summary["domains"]["saycam"]["overall"]["score"])
        for entry, task in summary["domains"]["saycam"]["tasks"].items():
            assert saycam["entries"][entry][role]["score"] == pytest.approx(task["metrics"][task["primary_metric"]])
            assert scores["chance"][entry] == pytest.approx(task["chance"]) and scores["chance_source"][entry] == "run"
    assert saycam["entries"]["baby_count"]["model"]["score"] == 1.0
    assert saycam["flags"] == {"baby_count": "within", "baby_subitize": "within"}  # the oracle ignores images
    markdown = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert "## Results, in-domain (SAYCam)" in markdown and "answer priors, not vision" in markdown
