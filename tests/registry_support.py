"""Shared helpers for tests that add in-process plugins: a fresh registry per test and plugin objects
that register CLI commands. Importable from any test (``import registry_support``)."""

from __future__ import annotations

from types import SimpleNamespace

import click
import pytest

from babyvlm import registry
from babyvlm.core.hookspecs import hookimpl


@pytest.fixture
def fresh_registry(monkeypatch):
    monkeypatch.setenv("BABYVLM_LOAD_PLUGINS", "")  # bundled plugins only, plus the ones a test adds
    registry.reset()
    yield
    registry.reset()


def plugin_with_commands(**commands) -> SimpleNamespace:
    """An in-process plugin registering ``name=(component, info)`` commands."""
    def register_commands(register):
        for name, (component, info) in commands.items():
            register(name, component, **info)

    return SimpleNamespace(register_commands=hookimpl(register_commands))


def command_plugin(name: str, message: str) -> SimpleNamespace:
    """An in-process plugin registering one command ``name`` that prints ``message``."""
    return plugin_with_commands(**{name: (click.Command(name, callback=lambda: click.echo(message)), {})})
