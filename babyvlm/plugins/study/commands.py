"""CLI ``babyvlm study``: ``serve TASKS_DIR`` (the participant web app) and ``export DB --out DIR``."""

from __future__ import annotations

from pathlib import Path

import click

from babyvlm.core.errors import ConfigError
from babyvlm.webserver import bind_listener, listening_server


def _task_list(value: str | None, tasks_dir: Path, split: str) -> list[str]:
    """``--tasks`` as names; without it, every registered task that has ``split`` items in ``tasks_dir``."""
    if value is not None:
        names = [name.strip() for name in value.split(",") if name.strip()]
        if not names:
            raise ConfigError("--tasks: name at least one task, e.g. --tasks baby_pv,baby_count,baby_memory "
                              "(or leave it out for every task in the folder)")
        return names
    from babyvlm import registry

    names = []
    for name in registry.names("task"):
        item_path = getattr(registry.build("task", name), "item_path", None)  # optional: DevCV tasks say
        if callable(item_path) and item_path(tasks_dir, split).is_file():
            names.append(name)
    if not names:
        raise ConfigError(f"{tasks_dir}: no task has {split!r} items here (build some with `babyvlm tasks build`, "
                          f"or name tasks with --tasks)")
    return names


@click.group("study")
def study_group() -> None:
    """Run a participant study in the browser and export human results.

    Human baselines: `study serve` shows DevCV items to participants; `study export` writes their
    answers as a `human` result in the format of `babyvlm eval`.
    """


@study_group.command("serve")
@click.argument("tasks_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--tasks", default=None, help="Comma-separated task names (e.g. baby_pv,baby_count,baby_memory) "
              "[default: every task with items in TASKS_DIR].")
@click.option("--items-per-task", default=10, show_default=True, type=click.IntRange(1),
              help="Items per task; every participant sees the same ones, in their own order.")
@click.option("--split", default="test", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (loopback by default).")
@click.option("--db", "db_path", default="study.sqlite", show_default=True, type=click.Path(path_type=Path),
              help="SQLite file for the answers (reopened to resume a study).")
@click.option("--seed", default=0, show_default=True, help="Study seed: the items drawn and each participant's order.")
@click.option("--completion-url", default=None,
              help="Where to send participants at the end (e.g. Prolific's completion link; {PROLIFIC_PID} is filled in).")
@click.option("--title", default="Picture games", show_default=True)
def serve_command(tasks_dir: Path, tasks: str, items_per_task: int, split: str, port: int, host: str, db_path: Path,
                  seed: int, completion_url: str | None, title: str) -> None:
    """Serve a study over the items in TASKS_DIR (one domain folder of DevCV item files)."""
    from babyvlm.plugins.study.app import create_app
    from babyvlm.plugins.study.content import StudyContent
    from babyvlm.plugins.study.storage import StudyDB

    listener = bind_listener(host, port)  # a bad --host fails before the items load
    content = StudyContent(tasks_dir, _task_list(tasks, tasks_dir, split), items_per_task, split, seed)
    app = create_app(content, StudyDB(db_path), completion_url=completion_url, title=title)
    server = listening_server(app, host, listener)
    click.echo(f"study at http://{host}:{server.server_port}/ ({content.total_trials()} screens per participant, "
               f"answers in {db_path})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@study_group.command("export")
@click.argument("db_path", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--tasks-dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Where the study's items are now, if they moved.")
@click.option("--bootstrap", "resamples", default=200, show_default=True, type=click.IntRange(0))
def export_command(db_path: Path, out: Path, tasks_dir: Path | None, resamples: int) -> None:
    """Export DB as a `human` result (results format of `babyvlm eval`), agreement and item distributions."""
    from babyvlm.plugins.study.export import export_study

    summary = export_study(db_path, out, tasks_dir=tasks_dir, bootstrap_resamples=resamples)
    for domain, data in summary["domains"].items():
        click.echo(f"{domain}: human, {summary['config']['participants']} participants")
        click.echo(f"  {'entry':<24} {'metric':<22} {'human':>6} {'chance':>6} {'n':>4}")
        for name, task in data["tasks"].items():
            metric = task["primary_metric"]
            value, chance = task["metrics"].get(metric), task["chance"]
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            click.echo(f"  {name:<24} {metric:<22} {shown:>6} {chance if chance is None else f'{chance:.3f}':>6} "
                       f"{task['n']:>4}")
    skipped = summary["skipped"]
    if skipped["total"]:
        click.echo(f"skipped: {skipped['total']} ({', '.join(f'{k}: {v}' for k, v in skipped['counts'].items())})")
    click.echo(f"wrote {out}")


if __name__ == "__main__":  # `python -m babyvlm.plugins.study.commands` (before the entry point is installed)
    study_group()
