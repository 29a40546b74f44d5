"""The ``babyvlm train`` command (see the package docstring). Multi-process runs: ``torchrun
--nproc-per-node N -m babyvlm.cli train CONFIG ...`` (docs/training.md, with multi-node and SLURM)."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import click

from babyvlm.core.compose import apply_overrides, build, load_config
from babyvlm.core.errors import ConfigError
from babyvlm.core.experiment import Experiment


@click.command("train")
@click.argument("config")
@click.option("--phase", "phase", default="all", show_default=True,
              help="A phase name from the config's phases, or 'all' (in config order).")
@click.option("--resume", is_flag=True, help="Continue each selected phase from its last checkpoint.")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Experiment folder (default: runs/<config name>).")
@click.option("--set", "overrides", multiple=True,
              help="Override a config field, e.g. phases.2.trainer.max_steps=500 (VALUE is JSON, else a string).")
def train_command(config: str, phase: str, resume: bool, work_dir: Path | None, overrides: tuple[str, ...]) -> None:
    """Train an experiment's phases (0-language, 0-vision, 1-alignment, 2-joint, 3-instruction)."""
    cfg = load_config(config)
    apply_overrides(cfg, overrides, "--set")
    work_dir = work_dir or Path("runs") / Path(config).stem
    experiment = Experiment(cfg, work_dir, log=_rank_log())
    phases = experiment.select_phases(phase)  # an unknown phase fails before any work
    for selected in phases:  # so do unregistered trainers and bad trainer options (e.g. a GPU without one)
        build("trainer", selected["trainer"])
    resumable = {p["name"] for p in phases if (experiment.phase_dir(p["name"]) / "last_checkpoint").is_file()}
    if resume and not resumable:  # with several phases, those not started yet simply start
        first = phases[0]["name"]
        raise ConfigError(f"--resume: phase {first!r} has no checkpoint in {experiment.phase_dir(first)}"
                          f" (train it without --resume first)")
    with _process_group():
        _prepare(experiment)
        experiment.build_model()
        for selected in phases:
            result = experiment.train_phase(selected["name"], resume=resume and selected["name"] in resumable)
            click.echo(f"phase {result.name}: {result.metrics.get('steps')} steps, loss "
                       f"{result.metrics.get('first_loss', float('nan')):.4f} -> "
                       f"{result.metrics.get('last_loss', float('nan')):.4f} in {result.seconds} s ({result.work_dir})")
    click.echo(f"results: {work_dir / 'results.json'}")


def _prepare(experiment: Experiment) -> None:
    """Store and tokenizer: built by rank 0 while the other processes wait, then loaded by all."""
    if _world_size() > 1:
        import torch.distributed as dist

        if dist.get_rank() == 0:
            experiment.ensure_data()
            experiment.ensure_tokenizer()
        dist.barrier()
    experiment.ensure_data()
    experiment.ensure_tokenizer()


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


class _process_group:
    """Under torchrun: one process group for the whole command (mmengine's runner reuses it)."""

    def __enter__(self):
        if _world_size() > 1:
            import torch
            import torch.distributed as dist

            if not dist.is_initialized():
                backend = "nccl" if torch.cuda.is_available() else "gloo"
                dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
        return self

    def __exit__(self, *exc):
        if _world_size() > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
        return False


def _rank_log():
    rank = int(os.environ.get("RANK", "0"))
    return click.echo if rank == 0 else (lambda line: None)
