"""``babyvlm tasks``: list, build, check, show, instructions and export the DevCV tasks."""

from __future__ import annotations

import json
import sys

import click

from babyvlm.core.errors import BabyVLMError, ConfigError
from babyvlm.core.io import parse_key_values


def _task_names(text: str | None) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


@click.group("tasks")
def tasks_group() -> None:
    """DevCV tasks: list, build, check, show, instructions, export."""


def _listed_task_names() -> list[str]:
    """Every registered task: the DevCV twelve in the toolbox's order, then other plugins' tasks by name."""
    from babyvlm import registry
    from babyvlm.plugins.devcv import TASKS

    registered = registry.names("task")
    return [name for name in TASKS if name in registered] + [name for name in registered if name not in TASKS]


def _task_row(name: str, plugin: str) -> dict:
    """One ``tasks list`` row; a task that cannot be built is listed with its error instead of failing the
    listing (fields outside the Task contract are optional for other plugins' tasks)."""
    import babyvlm

    try:
        task = babyvlm.build("task", name)
    except BabyVLMError as exc:
        return {"name": name, "plugin": plugin, "error": str(exc)}
    return {"name": name, "plugin": plugin, "domains": list(getattr(task, "domains", ())),
            "inputs": getattr(task, "inputs", ""), "answer_space": getattr(task, "answer_text", ""),
            "chance": round(task.chance(), 4), "primary_metric": task.primary_metric, "metrics": list(task.metrics),
            "held_out_of_instructions": bool(getattr(task, "held_out", False))}


@tasks_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_command(as_json: bool) -> None:
    """Every registered task: name, plugin, domains, inputs, answer space, chance, primary metric."""
    from babyvlm import registry

    owners = registry.components("task")["task"]
    rows = [_task_row(name, owners[name]) for name in _listed_task_names()]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    click.echo(f"{'task':24} {'plugin':16} {'domains':13} {'chance':>6}  {'primary':22} {'inputs':34} answer space")
    for row in rows:
        if "error" in row:
            click.echo(f"{row['name']:24} {row['plugin']:16} (unavailable: {row['error']})")
            continue
        click.echo(f"{row['name']:24} {row['plugin']:16} {','.join(row['domains']):13} {row['chance']:6.3f}  "
                   f"{row['primary_metric']:22} {row['inputs']:34} {row['answer_space']}")


@tasks_group.command("build")
@click.option("--source", "source_name", required=True, help="Registered source (babyvlm components source).")
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False), help="Corpus root folder.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Task folder: OUT/<domain>/...")
@click.option("--tasks", "task_list", default=None, help="Comma-separated task names (default: all twelve).")
@click.option("--splits", default=None, help="Comma-separated splits (default: the domain's: saycam "
              "train,val,test; ego4d test).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--domain", type=click.Choice(["saycam", "ego4d"]), default=None,
              help="in-domain (saycam) or out-of-domain (ego4d); default from the source name.")
@click.option("--max-items", type=int, default=200, show_default=True, help="Items per task and split (at most).")
@click.option("--source-opt", multiple=True, help="KEY=VALUE option for the source (repeatable).")
@click.option("--task-opt", multiple=True, help="KEY=VALUE option for every task (e.g. crop_size=64).")
@click.option("--split-fraction", "split_fraction", multiple=True,
              help="val=F or test=F: the share of in-domain sessions in that split (default val=0.15, test=0.15).")
@click.option("--instructions/--no-instructions", default=True, show_default=True,
              help="With the train split: also write the mixed LLaVA instruction set.")
def build_command(source_name: str, root: str, out: str, task_list: str | None, splits: str | None, seed: int,
                  domain: str | None, max_items: int, source_opt: tuple[str, ...], task_opt: tuple[str, ...],
                  split_fraction: tuple[str, ...], instructions: bool) -> None:
    """Build (or resume) the task files from a source's annotated recordings."""
    import time

    from babyvlm.plugins.devcv.runner import BuildRequest, build_tasks

    started = time.perf_counter()
    domain = domain or ("ego4d" if "ego4d" in source_name else "saycam")
    request = BuildRequest(source=source_name, root=root, out=out, domain=domain, tasks=_task_names(task_list),
                           splits=_task_names(splits), seed=seed,
                           source_options=parse_key_values(source_opt, "--source-opt"),
                           task_options={"max_items": max_items, **parse_key_values(task_opt, "--task-opt")},
                           split_fractions=_fractions(split_fraction))
    manifest = build_tasks(request, log=click.echo)
    if instructions and "train" in (request.splits or ["train"]) and domain == "saycam":
        from babyvlm.plugins.devcv.instructions import write_instructions

        for path in write_instructions(f"{out}/{domain}", seed=seed, log=click.echo):
            click.echo(f"instructions: {path}")
    total = sum(s["items"] for entry in manifest["tasks"].values() for s in entry["splits"].values())
    skipped = manifest.get("annotations", {}).get("skipped", {}).get("total", 0)
    click.echo(f"{out}/{domain}: {len(manifest['tasks'])} tasks, {total} items in {time.perf_counter() - started:.1f} s; "
               f"annotation records skipped: {skipped} (by reason and per task in {out}/{domain}/manifest.json)")


