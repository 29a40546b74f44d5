"""``babyvlm sweep``: grid expansion, the age sweep's data filter, one table + plot per sweep, resume and
failed points — each point run by an injected fast ``run_point`` (the default is the whole Experiment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import babyvlm.plugins.report as report_plugin
import babyvlm.plugins.sweep as sweep_plugin
from babyvlm.core.errors import ConfigError
from babyvlm.plugins.sweep import AGE_KEY, age_points, grid_points, parse_grid, run_sweep, seed_points
from babyvlm.plugins.sweep.grid import split_values

BASE = {"data": {"source": "saycam", "builder": "pretraining_set", "transcripts": "human"},
        "model": {"type": "babyllava"},
        "phases": [{"name": "3-instruction", "formats": ["image"], "trainer": {"type": "simple", "lr": 0.001}}]}

FAKE_RUNNER = '''
"""A fast stand-in for Experiment.run(): scores that depend on the point's settings."""
import json
from pathlib import Path


def results_for(model_score, blind_score, months):
    def lmms(value):
        return {"results": {"baby_pv": {"acc,none": value, "acc_stderr,none": 0.02},
                            "baby_count": {"acc,none": value / 2, "acc_stderr,none": 0.02}}}
    return {"evaluations": {"in_domain": {"model": lmms(model_score), "blind": lmms(blind_score)},
                            "out_of_domain": {"model": lmms(model_score / 2)}},
            "chance": {"baby_pv": 0.25, "baby_count": 0.1},
            "data": {"counts": {"by_age_month": {str(m): 10 for m in months}}}}


def run_point(config, work_dir):
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    calls = work_dir.parent.parent / "calls.jsonl"
    with open(calls, "a") as handle:
        handle.write(json.dumps({"work_dir": work_dir.name, "lr": config.phases[0].trainer.lr,
                                 "transcripts": config.data.transcripts,
                                 "age": config.data.get("max_age_months")}) + "\\n")
    age = config.data.get("max_age_months")
    if age is not None:  # this fake source honours the filter, except at 18 months
        months = range(6, (40 if age == 18 else int(age)) + 1)
        return results_for(min(0.9, age / 40), 0.3, months)
    lr = config.phases[0].trainer.lr
    if lr > 0.05:
        from babyvlm.core.errors import ConfigError
        raise ConfigError(f"lr {lr} diverged")
    bonus = 0.1 if config.data.transcripts == "truth" else 0.0
    return results_for(0.4 + 10 * lr + bonus, 0.3, range(6, 33))


def run_seed_point(config, work_dir):
    seed = config.seed
    assert [p.trainer.seed for p in config.phases] == [seed] * len(config.phases)
    out = results_for(0.5 + 0.02 * seed, 0.3, range(6, 33))
    # Count: the model sits just above its twin (0.15) on every seed: a margin of 2 points, not vision
    out["evaluations"]["in_domain"]["model"]["results"]["baby_count"]["acc,none"] = 0.16 + 0.01 * seed
    return out
