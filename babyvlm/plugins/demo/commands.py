"""The ``babyvlm demo`` command: synthetic corpus -> ``Experiment`` (store, tokenizer, tiny BabyLLaVA,
training phases, held-out evaluation) -> report.json. The stages are described in the package
docstring (``babyvlm/plugins/demo/__init__.py``)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click
import torch

from babyvlm import registry
from babyvlm.core.compose import apply_overrides, load_config
from babyvlm.core.errors import ConfigError
from babyvlm.core.experiment import Experiment
from babyvlm.core.io import atomic_write_json


def run_command(name: str, *args: str) -> None:
    """Run a registered ``babyvlm`` command in-process, exactly as the CLI would."""
    click.echo(click.style(f"\n$ babyvlm {name} {' '.join(args)}", bold=True))
    registry.get("command", name).main(list(args), prog_name=f"babyvlm {name}", standalone_mode=False)


def heading(text: str) -> None:
    click.echo(click.style(f"\n== {text} ==", bold=True))


@click.command("demo")
@click.option("--out", default="demo_out", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--config", "config_path", default="demo", show_default=True, help="Config file or preset name.")
@click.option("--set", "overrides", multiple=True,
              help="Override a config field, e.g. corpus.minutes=2 (VALUE is JSON, else a string).")
def demo_command(out: Path, config_path: str, overrides: tuple[str, ...]) -> None:
    """Run the end-to-end demo on the embedded synthetic infant world."""
    started = time.perf_counter()
    cfg = load_config(config_path)
    apply_overrides(cfg, overrides, "--set")
    torch.manual_seed(0)
    if "corpus" not in cfg or "data" not in cfg:
        raise ConfigError(f"demo config {config_path!r} needs 'corpus' (what to synthesise) and 'data' sections")
    cfg.data.root = str(out / "corpus")
    experiment = Experiment(cfg, out, log=click.echo)  # checks the config before anything is written
    c = cfg.corpus
    run_command("synth", c.kind, str(out / "corpus"), "--minutes", str(c.minutes), "--seed", str(c.seed),
                "--fps", str(c.fps), "--size", str(c.size), "--video-minutes", str(c.video_minutes), "--quiet")
    heading(f"data: {experiment.data['source']['type']} source -> {experiment.data['builder']['type']} builder")
    store = experiment.build_data()
    run_command("data", "verify", str(store))
    run_command("data", "stats", str(store))
    report = train_and_evaluate(experiment)
    report["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_json(out / "report.json", report)
    heading("demo report")
    click.echo(json.dumps(summary(report), indent=2))
    click.echo(f"full report: {out / 'report.json'}; resolved config: {out / 'config.py'}")


def train_and_evaluate(experiment: Experiment) -> dict[str, Any]:
    tokenizer = experiment.build_tokenizer()
    model = experiment.build_model()
    heading(f"model: {model.parameter_counts()['total']:,} parameters, vocab {tokenizer.vocab_size}")
    experiment.results["untrained"] = experiment.evaluate()
    for phase in experiment.train():
        click.echo(f"phase {phase['name']}: loss {phase['first_loss']:.3f} -> {phase['last_loss']:.3f} "
                   f"in {phase['seconds']} s")
    experiment.results["trained"] = experiment.evaluate()
    heldout = experiment.dataset(formats=["image"], split="heldout")
    if len(heldout):
        example = heldout[0]
        prompt = dict(example, conversations=example["conversations"][:1])
        experiment.results["example"] = {"reference": example["conversations"][-1]["value"],
                                         "generated": model.generate(prompt, max_new_tokens=12, return_text=True)}
    experiment.results.update(checkpoint=str(experiment.work_dir / "checkpoint"), threads=torch.get_num_threads(),
                              cpu_count=os.cpu_count())
    return experiment.results


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The report without per-step losses and store details, for the terminal."""
    phases = [{k: p[k] for k in ("name", "dataset_size", "steps", "first_loss", "last_loss", "seconds")}
              for p in report["phases"]]
    return {k: v for k, v in report.items() if k not in ("phases", "data")} | {"phases": phases}
