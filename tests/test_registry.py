"""The component registry with in-process and fake entry-point plugins: lookups, and every error's message."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import babyvlm
from babyvlm import registry
from babyvlm.core.errors import (
    BrokenPluginError,
    ComponentError,
    ConfigError,
    DuplicateComponentError,
    UnknownComponentError,
)
from babyvlm.core.hookspecs import hookimpl


class ToyLinear(torch.nn.Module):
    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.proj = torch.nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)

    def output_tokens(self, input_tokens: int) -> int:
        return input_tokens


def plugin(**hooks) -> SimpleNamespace:
    """An in-process plugin object whose attributes are hook implementations."""
    return SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def connectors_plugin(*names: str) -> SimpleNamespace:
    def register_connectors(register):
        for name in names:
            register(name, ToyLinear)

    return plugin(register_connectors=register_connectors)


def write_distribution(root: Path, dist: str, version: str, entry_points: dict[str, str],
                       modules: dict[str, str]) -> None:
    """A minimal installed distribution (``*.dist-info`` + modules) that importlib.metadata finds on sys.path."""
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[babyvlm]\n{lines}")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)


@pytest.fixture(autouse=True)
def every_plugin(fresh_registry, monkeypatch):
    """These tests set BABYVLM_LOAD_PLUGINS themselves: start from it unset (every plugin loads)."""
    monkeypatch.delenv("BABYVLM_LOAD_PLUGINS", raising=False)


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Install fake distributions into a tmp dir on sys.path; forget their modules afterwards."""
    added: list[str] = []

    def install(dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
        write_distribution(tmp_path, dist, version, entry_points, modules)
        added.extend(modules)

    monkeypatch.syspath_prepend(str(tmp_path))
    yield install
    for module in added:
        sys.modules.pop(module, None)


def info(name: str) -> registry.PluginInfo:
    return {p.name: p for p in registry.plugins()}[name]


# ---- lookups -------------------------------------------------------------------------------
def test_in_process_plugin_builds_components():
    registry.register_plugin(connectors_plugin("toy_linear"), "toy_plugin")
    built = babyvlm.build("connector", dict(type="toy_linear", in_features=4, out_features=6))
    assert built(torch.zeros(2, 4)).shape == (2, 6)
    assert babyvlm.build("connector", "toy_linear", in_features=3, out_features=1).proj.in_features == 3
    assert registry.components("connector")["connector"]["toy_linear"] == "toy_plugin"
    listed = info("toy_plugin")
    assert (listed.status, listed.bundled, listed.components) == ("ok", False, {"connector": ["toy_linear"]})


def test_reset_forgets_in_process_plugins():
    registry.register_plugin(connectors_plugin("toy_linear"), "toy_plugin")
    registry.reset()
    assert "toy_linear" not in registry.names("connector")
    assert "toy_plugin" not in {p.name for p in registry.plugins()}


def test_bundled_tokenizer_and_templates_are_registered():
    assert "bpe" in registry.names("tokenizer")
    assert {"baby_plain", "baby_v1"} <= set(registry.names("template"))
    assert info("chat_templates").bundled and info("chat_templates").status == "ok"


def test_unknown_component_names_kind_available_and_close_match():
    registry.register_plugin(connectors_plugin("toy_linear", "toy_mlp"), "toy_plugin")
    with pytest.raises(UnknownComponentError) as caught:
        babyvlm.build("connector", dict(type="toy_linaer", in_features=1, out_features=1))
    message = str(caught.value)
    assert "unknown connector 'toy_linaer'" in message
    assert "Available connectors:" in message and "toy_linear" in message and "toy_mlp" in message
    assert "Did you mean 'toy_linear'?" in message
    assert isinstance(caught.value, KeyError)


def test_unknown_component_without_close_match_suggests_nothing():
    registry.register_plugin(connectors_plugin("toy_linear"), "toy_plugin")
    with pytest.raises(UnknownComponentError) as caught:
        registry.get("connector", "qqqq")
    assert "Did you mean" not in str(caught.value)
    assert "toy_linear" in str(caught.value)


def test_unknown_kind_lists_kinds():
    with pytest.raises(ComponentError, match=r"unknown component kind 'connecter'. Kinds: .*connector"):
        registry.get("connecter", "toy_linear")


def test_spec_without_type_is_refused():
    with pytest.raises(ConfigError, match=r"a connector spec: expected a registered name or dict\(type=name"):
        babyvlm.build("connector", dict(in_features=1))


# ---- conflicts -----------------------------------------------------------------------------
def test_two_plugins_registering_one_name_names_both():
    registry.register_plugin(connectors_plugin("twin"), "plugin_one")
    registry.register_plugin(connectors_plugin("twin"), "plugin_two")
    with pytest.raises(DuplicateComponentError) as caught:
        registry.get("connector", "twin")
    message = str(caught.value)
    assert "connector 'twin' is registered by more than one plugin: 'plugin_one' and 'plugin_two'" in message
    assert "BABYVLM_LOAD_PLUGINS" in message
    assert info("plugin_one").status == info("plugin_two").status == "ok"


def test_plugin_name_taken_twice():
    registry.register_plugin(connectors_plugin("a"), "same")
    with pytest.raises(ComponentError, match="a plugin named 'same' is already loaded"):
        registry.register_plugin(connectors_plugin("b"), "same")


# ---- broken plugins ------------------------------------------------------------------------
def raising_plugin() -> SimpleNamespace:
    def register_connectors(register):
        register("half_registered", ToyLinear)
        raise RuntimeError("license server unreachable")

    def register_templates(register):
        register("fine_template", ToyLinear)

    return plugin(register_connectors=register_connectors, register_templates=register_templates)


def test_plugin_raising_while_registering_is_broken_and_others_work():
    registry.register_plugin(raising_plugin(), "flaky")
    registry.register_plugin(connectors_plugin("toy_linear"), "healthy")
    flaky = info("flaky")
    assert flaky.status == "broken"
    assert flaky.error == "in register_connectors: RuntimeError: license server unreachable"
    assert info("healthy").status == "ok"
    assert babyvlm.build("connector", "toy_linear", in_features=1, out_features=1) is not None
    assert "bpe" in registry.names("tokenizer")


@pytest.mark.parametrize("kind, name", [("connector", "half_registered"), ("template", "fine_template")])
def test_using_a_broken_plugins_component_fails_with_its_error(kind, name):
    registry.register_plugin(raising_plugin(), "flaky")
    with pytest.raises(BrokenPluginError) as caught:
        babyvlm.build(kind, name)
    assert str(caught.value) == (f"{kind} '{name}' comes from plugin 'flaky', which is broken: "
                                 "in register_connectors: RuntimeError: license server unreachable")


def test_unknown_component_mentions_broken_plugins():
    registry.register_plugin(raising_plugin(), "flaky")
    with pytest.raises(UnknownComponentError, match=r"plugin 'flaky' is broken \(in register_connectors: "
                                                    r"RuntimeError: license server unreachable\)"):
        registry.get("connector", "not_there")


def test_invalid_component_name_breaks_the_plugin():
    registry.register_plugin(connectors_plugin("has space"), "sloppy")
    assert info("sloppy").status == "broken"
    assert "invalid connector name 'has space'" in info("sloppy").error


# ---- entry-point plugins -------------------------------------------------------------------
GOOD_MODULE = """
import torch
from babyvlm.core.hookspecs import hookimpl

class Identity(torch.nn.Identity):
    def output_tokens(self, input_tokens):
        return input_tokens

@hookimpl
def register_connectors(register):
    register("ep_identity", Identity)
"""


def test_entry_point_plugin_is_discovered(installed):
    installed("ep-good", "2.0.1", {"ep_good": "ep_good_module"}, {"ep_good_module": GOOD_MODULE})
    listed = info("ep_good")
    assert (listed.package, listed.version, listed.bundled, listed.status) == ("ep-good", "2.0.1", False, "ok")
    assert listed.components == {"connector": ["ep_identity"]}
    assert torch.equal(babyvlm.build("connector", "ep_identity")(torch.ones(2)), torch.ones(2))


def test_plugin_that_fails_to_import_is_broken_and_others_load(installed):
    installed("ep-bad", "0.3", {"ep_bad": "ep_bad_module"}, {"ep_bad_module": "raise ImportError('needs libfoo')\n"})
    installed("ep-good", "2.0.1", {"ep_good": "ep_good_module"}, {"ep_good_module": GOOD_MODULE})
    bad = info("ep_bad")
    assert (bad.status, bad.error, bad.package, bad.components) == ("broken", "ImportError: needs libfoo", "ep-bad", {})
    assert info("ep_good").status == "ok"
    with pytest.raises(UnknownComponentError, match=r"plugin 'ep_bad' is broken \(ImportError: needs libfoo\)"):
        registry.get("connector", "ep_missing")


def test_entry_point_to_a_missing_module_is_broken(installed):
    installed("ep-ghost", "1.0", {"ep_ghost": "no_such_module_anywhere"}, {})
    assert info("ep_ghost").status == "broken"
    assert "ModuleNotFoundError" in info("ep_ghost").error and "no_such_module_anywhere" in info("ep_ghost").error


@pytest.mark.parametrize("allow, loaded", [("", False), ("someone_else", False), ("ep_good", True),
                                            (" other , ep_good ", True)])
def test_load_plugins_env_filters_external_plugins_only(installed, monkeypatch, allow, loaded):
    installed("ep-good", "2.0.1", {"ep_good": "ep_good_module"}, {"ep_good_module": GOOD_MODULE})
    monkeypatch.setenv("BABYVLM_LOAD_PLUGINS", allow)
    names = {p.name for p in registry.plugins()}
    assert ("ep_good" in names) is loaded
    assert {"bpe_tokenizer", "chat_templates"} <= names


# ---- lazy import strings -------------------------------------------------------------------
LAZY_TARGET = "babyvlm_lazy_target"
LAZY_SOURCE = """
import torch

class LazyLinear(torch.nn.Linear):
    def output_tokens(self, input_tokens):
        return input_tokens

    class Doubled(torch.nn.Module):
        def forward(self, x):
            return 2 * x

        def output_tokens(self, input_tokens):
            return input_tokens
"""


def lazy_plugin(**components: str) -> SimpleNamespace:
    def register_connectors(register):
        for name, target in components.items():
            register(name, target)

    return plugin(register_connectors=register_connectors)


@pytest.fixture
def lazy_target(tmp_path, monkeypatch):
    """A module on sys.path that nothing has imported yet."""
    (tmp_path / f"{LAZY_TARGET}.py").write_text(LAZY_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(LAZY_TARGET, None)
    yield LAZY_TARGET
    sys.modules.pop(LAZY_TARGET, None)


def test_lazy_component_is_listed_without_import_and_imported_on_build(lazy_target):
    registry.register_plugin(lazy_plugin(lazy_linear=f"{lazy_target}:LazyLinear",
                                         lazy_double=f"{lazy_target}:LazyLinear.Doubled"), "lazy_plugin")
    assert registry.components("connector")["connector"]["lazy_linear"] == "lazy_plugin"
    assert info("lazy_plugin").components == {"connector": ["lazy_linear", "lazy_double"]}
    assert lazy_target not in sys.modules
    built = babyvlm.build("connector", dict(type="lazy_linear", in_features=4, out_features=6))
    module = sys.modules[lazy_target]
    assert type(built) is module.LazyLinear and built(torch.zeros(2, 4)).shape == (2, 6)
    assert registry.get("connector", "lazy_linear") is module.LazyLinear
    assert torch.equal(babyvlm.build("connector", "lazy_double")(torch.ones(3)), torch.full((3,), 2.0))


@pytest.mark.parametrize("target", ["babyvlm_lazy_target.LazyLinear", "babyvlm_lazy_target:", ":LazyLinear",
                                    "babyvlm_lazy_target:Lazy:Linear", "../evil:Thing", "mod:Lazy-Linear"])
def test_invalid_import_string_breaks_the_plugin_naming_it_and_the_string(target):
    registry.register_plugin(lazy_plugin(sloppy_linear=target), "sloppy_strings")
    registry.register_plugin(connectors_plugin("toy_linear"), "healthy")
    broken = info("sloppy_strings")
    assert broken.status == "broken"
    assert (f"plugin 'sloppy_strings': connector 'sloppy_linear' import string must look like "
            f"'package.module:Name', got {target!r}") in broken.error
    assert "sloppy_linear" not in registry.names("connector")
    assert babyvlm.build("connector", "toy_linear", in_features=1, out_features=1) is not None


@pytest.mark.parametrize("target, error", [
    ("babyvlm_no_such_module:Thing", "ModuleNotFoundError: No module named 'babyvlm_no_such_module'"),
    ("babyvlm_lazy_target:NoSuchClass", "AttributeError: module 'babyvlm_lazy_target' has no attribute 'NoSuchClass'"),
])
def test_import_string_that_does_not_import_is_a_broken_plugin_error_on_use(lazy_target, target, error):
    registry.register_plugin(lazy_plugin(ghost=target), "ghostly")
    assert info("ghostly").status == "ok"  # nothing is imported while listing
    with pytest.raises(BrokenPluginError) as caught:
        babyvlm.build("connector", "ghost")
    assert str(caught.value) == (f"connector 'ghost' comes from plugin 'ghostly', which is broken: "
                                 f"cannot import {target}: {error}")
    assert caught.value.plugin == "ghostly"