'''


@pytest.fixture
def plugins(fresh_registry):
    """The report and sweep plugins in a fresh registry (registered by hand until their entry points exist)."""
    for module, name, kind, component in ((report_plugin, "report", "reporter", "markdown"),
                                          (sweep_plugin, "sweep", "command", "sweep")):
        if component not in fresh_registry.names(kind):
            fresh_registry.register_plugin(module, name)
    return fresh_registry


@pytest.fixture
def runner_module(tmp_path, monkeypatch):
    folder = tmp_path / "fake_runner"
    folder.mkdir()
    (folder / "fake_sweep_runner.py").write_text(FAKE_RUNNER)
    monkeypatch.syspath_prepend(str(folder))
    import fake_sweep_runner

    yield fake_sweep_runner
    sys.modules.pop("fake_sweep_runner", None)


def calls(work_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (work_dir / "calls.jsonl").read_text().splitlines()]


def table_rows(markdown: str) -> tuple[list[str], dict[str, list[str]]]:
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    split = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]
    return split[0], {row[0]: row for row in split[2:]}


def test_grid_values_and_expansion():
    assert split_values('["image"],["image","video"],3') == ['["image"]', '["image","video"]', "3"]
    axes = parse_grid(["phases.0.trainer.lr=0.001,0.01", 'data.transcripts=human,truth,"asr"'])
    assert axes == {"phases.0.trainer.lr": [0.001, 0.01], "data.transcripts": ["human", "truth", "asr"]}
    points = grid_points(axes)
    assert [p.settings for p in points[:2]] == [{"phases.0.trainer.lr": 0.001, "data.transcripts": "human"},
                                               {"phases.0.trainer.lr": 0.001, "data.transcripts": "truth"}]
    assert len(points) == 6 and points[-1].label == "phases.0.trainer.lr=0.01,data.transcripts=asr"
    assert [p.slug for p in points[:1]] == ["phases.0.trainer.lr=0.001,data.transcripts=human"]
    odd = grid_points(parse_grid(['data.root="a/b","a_b"', 'x=["image","video"]']))
    assert len({p.slug for p in odd}) == 2 and all("/" not in p.slug and len(p.slug) <= 89 for p in odd)
    long = grid_points(parse_grid([f"data.key{i}=1,2" for i in range(12)]))
    assert len({p.slug for p in long}) == len(long) == 4096 and max(len(p.slug) for p in long) <= 89
    assert [p.value for p in age_points("12,18,24.5")] == [12, 18, 24.5]
    assert age_points([12])[0].settings == {AGE_KEY: 12}


@pytest.mark.parametrize(("call", "message"), [
    (lambda: parse_grid(["lr"]), r"--grid: expected KEY=V1,V2,..., got 'lr'"),
    (lambda: parse_grid(["lr=1,,2"]), r"an empty value"),
    (lambda: parse_grid(["lr=1,1"]), r"a value is listed twice"),
    (lambda: parse_grid(["lr=1", "lr=2"]), r"key 'lr' is given twice"),
    (lambda: parse_grid([]), r"needs at least one --grid"),
    (lambda: age_points("12,6"), r"ages must increase"),
    (lambda: age_points("12,young"), r"expected ages in months .* got 'young'"),
    (lambda: age_points("0"), r"expected ages in months"),
])
def test_bad_grid_and_age_specs(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_grid_sweep_table_plot_and_json(plugins, runner_module, tmp_path):
    work = tmp_path / "sweep"
    points = grid_points(parse_grid(["phases.0.trainer.lr=0.001,0.01", "data.transcripts=human,truth"]))
    run_sweep(BASE, work, points, run_point=runner_module.run_point, log=lambda _: None)
    # each point ran once, in its own folder, with its settings applied to the config
    seen = {(c["lr"], c["transcripts"]) for c in calls(work)}
    assert seen == {(0.001, "human"), (0.001, "truth"), (0.01, "human"), (0.01, "truth")}
    assert {c["work_dir"] for c in calls(work)} == {p.slug for p in points}
    assert (work / "config.py").is_file()
    header, rows = table_rows((work / "sweep.md").read_text(encoding="utf-8"))
    assert header[:6] == ["phases.0.trainer.lr / data.transcripts", "status", "overall in-domain: model",
                          "overall in-domain: blind twin", "overall out-of-domain: model",
                          "overall out-of-domain: blind twin"]
    for point in points:
        lr, truth = point.settings["phases.0.trainer.lr"], point.settings["data.transcripts"] == "truth"
        model = 0.4 + 10 * lr + (0.1 if truth else 0.0)
        row = rows[point.label]
        overall = (model + model / 2) / 11  # two entries of 11, the rest count 0
        stderr = (2 * 0.02 ** 2) ** 0.5 / 11
        assert row[2] == f"{100 * overall:.1f} [{100 * (overall - 1.959964 * stderr):.1f}, " \
                         f"{100 * (overall + 1.959964 * stderr):.1f}]"
        assert row[5] == "—"  # no blind twin out of domain
        assert row[7] == (f"{100 * model:.1f} [{100 * (model - 0.039199):.1f}, {100 * (model + 0.039199):.1f}] vs blind "
                          f"30.0 [26.1, 33.9] (chance 25.0)")
    saved = json.loads((work / "sweep.json").read_text())
    assert saved["kind"] == "grid" and saved["failed"] == [] and len(saved["points"]) == 4
    assert saved["points"][0]["entries"]["in_domain"]["baby_pv"]["model"]["score"] == pytest.approx(0.41)
    with Image.open(work / "sweep.png") as image:
        assert image.format == "PNG"
        image.verify()


def test_age_sweep_sets_the_filter_and_checks_it(plugins, runner_module, tmp_path):
    work = tmp_path / "ages"
    sweep = run_sweep(BASE, work, age_points("12,18,24,32"), kind="age", run_point=runner_module.run_point,
                      log=lambda _: None)
    assert [c["age"] for c in calls(work)] == [12, 18, 24, 32]
    assert [p["age_check"] for p in sweep["points"]] == ["ok", "ignored (data up to 40 months)", "ok", "ok"]
    _, rows = table_rows((work / "sweep.md").read_text(encoding="utf-8"))
    assert rows["24"][-1] == "ok" and rows["18"][-1] == "ignored (data up to 40 months)"
    assert rows["32"][7].startswith(f"{100 * 32 / 40:.1f} [")
    with Image.open(work / "sweep.png") as image:
        assert image.format == "PNG"
    # the report's developmental curve takes the sweep as it is
    paths = plugins.build("reporter", "markdown", lookup_tasks=False).write(
        {"developmental": str(work / "sweep.json")}, tmp_path / "report")
    assert tmp_path / "report" / "plots" / "developmental.png" in paths


def test_sweep_resumes_and_records_failed_points(plugins, runner_module, tmp_path):
    work = tmp_path / "resume"
    points = grid_points(parse_grid(["phases.0.trainer.lr=0.001,0.1"]))
    first = run_sweep(BASE, work, points, run_point=runner_module.run_point, log=lambda _: None)
    assert first["failed"] == ["phases.0.trainer.lr=0.1"]
    assert [p["status"] for p in first["points"]] == ["ok", "failed"]
    assert "failed: lr 0.1 diverged" in (work / "sweep.md").read_text(encoding="utf-8")
    log: list[str] = []
    second = run_sweep(BASE, work, points, run_point=runner_module.run_point, log=log.append)
    assert [c["lr"] for c in calls(work)] == [0.001, 0.1, 0.1]  # the finished point was not run again
    assert any("finished earlier, reusing" in line for line in log)
    assert second["points"][0]["overall"] == first["points"][0]["overall"]


def test_bad_key_fails_before_any_point_runs(plugins, runner_module, tmp_path):
    points = grid_points(parse_grid(["phases.0.trainer.lr=0.001", "phases.0.traner.lr=1,2"]))
    with pytest.raises(ConfigError, match=r"the config has no 'phases.0.traner'"):
        run_sweep(BASE, tmp_path / "bad", points, run_point=runner_module.run_point)
    assert not (tmp_path / "bad" / "calls.jsonl").exists()


def test_default_run_point_is_the_experiment(plugins, tmp_path):
    """Without run_point each point is ``babyvlm.Experiment(config, work_dir).run()``: its config check
    refuses a point (here: no 'model' section) before any point runs."""
    config = {k: v for k, v in BASE.items() if k != "model"}
    with pytest.raises(ConfigError, match="sweep point '12': experiment config has no 'model' section"):
        run_sweep(config, tmp_path / "default", age_points("12"), kind="age", log=lambda _: None)
    assert not (tmp_path / "default").exists()


def write_config(folder: Path) -> Path:
    path = folder / "base_config.py"
    path.write_text(textwrap.dedent(f"""
        data = {BASE['data']!r}
        model = {BASE['model']!r}
        phases = {BASE['phases']!r}
    """))
    return path


def test_cli_grid_and_age(plugins, runner_module, tmp_path):
    from babyvlm.cli import cli

    config = write_config(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["sweep", str(config), "--grid", "phases.0.trainer.lr=0.001,0.01",
                                 "--work-dir", str(tmp_path / "g"), "--run-point", "fake_sweep_runner:run_point"])
    assert result.exit_code == 0, result.output
    assert "| phases.0.trainer.lr=0.01 | ok |" in result.output and (tmp_path / "g" / "sweep.png").is_file()
    result = runner.invoke(cli, ["sweep", "age", str(config), "--ages", "12,24", "--work-dir", str(tmp_path / "a"),
                                 "--run-point", "fake_sweep_runner:run_point", "--set", "data.transcripts=truth"])
    assert result.exit_code == 0, result.output
    assert {c["transcripts"] for c in calls(tmp_path / "a")} == {"truth"}
    result = runner.invoke(cli, ["sweep", str(config), "--grid", "phases.0.trainer.lr=0.001,0.1",
                                 "--work-dir", str(tmp_path / "f"), "--run-point", "fake_sweep_runner:run_point"])
    assert result.exit_code == 1 and "1 sweep point(s) failed: phases.0.trainer.lr=0.1" in result.output
    result = runner.invoke(cli, ["sweep", "age", str(config), "--ages", "12", "--run-point", "nope"])
    assert result.exit_code == 1 and "--run-point: expected MODULE:FUNCTION, got 'nope'" in result.output


def _sweep_entry_point_installed() -> bool:
    return any(ep.name == "sweep" for ep in metadata.entry_points(group="babyvlm"))


@pytest.mark.skipif(not _sweep_entry_point_installed(),
                    reason="the 'sweep' entry point is not in pyproject.toml yet (sweep = \"babyvlm.plugins.sweep\")")
def test_cli_subprocess(tmp_path, runner_module):
    config = write_config(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(runner_module.__file__).parent),
                                                       os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-m", "babyvlm", "sweep", "age", str(config), "--ages", "12,18",
                             "--work-dir", str(tmp_path / "s"), "--run-point", "fake_sweep_runner:run_point"],
                            capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Developmental curve (age sweep): data.max_age_months" in result.stdout


def test_seed_sweep_reports_mean_sd_and_the_uses_vision_test(plugins, runner_module, tmp_path):
    work = tmp_path / "seeds"
    base = dict(BASE, phases=BASE["phases"] * 2)
    sweep = run_sweep(base, work, seed_points("0,1,2", 2), kind="seed", run_point=runner_module.run_seed_point,
                      log=lambda _: None)
    pv = sweep["across_seeds"]["in_domain"]["entries"]["baby_pv"]
    assert pv["model"] == pytest.approx([0.5, 0.52, 0.54]) and pv["blind"] == pytest.approx([0.3] * 3)
    assert pv["model_mean"] == pytest.approx(0.52) and pv["model_sd"] == pytest.approx(0.02)
    assert pv["margin"] == pytest.approx(0.22) and pv["uses_vision"] is True
    count = sweep["across_seeds"]["in_domain"]["entries"]["baby_count"]
    assert count["margin"] == pytest.approx(0.02) and count["uses_vision"] is False
    assert sweep["across_seeds"]["in_domain"]["uses_vision"] == ["baby_pv"]
    text = (work / "sweep.md").read_text(encoding="utf-8")
    assert "### in_domain: 1 of 2 entries use vision (seeds 0, 1, 2)" in text
    assert "| pv | 52.0 ± 2.0 | 30.0 ± 0.0 | 25.0 | +22.0 | 50.0/30.0, 52.0/30.0, 54.0/30.0 | yes |" in text
    assert "beats its twin on every seed" in text  # the test is stated


@pytest.mark.parametrize("seeds, message", [("0", "at least two"), ("0,0", "listed twice"), ("0,-1", ">= 0"),
                                            ("0,x", "whole numbers")])
def test_bad_seed_lists(seeds, message):
    with pytest.raises(ConfigError, match=message):
        seed_points(seeds, 1)
