"""The registry checks built components against their kind's contract, catches hook typos, and explains
the plugin allowlist."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest

import babyvlm
from babyvlm import registry
from babyvlm.core.contracts import CONTRACTS, missing_members, protocol_members
from babyvlm.core.errors import ComponentError, ConfigError, UnknownComponentError
from babyvlm.core.hookspecs import hookimpl
from babyvlm.core.kinds import KINDS
from babyvlm.core.specs import parse_spec, spec_dict


class HalfATrainer:
    """Has no ``fit``: not a trainer."""

    def train(self, model):
        return model


class WholeTrainer:
    def fit(self, model, dataset, log=print, **options):
        return SimpleNamespace(to_dict=lambda: {"steps": 0})


def plugin(**hooks) -> SimpleNamespace:
    return SimpleNamespace(**{name: hookimpl(function) for name, function in hooks.items()})


def test_every_kind_but_commands_has_a_contract():
    assert set(CONTRACTS) == set(KINDS) - {"command"}
    assert protocol_members(CONTRACTS["trainer"]) == ["fit"]
    assert protocol_members(CONTRACTS["connector"]) == ["__call__"]  # output_tokens is optional (TokenCounting)


def test_a_component_missing_its_contract_is_refused_naming_plugin_and_members(fresh_registry):
    registry.register_plugin(plugin(register_trainers=lambda register: register("half", HalfATrainer)), "halfway")
    with pytest.raises(ComponentError, match=r"trainer 'half' from plugin 'halfway' does not implement the "
                                             r"trainer contract .*missing fit"):
        babyvlm.build("trainer", "half")


def test_a_component_meeting_its_contract_builds(fresh_registry):
    registry.register_plugin(plugin(register_trainers=lambda register: register("whole", WholeTrainer)), "wholly")
    assert isinstance(babyvlm.build("trainer", "whole"), WholeTrainer)
    assert missing_members("trainer", WholeTrainer()) == []


@pytest.mark.parametrize("kind", ["source", "template", "tokenizer", "trainer", "builder", "kernels", "scorer"])
def test_bundled_components_meet_their_contracts(kind, fresh_registry):
    """Classes are checked for the contract's methods (data attributes are set when an instance is built)."""
    methods = [m for m in protocol_members(CONTRACTS[kind]) if callable(getattr(CONTRACTS[kind], m, None))]
    for name in registry.names(kind):
        component = registry.get(kind, name)
        if isinstance(component, type):
            assert [m for m in methods if not hasattr(component, m)] == [], f"{kind} {name!r}"


def test_a_hook_typo_marks_the_plugin_broken_with_a_did_you_mean(fresh_registry):
    info = registry.register_plugin(plugin(register_conectors=lambda register: None), "typo_plugin")
    assert info.status == "broken"
    assert "'register_conectors' matches no hook (did you mean 'register_connectors'?)" in info.error


def test_allowlist_naming_a_missing_plugin_warns_with_the_installed_ones(monkeypatch):
    monkeypatch.setenv("BABYVLM_LOAD_PLUGINS", "no_such_plugin")
    registry.reset()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            registry.names("connector")
        messages = [str(w.message) for w in caught]
        assert any("BABYVLM_LOAD_PLUGINS names plugin 'no_such_plugin', which is not installed" in m for m in messages)
    finally:
        registry.reset()


def test_unknown_component_mentions_the_allowlist_when_set(fresh_registry):
    with pytest.raises(UnknownComponentError, match="BABYVLM_LOAD_PLUGINS is set, so only these external plugins "
                                                    "load: none"):
        babyvlm.build("connector", "qformer")


def test_unknown_component_says_nothing_of_an_unset_allowlist(monkeypatch):
    monkeypatch.delenv("BABYVLM_LOAD_PLUGINS", raising=False)
    registry.reset()
    try:
        with pytest.raises(UnknownComponentError) as caught:
            babyvlm.build("connector", "qformer")
        assert "BABYVLM_LOAD_PLUGINS" not in str(caught.value)
    finally:
        registry.reset()


def test_one_spec_parser():
    assert parse_spec("vit", "encoder") == ("vit", {})
    assert parse_spec({"type": "vit", "preset": "tiny"}, "encoder") == ("vit", {"preset": "tiny"})
    spec = {"type": "vit", "sizes": [1, 2]}
    copied = spec_dict(spec, "encoder")
    copied["sizes"].append(3)
    assert spec["sizes"] == [1, 2]  # a deep copy
    for bad in ({"preset": "tiny"}, 3, None, "", {"type": 1}):
        with pytest.raises(ConfigError, match="model.encoder"):
            parse_spec(bad, "model.encoder")
