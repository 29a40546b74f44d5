"""Model components: the ``vit`` encoder and its preprocessing, the connectors, the ``llama`` LM."""

import numpy as np
import pytest
import torch
from PIL import Image

import babyvlm
from babyvlm.core.errors import ConfigError, ModelInputError
from babyvlm.media import encode_jpeg
from babyvlm.plugins.vit.encoder import IMAGENET_MEAN, IMAGENET_STD


def denormalize(pixels: torch.Tensor) -> np.ndarray:
    """[3, H, W] normalized -> HxWx3 in 0..255 floats."""
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((pixels * std + mean) * 255.0).permute(1, 2, 0).numpy()


def test_vit_tiny_shapes_and_tokens_per_image():
    encoder = babyvlm.build("encoder", dict(type="vit", preset="tiny"))
    assert (encoder.image_size, encoder.hidden_size, encoder.num_tokens) == (64, 128, (64 // 16) ** 2 + 1)
    features = encoder(torch.randn(2, 3, 64, 64))
    assert features.shape == (2, 17, 128)
    smaller = babyvlm.build("encoder", dict(type="vit", preset="tiny", image_size=32, hidden_size=96))
    assert (smaller.num_tokens, smaller.hidden_size) == (5, 96)
    assert smaller(torch.randn(1, 3, 32, 32)).shape == (1, 5, 96)


def test_vit_output_is_the_final_layernorm_output_with_cls():
    encoder = babyvlm.build("encoder", dict(type="vit", preset="tiny"))
    captured = {}
    encoder.model.layers[-1].register_forward_hook(lambda module, args, output: captured.update(last=output))
    pixels = torch.randn(1, 3, 64, 64)
    features = encoder(pixels)
    expected = encoder.model.layernorm(captured["last"])
    torch.testing.assert_close(features, expected)
    assert not torch.allclose(features, captured["last"])  # the LayerNorm really was applied


def test_vit_paper_preset_shape_on_meta():
    with torch.device("meta"):
        encoder = babyvlm.build("encoder", dict(type="vit", preset="vit-l-16"))
    assert (encoder.image_size, encoder.hidden_size, encoder.num_tokens) == (224, 1024, 197)
    assert encoder.config.num_hidden_layers == 24 and encoder.config.intermediate_size == 4096
    assert encoder.config.num_attention_heads == 16 and encoder.config.patch_size == 16


def test_preprocess_pads_with_the_image_mean_colour_and_centres_it():
    encoder = babyvlm.build("encoder", dict(type="vit", preset="tiny", image_size=48))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(24, 48, 3), dtype=np.uint8)  # wide: padded top and bottom
    pixels = encoder.preprocess(image)
    assert pixels.shape == (3, 48, 48) and pixels.dtype == torch.float32
    restored = denormalize(pixels)  # 48x48 already: the resize is the identity
    mean_colour = np.round(image.reshape(-1, 3).mean(axis=0))
    np.testing.assert_allclose(restored[:12], np.broadcast_to(mean_colour, (12, 48, 3)), atol=1e-3)
    np.testing.assert_allclose(restored[36:], np.broadcast_to(mean_colour, (12, 48, 3)), atol=1e-3)
    np.testing.assert_allclose(restored[12:36], image, atol=1e-3)


def test_preprocess_resizes_and_applies_imagenet_normalization():
    encoder = babyvlm.build("encoder", dict(type="vit", preset="tiny"))
    white = np.full((100, 100, 3), 255, dtype=np.uint8)
    pixels = encoder.preprocess(white)
    assert pixels.shape == (3, 64, 64)
    for channel in range(3):
        expected = (1.0 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        assert torch.allclose(pixels[channel], torch.full((64, 64), expected), atol=1e-5)


def test_preprocess_accepts_arrays_pil_and_jpeg_bytes():
    encoder = babyvlm.build("encoder", dict(type="vit", preset="tiny"))
    image = np.zeros((40, 30, 3), dtype=np.uint8)
    image[:, :, 0], image[:20, :, 2] = 180, 90
    from_array = encoder.preprocess(image)
    torch.testing.assert_close(encoder.preprocess(Image.fromarray(image)), from_array)
    from_jpeg = encoder.preprocess(encode_jpeg(image, quality=95))
    assert from_jpeg.shape == from_array.shape
    assert (from_jpeg - from_array).abs().mean() < 0.1  # JPEG is lossy, but only slightly


@pytest.mark.parametrize("bad", [np.zeros((8, 8, 3), dtype=np.float32), np.zeros((8, 8), dtype=np.uint8),
                                 "not an image", np.zeros((0, 8, 3), dtype=np.uint8)])
def test_preprocess_rejects_bad_images(bad):
    encoder = babyvlm.build("encoder", dict(type="vit", preset="tiny"))
    with pytest.raises(ModelInputError):
        encoder.preprocess(bad)


def test_vit_rejects_unknown_preset_and_option():
    with pytest.raises(ConfigError, match="unknown preset 'vit-h'"):
        babyvlm.build("encoder", dict(type="vit", preset="vit-h"))
    with pytest.raises(ConfigError, match="hiden_size"):
        babyvlm.build("encoder", dict(type="vit", preset="tiny", hiden_size=64))
    with pytest.raises(ConfigError, match="not a multiple"):
        babyvlm.build("encoder", dict(type="vit", preset="tiny", image_size=40))


def test_connectors_compute_what_they_claim():
    mlp = babyvlm.build("connector", dict(type="mlp2x_gelu", in_features=6, out_features=10))
    features = torch.randn(2, 3, 6)
    expected = mlp.linear_2(torch.nn.functional.gelu(mlp.linear_1(features)))
    torch.testing.assert_close(mlp(features), expected)
    linear = babyvlm.build("connector", "linear", in_features=6, out_features=10)
    torch.testing.assert_close(linear(features), linear.proj(features))
    assert linear(features).shape == (2, 3, 10)
    with pytest.raises(ConfigError, match="in_features"):
        babyvlm.build("connector", "linear", in_features=0, out_features=10)


def test_paper_connector_size():
    with torch.device("meta"):
        mlp = babyvlm.build("connector", "mlp2x_gelu", in_features=1024, out_features=2048)
    assert sum(p.numel() for p in mlp.parameters()) == 1024 * 2048 + 2048 + 2048 * 2048 + 2048


def test_llama_presets():
    tiny = babyvlm.build("language_model", dict(type="llama", preset="tiny", vocab_size=300))
    assert tiny.config.vocab_size == 300 and tiny.get_input_embeddings().weight.shape == (300, 128)
    assert tiny(input_ids=torch.tensor([[2, 5, 7]])).logits.shape == (1, 3, 300)
    with torch.device("meta"):
        paper = babyvlm.build("language_model", dict(type="llama", preset="tinyllama-1.1b"))
    config = paper.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.num_key_value_heads,
            config.intermediate_size) == (22, 2048, 32, 4, 5632)
    assert (config.hidden_act, config.rms_norm_eps, config.max_position_embeddings) == ("silu", 1e-5, 8192)
    assert config.rope_parameters["rope_theta"] == 10000.0 and config.vocab_size == 6000
    assert paper.lm_head.weight is not paper.get_input_embeddings().weight  # untied


def test_llama_rejects_unknown_option():
    with pytest.raises(ConfigError, match="num_layers"):
        babyvlm.build("language_model", dict(type="llama", preset="tiny", num_layers=3))
    with pytest.raises(ConfigError, match="unknown preset"):
        babyvlm.build("language_model", dict(type="llama", preset="llama-70b"))
