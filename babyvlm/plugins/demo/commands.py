"""The ``babyvlm demo`` command: the main job on the embedded default — ``babyvlm run demo`` under its
historical name (the same ``RunPipeline(config, work_dir).run()``, the same options). The held-out pretraining
loss check lives in ``heldout.py``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--out", "--work-dir", "out", default="demo_out", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Where every stage writes its outputs.")
@click.option("--config", "config_path", default="demo", show_default=True, help="Config file or preset name.")
@click.option("--set", "overrides", multiple=True,
              help="Override a config field, e.g. corpus.minutes=2 (VALUE is JSON, else a string).")
@click.option("--force", multiple=True, metavar="STAGE", help="Rerun this stage (and what depends on it) even if its cached outputs are current.")
@click.pass_context
def demo_command(ctx: click.Context, out: Path, config_path: str, overrides: tuple[str, ...],
                 force: tuple[str, ...]) -> None:
    """Run the end-to-end demo on the embedded synthetic infant world.

    The same as `babyvlm run demo`: the whole study, cached per stage, under this historical name.
    """
    from babyvlm.plugins.run_command.command import run_command

    ctx.invoke(run_command, config=config_path, work_dir=out, overrides=overrides, force=force)
