"""The ``babyvlm run`` command (see the package docstring)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from babyvlm.core.compose import apply_overrides, load_config
from babyvlm.core.errors import ConfigError
from babyvlm.core.specs import plain

# section with the data folder -> the synthetic corpus section that writes it instead, and what goes there
DATA_ROOTS = {"data": ("corpus", "SAYCam", "/data/saycam"), "ood_data": ("ood_corpus", "Ego4D", "/data/ego4d")}


@click.command("run")
@click.argument("config", default="demo")
@click.option("--work-dir", "--out", "work_dir", default="demo_out", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Where every stage writes its outputs.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config field, e.g. phases.1.trainer.max_steps=50 (VALUE is JSON, else a string).")
@click.option("--force", multiple=True, metavar="STAGE", help="Rerun this stage (and what depends on it) "
              "even if its cached outputs are current: corpora, tasks, model, blind_twin, evaluation, report.")
def run_command(config: str, work_dir: Path, overrides: tuple[str, ...], force: tuple[str, ...]) -> None:
    """Run the whole study from one config: corpus, training, tasks, evaluation, report.

    CONFIG is a config file or preset name (default: the demo).

    Stages: synthetic corpora (or your data) -> pretraining store -> tokenizer and training phases ->
    DevCV tasks -> instruction tuning -> the blind twin -> evaluation of the model, its blind twin and
    the baselines on both domains -> report.md / report.html. Rerunning with nothing changed reuses
    every stage; changing one reruns it and what depends on it.
    """
    from babyvlm.plugins.run_command.pipeline import RunPipeline

    cfg = load_config(config)
    apply_overrides(cfg, overrides, "--set")
    check_data_roots(cfg)
    pipeline = RunPipeline(cfg, work_dir, log=click.echo)  # checks the config before anything is written
    outcome = pipeline.run(force=force)
    click.echo(click.style("\n== summary ==", bold=True))
    summary = Path(work_dir) / "report.md"
    if summary.is_file():
        text = summary.read_text(encoding="utf-8")
        click.echo(text.split("\n## ", 2)[1] if "\n## " in text else text)
    click.echo(json.dumps(outcome.summary()))
    click.echo(f"report: {summary}; resolved config: {Path(work_dir) / 'config.py'}")


def check_data_roots(cfg: object) -> None:
    """A real-data config (no synthetic corpus section) names existing data folders before any stage runs:
    an unset ``data.root`` would otherwise surface as an empty corpus after the first stage."""
    out_of_domain = (plain(cfg.get("tasks") or {})).get("out_of_domain", True)
    for section, (corpus, name, example) in DATA_ROOTS.items():
        if cfg.get(corpus) or (section == "ood_data" and not out_of_domain):
            continue
        root = (plain(cfg.get(section) or {})).get("root")
        if not root:
            raise ConfigError(f"{section}.root: this config has no synthetic {corpus} section, so it reads your "
                              f"{name} folder: --set {section}.root={example}")
        if not Path(str(root)).is_dir():
            raise ConfigError(f"{section}.root: {root} is not a folder (your {name} folder)")
