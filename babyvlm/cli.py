"""The ``babyvlm`` command line. Built-in: ``plugins`` and ``components``; every other command
(``model``, ``data``, ``synth``, ``demo``, ...) comes from plugins through ``register_commands``.

``babyvlm --help`` lists plugin commands by the ``short_help`` they registered
(``register("model", "pkg.mod:group", short_help="...")``), so it imports no command module (and so
no torch); a command registered without one is imported to read its help. Errors: ``BabyVLMError``
and ``OSError`` (a file that cannot be read or written) print as one line naming the file; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys

import click

from babyvlm import __version__, registry
from babyvlm.core.errors import BabyVLMError, ComponentError
from babyvlm.core.kinds import KINDS


class PluginCommandGroup(click.Group):
    """A group whose subcommands are looked up in the registry's ``command`` table on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(registry.names("command")))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        builtin = super().get_command(ctx, name)
        if builtin is not None:
            return builtin
        try:
            return registry.get("command", name)
        except ComponentError as exc:
            if name in registry.names("command"):  # broken or conflicting plugin command
                raise click.ClickException(str(exc)) from exc
            return None

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BabyVLMError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            raise click.ClickException(describe_os_error(exc)) from exc

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's command list, but plugin commands' help comes from the registry (no import)."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, text) for name in names if (text := self._short_help(ctx, name, limit)) is not None]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def _short_help(self, ctx: click.Context, name: str, limit: int) -> str | None:
        """A command's one-line help; None hides it (click's ``hidden`` commands)."""
        registered = None if name in self.commands else registry.info("command", name).get("short_help")
        if isinstance(registered, str):  # used as is, like a command's own short_help=
            return " ".join(registered.split())
        try:
            command = self.get_command(ctx, name)
        except click.ClickException as exc:  # a broken plugin's command: listed with why
            return f"(unavailable: {exc.format_message()})"
        if command is None or command.hidden:
            return None
        return command.get_short_help_str(limit)


def describe_os_error(exc: OSError) -> str:
    """``PATH: reason`` for a file-system error (both paths for a failed rename or copy)."""
    reason = exc.strerror or str(exc)
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


@click.group(cls=PluginCommandGroup)
@click.version_option(__version__, prog_name="babyvlm")
def cli() -> None:
    """babyvlm: developmentally grounded vision-language research on plugins."""


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_command(as_json: bool) -> None:
    """List loaded plugins, their versions, components and status."""
    infos = registry.plugins()
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in infos], indent=2))
        return
    for info in infos:
        origin = "bundled" if info.bundled else info.package
        click.echo(f"{info.name} {info.version} ({origin}) [{info.status}]")
        if info.error:
            click.echo(f"    error: {info.error}")
        for kind, names in sorted(info.components.items()):
            click.echo(f"    {kind}: {', '.join(sorted(names))}")


@cli.command("components")
@click.argument("kind", required=False, type=click.Choice(list(KINDS)))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def components_command(kind: str | None, as_json: bool) -> None:
    """List registered components by kind, with the plugin providing each."""
    table = registry.components(kind)
    if as_json:
        click.echo(json.dumps(table, indent=2))
        return
    for k, entries in table.items():
        if not entries and kind is None:
            continue
        click.echo(f"{k}:")
        for name, plugin in entries.items():
            click.echo(f"    {name}  ({plugin})")


def main() -> None:
    from babyvlm.core.progress import show_each_warning_once

    show_each_warning_once()
    try:
        cli(standalone_mode=True)
    except BabyVLMError as exc:  # raised outside a command's invoke (e.g. while listing)
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