def _fractions(pairs: tuple[str, ...]) -> dict[str, float]:
    fractions = {}
    for key, value in parse_key_values(pairs, "--split-fraction").items():
        try:
            fractions[key] = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"--split-fraction {key}={value!r}: expected a number between 0 and 1") from None
    return fractions


@tasks_group.command("check")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--tasks", "task_list", default=None, help="Comma-separated task names (default: every file found).")
@click.option("--rebuild/--no-rebuild", default=True, show_default=True,
              help="Determinism: rebuild each task from the manifest's source into a temp folder, compare bytes.")
@click.option("--json", "as_json", is_flag=True)
def check_command(folder: str, task_list: str | None, rebuild: bool, as_json: bool) -> None:
    """Validity checks per task and split; exit 1 naming each failed task and check."""
    from babyvlm.plugins.devcv.checks import run_checks

    results = run_checks(folder, tasks=_task_names(task_list), rebuild=rebuild)
    failed = [r for r in results if not r.ok]
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=1))
    else:
        for result in results:
            click.echo(result.line())
        click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        for result in failed:
            click.echo(f"FAILED {result.where}: {result.check}: {result.detail}", err=True)
        sys.exit(1)


@tasks_group.command("show")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.argument("task_name")
@click.argument("item_id")
@click.option("--split", default=None, help="Split holding the item (default: found from the id, else test).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
def show_command(folder: str, task_name: str, item_id: str, split: str | None, out_path: str) -> None:
    """Render one item as a PNG contact sheet with its prompt and answer."""
    from babyvlm.plugins.devcv.show import show_item

    click.echo(f"wrote {show_item(folder, task_name, item_id, out_path, split=split)}")


@tasks_group.command("instructions")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--tasks", "task_list", default=None, help="Comma-separated tasks (default: all but the held-out).")
@click.option("--split", default="train", show_default=True)
@click.option("--per-task", is_flag=True, help="One instruction file per task instead of one mixed file.")
@click.option("--include-held-out", is_flag=True, help="Also Looking While Listening and Subitizing.")
@click.option("--seed", type=int, default=0, show_default=True, help="Shuffle of the mixed set.")
@click.option("--easy-match", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also N easy match-to-sample items per task whose items are a query picture, then one "
                   "picture per letter (the file name gets easyN).")
def instructions_command(folder: str, task_list: str | None, split: str, per_task: bool, include_held_out: bool,
                         seed: int, easy_match: int) -> None:
    """Write LLaVA-JSON instruction data (images beside it, paths relative) for training phase 3."""
    from babyvlm.plugins.devcv.instructions import write_instructions

    for path in write_instructions(folder, tasks=_task_names(task_list), split=split, per_task=per_task,
                                   include_held_out=include_held_out, seed=seed, easy_match=easy_match,
                                   log=click.echo):
        click.echo(f"wrote {path}")


@tasks_group.command("export")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["lmms-eval"]), required=True)
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Task folder to export (a build's OUT, or OUT/<domain>).")
@click.option("--mode", type=click.Choice(["generate", "loglikelihood"]), default="generate", show_default=True,
              help="generate: lmms-eval generates answers (generate_until / multi-round); loglikelihood: it scores "
                   "each option (multiple_choice). Looking While Listening is always scored by likelihood.")
@click.option("--tasks", "task_list", default="all", show_default=True, help="Comma-separated task names.")
def export_command(out: str, fmt: str, data_dir: str, mode: str, task_list: str) -> None:
    """Export task folders for an external harness (lmms-eval: YAML + utils.py, by the evaluation plugin).

    One lmms-eval doc is one whole item, so lmms-eval's --limit N scores the first N items of a task."""
    try:
        from babyvlm.plugins.evaluation.lmms import export_tasks
    except ImportError as exc:
        raise ConfigError(f"--format {fmt}: the evaluation plugin's exporter "
                          f"(babyvlm.plugins.evaluation.lmms.export_tasks) is not available ({exc})") from None
    written = list(export_tasks(data_dir, out, task_list, mode=mode) or [])
    click.echo(f"exported {data_dir} to {out}: {len(written)} task files (mode {mode})")
    for folder in sorted({path.parent for path in written}):
        click.echo(f"  run: lmms-eval eval --model babyvlm --model_args pretrained=CKPT --include_path {folder} "
                   f"--tasks {','.join(sorted(p.stem for p in written if p.parent == folder))} --output_path RESULTS "
                   f"--log_samples --verbosity DEBUG")
