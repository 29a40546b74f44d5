"""The ``babyvlm train`` command (see the package docstring). Multi-process runs: ``torchrun
--nproc-per-node N -m babyvlm.cli train CONFIG ...`` (docs/training.md, with multi-node and SLURM)."""

from __future__ import annotations

import datetime
import gc
import os
import re
from pathlib import Path
from typing import Any

import click

from babyvlm.core.compose import apply_overrides, build, load_config
from babyvlm.core.errors import ConfigError
from babyvlm.core.experiment import Experiment
from babyvlm.core.ranks import is_main_process
from babyvlm.plugins.run_command.pipeline import training_experiment
from babyvlm.plugins.simple_trainer.shared import Resume

# what `babyvlm tasks build` (mixed, train split) and `tasks instructions [--per-task]` name their files
INSTRUCTION_FILE = re.compile(
    r"devcv_instructions_(?:(?!easy\d+_)(?P<short>.+?)_)?(?:easy(?P<easy>\d+)_)?(?P<split>train|val|test)\.json")


@click.command("train")
@click.argument("config")
@click.option("--phase", "phase", default="all", show_default=True,
              help="A phase name from the config's phases, or 'all' (in config order).")
@click.option("--resume", is_flag=True, help="Continue each selected phase from its last checkpoint.")
@click.option("--resume-from", "resume_from", default=None, metavar="CHECKPOINT",
              help="Continue the selected phase from this checkpoint (e.g. iter_8) instead of the last one.")
@click.option("--force-resume", is_flag=True, help="Resume even though settings that change the data order or "
              "the optimisation differ from the checkpoint's (they are listed; the new ones apply).")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Experiment folder (default: runs/<config name>).")
@click.option("--set", "overrides", multiple=True,
              help="Override a config field, e.g. phases.2.trainer.max_steps=500 (VALUE is JSON, else a string).")
def train_command(config: str, phase: str, resume: bool, resume_from: str | None, force_resume: bool,
                  work_dir: Path | None, overrides: tuple[str, ...]) -> None:
    """Train an experiment's phases (0-language, 0-vision, 1-alignment, 2-joint, 3-instruction)."""
    cfg = load_config(config)
    apply_overrides(cfg, overrides, "--set")
    work_dir = work_dir or Path("runs") / Path(config).stem
    say = _rank_log()  # under torchrun, rank 0 alone reports
    experiment = training_experiment(cfg, work_dir, log=say)  # a run config's {tasks} resolved
    phases = experiment.select_phases(phase)  # an unknown phase fails before any work
    for selected in phases:  # a missing instruction file fails now, naming the commands that write it
        check_instruction_file(experiment, selected, config)
    for selected in phases:  # so do unregistered trainers and bad trainer options (e.g. a GPU without one)
        build("trainer", selected["trainer"])
    if resume_from is not None and len(phases) != 1:
        raise ConfigError("--resume-from names one phase's checkpoint: select that phase with --phase NAME")
    resume = resume or force_resume or resume_from is not None
    resumable = {p["name"] for p in phases if resume_from is not None or
                 (experiment.phase_dir(p["name"]) / "last_checkpoint").is_file()}
    if resume and not resumable:  # with several phases, those not started yet simply start
        first = phases[0]["name"]
        raise ConfigError(f"--resume: phase {first!r} has no checkpoint in {experiment.phase_dir(first)}"
                          f" (train it without --resume first)")
    request = Resume(checkpoint=resume_from, force=force_resume)
    with _process_group():
        _prepare(experiment)
        experiment.build_model()
        for selected in phases:
            phase_resume = request if resume and selected["name"] in resumable else False
            if selected.get("tuning") == "task_specific":  # one model per task, as `babyvlm run` trains it
                results = experiment.train([selected["name"]], resume=phase_resume)
            else:
                results = [experiment.train_phase(selected["name"], resume=phase_resume)]
            for result in results:
                say(phase_line(result))
    say(f"results: {work_dir / 'results.json'}")


def check_instruction_file(experiment: Experiment, phase: dict[str, Any], config: str) -> None:
    """Refuse a phase whose ``data.llava_json`` is missing, naming the ``babyvlm`` commands that write it,
    before any phase trains (phase 3 comes after minutes or hours of phases 0-2)."""
    data = phase.get("data")
    if not isinstance(data, dict) or "llava_json" not in data:
        return
    source = Path(str(data["llava_json"]))  # {tasks} resolved by training_config
    if source.is_file():
        return
    raise ConfigError(f"phase {phase['name']}: data.llava_json {source} is not a file; "
                      f"{instruction_commands(experiment, source, config)}")


def instruction_commands(experiment: Experiment, source: Path, config: str) -> str:
    """How to make an instruction file: ``tasks build`` writes the mixed train file of a SAYCam task
    folder, ``tasks instructions --per-task`` the per-task ones; ``babyvlm run`` does both."""
    folder, match = source.parent, INSTRUCTION_FILE.fullmatch(source.name)
    if match is None:
        return ("give an instruction file in LLaVA JSON (e.g. written by `babyvlm tasks instructions TASK_DIR`, "
                "or `babyvlm data import`-able records)")
    steps = []
    if not (folder / "manifest.json").is_file():
        source_type = experiment.data["source"]["type"]
        steps.append(f"babyvlm tasks build --source {source_type} --root {experiment.root} --out {folder.parent} "
                     f"--domain {folder.name}")
    short, split, easy = match.group("short"), match.group("split"), match.group("easy")
    if short or split != "train" or easy or steps == []:
        steps.append(f"babyvlm tasks instructions {folder}" + (" --per-task" if short else "")
                     + (f" --split {split}" if split != "train" else "") + (f" --easy-match {easy}" if easy else ""))
    return (f"build it with `{'` then `'.join(steps)}`, or run the whole study, tasks included, with "
            f"`babyvlm run {config}`")


def phase_line(result: Any) -> str:
    """The one line a trained phase prints (a finished phase that was resumed says so)."""
    metrics = result.metrics
    first, last = metrics.get("first_loss"), metrics.get("last_loss")
    losses = f"loss {first:.4f} -> {last:.4f}" if first is not None and last is not None else "no loss recorded"
    if metrics.get("finished_already"):
        return (f"phase {result.name}: finished already ({metrics.get('steps')} steps, {losses}); nothing was "
                f"trained ({result.work_dir})")
    return f"phase {result.name}: {metrics.get('steps')} steps, {losses} in {result.seconds} s ({result.work_dir})"


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
                # The runner's DDP wrapper sits in a reference cycle: collected only at interpreter exit,
                # after the group is gone, it aborted a rank under load ("terminate called without an
                # active exception", exit -6; 9 of 29 runs). Collect it while the group still lives.
                gc.collect()
                dist.destroy_process_group()
        return False


def _rank_log():
    return click.echo if is_main_process() else (lambda line: None)
