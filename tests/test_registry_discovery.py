"""Entry-point discovery edge cases: two installed packages using one entry-point name."""

import sys

import pytest
from test_registry import write_distribution

from babyvlm import registry

PLUGIN_SOURCE = '''
import torch
from babyvlm import hookimpl

@hookimpl
def register_connectors(register):
    register("{component}", torch.nn.Linear)
'''


@pytest.fixture(autouse=True)
def installed_plugins_visible(fresh_registry, monkeypatch, tmp_path):
    """Every plugin loads (the variable unset) and distributions written to tmp_path are importable."""
    monkeypatch.delenv("BABYVLM_LOAD_PLUGINS", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for module in ("clash_a_mod", "clash_b_mod", "vit_impostor_mod"):
        sys.modules.pop(module, None)


def test_same_entry_point_name_in_two_packages_marks_the_second_broken(tmp_path):
    write_distribution(tmp_path, "clash-a", "1.0", {"shared_name": "clash_a_mod"},
                       {"clash_a_mod": PLUGIN_SOURCE.format(component="from_a")})
    write_distribution(tmp_path, "clash-b", "2.0", {"shared_name": "clash_b_mod"},
                       {"clash_b_mod": PLUGIN_SOURCE.format(component="from_b")})
    plugins = {p.name: p for p in registry.plugins()}
    assert plugins["shared_name"].status == "ok" and plugins["shared_name"].package == "clash-a"
    clash = plugins["shared_name (clash-b)"]
    assert clash.status == "broken"
    assert "'shared_name'" in clash.error and "'clash-a'" in clash.error
    assert registry.names("connector").count("from_a") == 1
    assert "from_b" not in registry.names("connector")


def test_bundled_plugin_wins_an_entry_point_name_clash(tmp_path):
    write_distribution(tmp_path, "impostor", "0.1", {"vit": "vit_impostor_mod"},
                       {"vit_impostor_mod": PLUGIN_SOURCE.format(component="impostor")})
    plugins = {p.name: p for p in registry.plugins()}
    assert plugins["vit"].bundled and plugins["vit"].status == "ok"
    assert plugins["vit (impostor)"].status == "broken"
    assert "'babyvlm'" in plugins["vit (impostor)"].error
