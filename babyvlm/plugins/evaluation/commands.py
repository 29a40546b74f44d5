"""``babyvlm eval``: evaluate a model (checkpoint folder, HF folder or a registered adapter) on task sets.

``--model`` is resolved by ``resolve_adapter``: a folder goes to the first registered adapter (lowest
``path_priority``) whose ``accepts_path`` claims it (``babyvlm`` for a babyvlm checkpoint, ``hf`` for any
other HF folder); a registered adapter name is built as is; ``WRAPPER:INNER`` (``blind:random``,
``blind:runs/ckpt``) builds an adapter around another. ``--model-opt KEY=VALUE`` passes options to the
(innermost) adapter. Under ``torchrun --nproc-per-node N -m babyvlm eval ...`` items are split across
the processes and only rank 0 prints and writes the merged results.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import click

from babyvlm import registry
from babyvlm.core.contracts import DEFAULT_PATH_PRIORITY, PathLoading, PathPriority
from babyvlm.core.errors import ConfigError
from babyvlm.core.io import parse_key_values
from babyvlm.core.ranks import is_main_process
from babyvlm.core.validate import check_number


def resolve_adapter(model: str, options: dict[str, Any] | None = None, adapter: str | None = None) -> Any:
    """The eval adapter ``--model`` names (see the module docstring); ``adapter`` forces the adapter that
    reads a folder (``hf`` for a babyvlm checkpoint read through transformers)."""
    options = dict(options or {})
    if adapter is not None:
        return registry.build("eval_adapter", dict(type=adapter, path=model, **_accepted(adapter, options)))
    wrapper, sep, inner = model.partition(":")
    if sep and wrapper in registry.names("eval_adapter") and not Path(model).exists():
        return registry.build("eval_adapter", dict(type=wrapper, adapter=resolve_adapter(inner, options)))
    path = Path(model)
    if path.is_dir():
        name = adapter_for_path(path)
        return registry.build("eval_adapter", dict(type=name, path=str(path), **_accepted(name, options)))
    if model in registry.names("eval_adapter"):
        return registry.build("eval_adapter", dict(type=model, **_accepted(model, options)))
    if path.exists():
        raise ConfigError(f"--model {model}: a file, not a model folder or adapter name")
    registry.get("eval_adapter", model)  # unknown name: the registry's error lists names, with a did-you-mean
    raise AssertionError("unreachable")


def adapter_for_path(path: Path) -> str:
    claims = []
    for name in registry.names("eval_adapter"):
        component = registry.get("eval_adapter", name)
        if isinstance(component, PathLoading) and component.accepts_path(path):  # adapters that load folders
            priority = component.path_priority if isinstance(component, PathPriority) else DEFAULT_PATH_PRIORITY
            claims.append((priority, name))
    if not claims:
        raise ConfigError(f"--model {path}: no eval adapter reads this folder (a babyvlm checkpoint has "
                          f"babyvlm.json, a Hugging Face model config.json)")
    return min(claims)[1]


def _accepted(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Shared CLI settings (batch size, seed) go to adapters that take them; others get only their own."""
    try:
        parameters = inspect.signature(registry.get("eval_adapter", name)).parameters
    except (TypeError, ValueError):
        return options
    shared = {"batch_size", "seed", "device"}
    return {key: value for key, value in options.items() if key in parameters or key not in shared}


@click.command("eval")
@click.option("--model", "model", required=True, help="Checkpoint folder, HF model folder, adapter name "
              "(random, oracle, ...) or WRAPPER:INNER (blind:random).")
@click.option("--adapter", default=None, help="Force the adapter that reads the --model folder (e.g. hf).")
@click.option("--tasks", default="all", show_default=True, help="Comma-separated task names, or all.")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="Task items: DIR/<domain>/<short>_<split>.json, or one released flat folder.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Results folder.")
@click.option("--domain", "domains", multiple=True, help="Only these domain folders (repeatable).")
@click.option("--split", default="test", show_default=True)
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--limit", default=None, type=click.IntRange(min=1), help="First N items per task.")
@click.option("--mode", default="generate", show_default=True, type=click.Choice(["generate", "loglikelihood"]))
@click.option("--with-blind", is_flag=True, help="Also score the same model with every image blanked (\"blind at "
              "test\", into OUT/blind_at_test; not the blind twin, which `babyvlm run` trains on blank images) "
              "and show each score beside it.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random adapter and the bootstrap.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--model-opt", "model_opts", multiple=True, metavar="KEY=VALUE",
              help="Adapter option (repeatable), e.g. template=baby_v1 (default: the checkpoint's own template).")
@click.option("--flush-every", default=32, show_default=True, type=click.IntRange(min=1),
              help="Items answered between two appends to the resume log.")
@click.option("--compare-human", type=click.Path(path_type=Path), default=None,
              help="A human-study export folder: add item-level alignment (KL, temperature, Spearman).")
def eval_command(model: str, adapter: str | None, tasks: str, data_dir: Path, out_dir: Path, domains: tuple[str, ...], split: str,
                 batch_size: int, limit: int | None, mode: str, with_blind: bool, seed: int, device: str,
                 model_opts: tuple[str, ...], flush_every: int, compare_human: Path | None) -> None:
    """Evaluate MODEL on DevCV task sets; writes lmms-eval-style results and prints a score table."""
    from babyvlm.plugins.evaluation.results import table

    options = {"batch_size": batch_size, "seed": seed, "device": device, **parse_key_values(model_opts, "--model-opt")}
    for name, low in (("seed", 0), ("batch_size", 1)):  # shared settings: a wrong type is named, not a traceback
        check_number("--model-opt", name, options[name], whole=True, low=low)
    built = resolve_adapter(model, options, adapter)
    evaluator = registry.build("evaluator", dict(type="devcv", flush_every=flush_every))
    main = is_main_process()
    summary = evaluator.evaluate(built, tasks, data_dir, out_dir, mode=mode, split=split,
                                 domains=list(domains) or None, limit=limit, seed=seed, with_blind=with_blind,
                                 compare_human=compare_human, log=click.echo if main else _quiet,
                                 config={"model_arg": model, "adapter": adapter, "batch_size": batch_size,
                                         "device": device})
    if main:
        click.echo(table(summary))
        skipped = summary.get("skipped", {})
        if skipped.get("total"):
            reasons = ", ".join(f"{reason} {count}" for reason, count in skipped["counts"].items())
            click.echo(f"skipped: {skipped['total']} ({reasons}); each named in the results files")
        click.echo(f"results: {out_dir}/<domain>/{summary['date']}_results.json "
                   f"({len(summary['files'])} files written)")


def _quiet(message: str) -> None:
    del message
