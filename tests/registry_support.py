"""Shared helpers for tests that add in-process plugins: plugin objects that register CLI commands.
Importable from any test (``import registry_support``); the ``fresh_registry`` fixture is in conftest."""

from __future__ import annotations

from types import SimpleNamespace

import click

from babyvlm.core.hookspecs import hookimpl


def plugin_with_commands(**commands) -> SimpleNamespace:
    """An in-process plugin registering ``name=(component, info)`` commands."""
    def register_commands(register):
        for name, (component, info) in commands.items():
            register(name, component, **info)

    return SimpleNamespace(register_commands=hookimpl(register_commands))


def command_plugin(name: str, message: str) -> SimpleNamespace:
    """An in-process plugin registering one command ``name`` that prints ``message``."""
    return plugin_with_commands(**{name: (click.Command(name, callback=lambda: click.echo(message)), {})})
