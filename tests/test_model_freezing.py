"""The model owns what trains: ``parts``/``stages``/``freeze_backbones`` on BabyLLaVA, the config's ``freeze``
list holding in every stage (a conflicting stage or ``train`` list is an error naming both), and the
bundled model components passing their kinds' contracts."""

from __future__ import annotations

import pytest
import torch
from model_support import tiny_tokenizer

import babyvlm
from babyvlm.core.contracts import missing_members
from babyvlm.core.errors import ConfigError
from babyvlm.plugins.babyllava import BabyLLaVA
from babyvlm.plugins.babyllava.freezing import describe_trainable

EXPECTED_STAGES = {"0-language": ("language_model",), "0-vision": ("encoder",), "1-alignment": ("connector",),
                   "2-joint": ("connector", "language_model"),
                   "3-instruction": ("encoder", "connector", "language_model")}


def tiny(**options) -> BabyLLaVA:
    spec = dict(type="babyllava", encoder=dict(type="vit", preset="tiny", num_hidden_layers=1),
                connector="mlp2x_gelu", language_model=dict(type="llama", preset="tiny", num_hidden_layers=1))
    spec.update(options)
    with torch.device("meta"):  # only requires_grad matters here: no memory, no init time
        return babyvlm.build_model({"model": spec})


def trainable_parts(model: BabyLLaVA) -> dict[str, str]:
    """Per part: 'all', 'none' or 'some' of its parameters trainable."""
    states = {}
    for name, module in model.parts().items():
        flags = {p.requires_grad for p in module.parameters()}
        states[name] = "all" if flags == {True} else "none" if flags == {False} else "some"
    return states


def test_parts_and_stages_are_the_papers():
    model = tiny()
    assert set(model.parts()) == {"encoder", "connector", "language_model"}
    assert model.parts()["connector"] is model.connector
    assert model.stages() == EXPECTED_STAGES


@pytest.mark.parametrize("stage", list(EXPECTED_STAGES))
def test_each_stage_trains_exactly_its_parts_and_returns_counts(stage):
    model = tiny()
    model.freeze_backbones("3-instruction")  # start from everything trainable: the stage must freeze the rest
    counts = model.freeze_backbones(stage)
    expected = {part: "all" if part in EXPECTED_STAGES[stage] else "none" for part in model.parts()}
    assert trainable_parts(model) == expected
    for part, numbers in counts.items():
        params = sum(p.numel() for p in model.parts()[part].parameters())
        assert numbers == {"params": params, "trainable": params if part in EXPECTED_STAGES[stage] else 0}


def test_train_overrides_the_stage_parts_explicitly():
    model = tiny()
    model.freeze_backbones("1-alignment", train=["encoder", "connector"])
    assert trainable_parts(model) == {"encoder": "all", "connector": "all", "language_model": "none"}
    model.freeze_backbones("any label", train=["language_model.lm_head"])  # a sub-module; the stage is a label
    assert trainable_parts(model)["language_model"] == "some"
    assert all(p.requires_grad for p in model.language_model.lm_head.parameters())


def test_a_frozen_part_stays_frozen_and_asking_to_train_it_names_both():
    model = tiny(freeze=["encoder"])
    model.freeze_backbones("2-joint")
    assert trainable_parts(model) == {"encoder": "none", "connector": "all", "language_model": "all"}
    with pytest.raises(ConfigError, match=r"stage '3-instruction' trains 'encoder', but the model config "
                                          r"freezes 'encoder' \(freeze=\['encoder'\]\)"):
        model.freeze_backbones("3-instruction")
    with pytest.raises(ConfigError, match=r"train=\['connector', 'encoder.model'\] \(stage '1-alignment'\) "
                                          r"trains 'encoder.model', but the model config freezes 'encoder'"):
        model.freeze_backbones("1-alignment", train=["connector", "encoder.model"])
    # a refused request changed nothing
    assert trainable_parts(model) == {"encoder": "none", "connector": "all", "language_model": "all"}


def test_a_frozen_sub_module_inside_a_trained_part_stays_frozen():
    model = tiny(freeze=["language_model.model.embed_tokens"])
    counts = model.freeze_backbones("2-joint")
    assert not model.language_model.model.embed_tokens.weight.requires_grad
    assert model.language_model.lm_head.weight.requires_grad
    lm = counts["language_model"]
    assert lm["trainable"] == lm["params"] - model.language_model.model.embed_tokens.weight.numel()


@pytest.mark.parametrize("stage, train, message", [
    ("9-nonsense", None, r"unknown training stage '9-nonsense'\. Stages: 0-language, 0-vision, 1-alignment"),
    ("2-joint", [], r"train=\[\] for stage '2-joint' trains nothing"),
    ("2-joint", ["decoder"], r"cannot train 'decoder': no such part or sub-module \(parts: encoder, connector"),
    ("2-joint", [3], r"train must be a list of part names"),
])
def test_bad_stage_requests_are_config_errors(stage, train, message):
    with pytest.raises(ConfigError, match=message):
        tiny().freeze_backbones(stage, train=train)


def test_bad_freeze_option_is_a_config_error():
    with pytest.raises(ConfigError, match=r"cannot freeze 'vision': no such part"):
        tiny(freeze=["vision"])
    with pytest.raises(ConfigError, match=r"freeze must be a list of part names"):
        tiny(freeze=[None])


def test_describe_trainable_is_one_readable_line():
    model = tiny()
    line = describe_trainable(model.freeze_backbones("1-alignment"))
    assert "\n" not in line and line.startswith("trainable: encoder frozen (")
    connector = sum(p.numel() for p in model.connector.parameters())
    total = sum(p.numel() for p in model.parameters())
    assert f"connector {connector / 1e3:.4g}K/{connector / 1e3:.4g}K" in line
    assert line.endswith(f"({100 * connector / total:.1f}%)")
    assert model.describe_trainable(model.trainable_counts()) == line  # also reachable from the model


def test_bundled_model_components_pass_their_contracts():
    tokenizer = tiny_tokenizer(["look at the ball"] * 3)
    model = tiny()
    built = {"model": model, "encoder": model.encoder, "language_model": model.language_model,
             "tokenizer": tokenizer, "kernels": babyvlm.build("kernels", "triton"),
             "template": babyvlm.build("template", "baby_v1")}
    for name in ("mlp2x_gelu", "linear"):
        built[f"connector {name}"] = babyvlm.build("connector", name, in_features=8, out_features=16)
    assert {label: missing_members(label.split()[0], component) for label, component in built.items()} == {
        label: [] for label in built}
    assert babyvlm.build("connector", "linear", in_features=8, out_features=16).output_tokens(197) == 197


def test_a_component_missing_a_contract_member_is_refused_by_name():
    class Encoder(torch.nn.Module):  # forgot preprocess, hidden_size, image_size, num_tokens
        def forward(self, images):
            return images

    with pytest.raises(ConfigError, match=r"encoder Encoder does not implement the encoder contract "
                                          r"\(babyvlm.core.contracts\): missing hidden_size"):
        tiny(encoder=Encoder())


def test_a_connector_without_output_tokens_keeps_its_token_count_with_one_note():
    class Projection(torch.nn.Module):  # written against the docs from before output_tokens
        def forward(self, features):
            return features

    with pytest.warns(UserWarning, match="connector Projection has no output_tokens") as caught:
        first, second = tiny(connector=Projection()), tiny(connector=Projection())
    assert first.tokens_per_image == second.tokens_per_image == first.encoder.num_tokens
    assert sum("Projection" in str(w.message) for w in caught) == 1  # one note, not one per model
