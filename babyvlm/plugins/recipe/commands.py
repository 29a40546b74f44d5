"""``babyvlm recipe balance IN OUT``: rewrite a mixed DevCV instruction file (LLaVA JSON with a ``task``
field per record, as ``babyvlm tasks instructions`` writes it) as one task-balanced pass, so that a phase
drawing uniformly from the file (``data=dict(llava_json=OUT)``) gives every task the same share."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from babyvlm.core.errors import DataError


@click.group("recipe")
def recipe_group() -> None:
    """Training-recipe helpers: task-balanced instruction files."""


@recipe_group.command("balance")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--per-task", type=click.IntRange(min=1), default=None,
              help="Records per task (default: the largest task's count; small tasks repeat).")
@click.option("--seed", type=int, default=0, show_default=True)
def balance_command(source: Path, out: Path, per_task: int | None, seed: int) -> None:
    """Write OUT: SOURCE's records with every task equally often (ids of repeats suffixed #r<k>)."""
    from babyvlm.core.io import atomic_write_json, load_json
    from babyvlm.plugins.recipe.balanced import balanced_records

    records = load_json(source)
    if not isinstance(records, list):
        raise DataError(f"{source}: expected a JSON list of LLaVA records, got {type(records).__name__}")
    if out.parent != source.parent:
        # image paths in the records are relative to the file's folder
        click.echo(f"note: {out} is not beside {source}; relative image paths resolve from {source.parent}")
    balanced = balanced_records(records, per_task=per_task, seed=seed, where=str(source))
    atomic_write_json(out, balanced, indent=None)
    before, after = Counter(r["task"] for r in records), Counter(r["task"] for r in balanced)
    for task in sorted(after):
        click.echo(f"{task}: {before[task]} -> {after[task]}")
    click.echo(f"wrote {out} ({len(balanced)} records)")
