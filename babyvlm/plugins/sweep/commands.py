"""``babyvlm sweep``: ``babyvlm sweep age CONFIG --ages 12,18,24,32`` (a developmental curve),
``babyvlm sweep seed CONFIG --seeds 0,1,2`` (training seeds: mean ± sd per entry, model vs blind twin) and
``babyvlm sweep CONFIG --grid key=v1,v2 ...`` (an ablation grid; also spelled ``babyvlm sweep grid``).
Each runs every point through the run pipeline (``RunPipeline``) and writes ``sweep.md``, ``sweep.json`` and
``sweep.png`` into ``--work-dir``. The work is done by ``runner.run_sweep``, callable from Python."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from babyvlm.core.compose import apply_overrides, load_config
from babyvlm.core.errors import ConfigError
from babyvlm.plugins.sweep.grid import AGE_KEY, age_points, grid_points, parse_grid, seed_points
from babyvlm.plugins.sweep.runner import run_sweep


class SweepGroup(click.Group):
    """``sweep age ...`` and ``sweep grid ...``; ``sweep CONFIG --grid ...`` means ``sweep grid CONFIG ...``."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["grid", *args]
        return super().resolve_command(ctx, args)


def _common(function):
    function = click.option("--run-point", "run_point", default=None, metavar="MODULE:FUNCTION",
                            help="Run each point with FUNCTION(config, work_dir) -> results instead of "
                                 "the whole run, RunPipeline(config, work_dir).run().")(function)
    function = click.option("--set", "overrides", multiple=True,
                            help="Override a base-config field for every point (KEY=VALUE, VALUE is JSON).")(function)
    function = click.option("--reporter", default="markdown", show_default=True,
                            help="Registered reporter whose scoreboard and plot the sweep uses.")(function)
    function = click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                            help="Where points and the sweep table go [default: runs/sweep-<age|grid>-<config name>].")(function)
    return click.argument("config")(function)


def load_run_point(target: str | None):
    """``"pkg.module:function"`` -> the function (None keeps the default, the whole Experiment)."""
    if target is None:
        return None
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"--run-point: expected MODULE:FUNCTION, got {target!r}")
    try:
        function = importlib.import_module(module_name)
        for part in attr.split("."):
            function = getattr(function, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--run-point {target!r}: cannot import it ({type(exc).__name__}: {exc})") from exc
    if not callable(function):
        raise ConfigError(f"--run-point {target!r}: not callable")
    return function


def _work_dir(config: str, work_dir: Path | None, kind: str) -> Path:
    return work_dir or Path("runs") / f"sweep-{kind}-{Path(config).stem}"


@click.group("sweep", cls=SweepGroup)
def sweep_command() -> None:
    """Run a config at several settings: an age sweep or an ablation grid.

    \b
      babyvlm sweep age CONFIG --ages 12,18,24,32   a developmental curve
      babyvlm sweep seed CONFIG --seeds 0,1,2       training seeds: mean ± sd, uses-vision verdicts
      babyvlm sweep CONFIG --grid KEY=V1,V2 ...     an ablation grid (same as: sweep grid CONFIG ...)

    Each point runs the whole experiment in WORK_DIR/points/<label>/ and the sweep writes one table
    (sweep.md, sweep.json) and one plot (sweep.png) into WORK_DIR. Rerunning reuses finished points.
    """


@sweep_command.command("age")
@_common
@click.option("--ages", required=True, help="Ages in months, increasing, e.g. 12,18,24,32.")
@click.option("--key", default=AGE_KEY, show_default=True, help="The data filter key each point sets.")
def age_command(config: str, work_dir: Path | None, reporter: str, overrides: tuple[str, ...],
                run_point: str | None, ages: str, key: str) -> None:
    """Train on the data recorded up to each age and plot accuracy per task against age.

    Each point sets the data filter KEY (data.max_age_months) to its age; the data source keeps only
    recordings of children up to that age. The table's 'age filter' column checks the training store's
    age months against it.
    """
    cfg = apply_overrides(load_config(config), overrides, "--set")
    sweep = run_sweep(cfg, _work_dir(config, work_dir, "age"), age_points(ages, key), kind="age",
                      run_point=load_run_point(run_point), reporter=reporter, log=click.echo)
    _finish(sweep, _work_dir(config, work_dir, "age"))


@sweep_command.command("grid")
@_common
@click.option("--grid", "grid", multiple=True, required=True,
              help="KEY=V1,V2,...: a config key and its values (JSON, else strings); repeat for more keys.")
def grid_command(config: str, work_dir: Path | None, reporter: str, overrides: tuple[str, ...],
                 run_point: str | None, grid: tuple[str, ...]) -> None:
    """Run every combination of the --grid values (an ablation) and tabulate and plot the results.

    \b
    e.g. --grid data.source.transcripts=human,asr
         --grid 'phases.0.formats=["image"],["image","video","interleaved"]'
    """
    cfg = apply_overrides(load_config(config), overrides, "--set")
    sweep = run_sweep(cfg, _work_dir(config, work_dir, "grid"), grid_points(parse_grid(grid)), kind="grid",
                      run_point=load_run_point(run_point), reporter=reporter, log=click.echo)
    _finish(sweep, _work_dir(config, work_dir, "grid"))


@sweep_command.command("seed")
@_common
@click.option("--seeds", required=True, help="Training seeds, e.g. 0,1,2 (at least two).")
def seed_command(config: str, work_dir: Path | None, reporter: str, overrides: tuple[str, ...],
                 run_point: str | None, seeds: str) -> None:
    """Train and evaluate the model and its blind twin once per training seed; report mean ± sd per entry.

    Each point sets the run's seed and every phase trainer's seed; the corpora and the DevCV items stay
    the same (their seeds are not touched). sweep.md adds an 'Across seeds' table marking the entries where
    the model uses vision (its test is stated under the table).
    """
    cfg = apply_overrides(load_config(config), overrides)
    phases = cfg.get("phases") or []
    sweep = run_sweep(cfg, _work_dir(config, work_dir, "seed"), seed_points(seeds, len(phases)), kind="seed",
                      run_point=load_run_point(run_point), reporter=reporter, log=click.echo)
    _finish(sweep, _work_dir(config, work_dir, "seed"))


def _finish(sweep: dict, out: Path) -> None:
    click.echo((out / "sweep.md").read_text(encoding="utf-8"))
    click.echo(f"sweep table: {out / 'sweep.md'}, {out / 'sweep.json'}; plot: {out / 'sweep.png'}")
    if sweep["failed"]:
        raise click.ClickException(f"{len(sweep['failed'])} sweep point(s) failed: {', '.join(sweep['failed'])}")
