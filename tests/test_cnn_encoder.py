"""Encoder ``cnn``: ResNeXt-style presets, token counts, the Encoder contract, and named option errors."""

import importlib

import numpy as np
import pytest
import torch

from babyvlm import registry
from babyvlm.core.contracts import missing_members
from babyvlm.core.errors import ConfigError
from babyvlm.plugins.cnn_encoder.encoder import CNNEncoder


def _registered():
    # until pyproject lists the plugin's entry point, register it in-process
    if "cnn" not in registry.names("encoder"):
        registry.register_plugin(importlib.import_module("babyvlm.plugins.cnn_encoder"), "cnn_encoder")


def test_tiny_gives_17_tokens_and_trains_features():
    torch.manual_seed(0)
    encoder = CNNEncoder("tiny")
    out = encoder(torch.randn(3, 3, 64, 64))
    assert out.shape == (3, 17, 128) == (3, encoder.num_tokens, encoder.hidden_size)
    assert torch.allclose(out[:, 0], out[:, 1:].mean(dim=1), atol=1e-5)  # token 0 is the mean token
    out.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())


def test_resnext50_has_the_published_size_and_49_tokens():
    encoder = CNNEncoder("resnext50")
    params = sum(p.numel() for p in encoder.parameters())
    assert 22e6 < params < 24e6  # ResNeXt-50 32x4d without its 2M classifier
    assert encoder.num_tokens == 49 and encoder.hidden_size == 2048 and encoder.image_size == 224
    with torch.no_grad():
        assert encoder.eval()(torch.zeros(1, 3, 224, 224)).shape == (1, 49, 2048)


def test_built_through_the_registry_it_satisfies_the_encoder_contract():
    _registered()
    encoder = registry.build("encoder", dict(type="cnn", preset="tiny", grid=2))
    assert missing_members("encoder", encoder) == []
    assert encoder.num_tokens == 5
    pixels = encoder.preprocess(np.full((40, 80, 3), 200, dtype=np.uint8))
    assert pixels.shape == (3, 64, 64) and pixels.dtype == torch.float32


@pytest.mark.parametrize(("options", "message"), [
    (dict(preset="huge"), "unknown preset 'huge'"),
    (dict(depth=3), "unknown option 'depth'"),
    (dict(grid=20), "grid=20 is larger than the 8x8 feature map"),
    (dict(stages=[]), "stages must be a non-empty list"),
    (dict(image_size=0), "image_size must be a whole number >= 1"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises(ConfigError, match=message):
        CNNEncoder(**{"preset": "tiny", **options})


def test_channels_last_activations_give_the_same_features_and_gradients_and_contiguous_weights():
    torch.manual_seed(0)
    fast = CNNEncoder("tiny")
    plain = CNNEncoder("tiny", channels_last=False)
    plain.load_state_dict(fast.state_dict())
    pixels = torch.randn(4, 3, 64, 64)
    layouts = {}

    def record(name):
        def hook(module, args, out):
            layouts[name] = out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
        return hook

    fast.stem.register_forward_hook(record("fast"))
    plain.stem.register_forward_hook(record("plain"))
    out_fast, out_plain = fast(pixels), plain(pixels)
    assert layouts == {"fast": True, "plain": False}  # the convolutions ran on NHWC activations, or did not
    assert torch.allclose(out_fast, out_plain, atol=1e-4)
    out_fast.square().sum().backward()
    out_plain.square().sum().backward()
    for (name, a), b in zip(fast.named_parameters(), plain.parameters(), strict=True):
        assert (a.grad - b.grad).norm() <= 1e-4 * b.grad.norm(), name
        assert a.is_contiguous() and a.grad.is_contiguous(), name  # safetensors saves contiguous tensors only
    with pytest.raises(ConfigError, match="channels_last must be true or false"):
        CNNEncoder("tiny", channels_last="yes")
