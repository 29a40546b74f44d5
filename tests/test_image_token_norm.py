"""Image-token standardisation (``BabyLLaVA(image_token_norm="running")``): the connector's output tokens centred
and scaled per channel by running statistics that move only while the connector trains; off by default; kept
by checkpoints; never in a LLaVA one."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from model_support import tiny_babyllava

from babyvlm.core.errors import ConfigError
from babyvlm.plugins.babyllava.hf_export import export_blocker
from babyvlm.plugins.babyllava.model import BabyLLaVA
from babyvlm.plugins.babyllava.token_norm import RunningTokenNorm
from babyvlm.plugins.mmengine_trainer.objectives import ModelLoss

RNG = np.random.default_rng(0)


def pictures(model: BabyLLaVA, count: int) -> torch.Tensor:
    size = int(model.encoder.image_size)
    return torch.from_numpy(RNG.random((count, 3, size, size), dtype=np.float32))


def sample() -> dict:
    images = [RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2)]
    return {"conversations": [{"from": "human", "value": "<image>\nsame as this? (A) <image>"},
                              {"from": "gpt", "value": "A"}], "images": images}


def test_off_by_default_and_nothing_changes(tiny_tokenizer_dir):
    model = tiny_babyllava(tiny_tokenizer_dir)
    assert model.image_token_norm is None and "image_token_norm" not in model.spec
    assert not any("image_token_norm" in key for key in model.state_dict())


def test_the_first_training_batch_sets_the_statistics_then_they_move_by_momentum():
    norm = RunningTokenNorm(8)
    first = torch.randn(4, 5, 8) * 3 + 7
    out = norm(first)
    flat = out.detach().reshape(-1, 8)
    torch.testing.assert_close(flat.mean(0), torch.zeros(8), atol=1e-4, rtol=0)
    torch.testing.assert_close(flat.std(0, unbiased=False), torch.ones(8), atol=1e-3, rtol=0)
    mean_before, var_before = norm.running_mean.clone(), norm.running_var.clone()
    second = torch.randn(4, 5, 8) - 2
    norm(second)
    flat = second.reshape(-1, 8)
    torch.testing.assert_close(norm.running_mean, mean_before + norm.momentum * (flat.mean(0) - mean_before))
    torch.testing.assert_close(norm.running_var,
                               var_before + norm.momentum * (flat.var(0, unbiased=False) - var_before))
    assert int(norm.batches_seen) == 2
    norm.eval()
    frozen = norm.running_mean.clone()
    norm(torch.randn(4, 5, 8) + 100)
    torch.testing.assert_close(norm.running_mean, frozen)  # evaluation never moves the statistics


def test_a_pictures_tokens_depend_on_that_picture_alone(tiny_tokenizer_dir):
    """The forward divides by the buffers, not by the batch: a picture gets the same tokens alone and beside
    others (so encoding each distinct picture once stays exact)."""
    model = tiny_babyllava(tiny_tokenizer_dir, image_token_norm="running")
    model.encoder.eval()  # the CNN's own batch norm would make the batch matter
    batch = pictures(model, 3)
    model.connector.train()
    model.encode_images(batch)  # statistics from a training batch
    model.connector.eval()
    with torch.no_grad():
        together = model.encode_images(batch)
        alone = model.encode_images(batch[:1])
    torch.testing.assert_close(together[:1], alone)


def test_different_pictures_no_longer_look_alike_to_attention(tiny_tokenizer_dir):
    """The reason for the option: a fresh MLP connector maps different pictures' tokens to nearly one direction;
    standardised, the same cell of two different pictures is far from parallel."""

    def cell_cosine(model: BabyLLaVA) -> float:
        model.encoder.eval()
        model.connector.train()
        with torch.no_grad():
            tokens = model.encode_images(pictures(model, 16))
        unit = F.normalize(tokens.float(), dim=-1)
        return float((unit[:8] * unit[8:]).sum(-1).mean())

    plain = cell_cosine(tiny_babyllava(tiny_tokenizer_dir, seed=1))
    standardised = cell_cosine(tiny_babyllava(tiny_tokenizer_dir, seed=1, image_token_norm="running"))
    assert plain > 0.8, plain
    assert standardised < 0.5, standardised


def test_it_trains_and_freezes_with_the_connector(tiny_tokenizer_dir):
    model = tiny_babyllava(tiny_tokenizer_dir, image_token_norm="running")
    norm = model.connector.image_token_norm
    objective = ModelLoss(model)
    model.freeze_backbones("0-language")  # the connector frozen: its statistics must not move either
    objective.train()
    objective(model.prepare_batch([sample()]))
    assert not norm.weight.requires_grad and int(norm.batches_seen) == 0
    model.freeze_backbones("1-alignment")
    objective.train()
    loss = objective(model.prepare_batch([sample()]))["loss"]
    loss.backward()
    assert int(norm.batches_seen) == 1
    assert norm.weight.grad is not None and float(norm.weight.grad.abs().sum()) > 0
    model.freeze_backbones("0-language")
    model.train()  # a trainer that leaves every part in training mode: a frozen norm still keeps its statistics
    model(**model.prepare_batch([sample()]))
    assert int(norm.batches_seen) == 1


def test_under_bf16_autocast_the_statistics_stay_float32_and_the_tokens_follow_autocast(tiny_tokenizer_dir):
    model = tiny_babyllava(tiny_tokenizer_dir, image_token_norm="running")
    model.freeze_backbones("1-alignment")
    model.connector.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tokens = model.encode_images(pictures(model, 2))
    norm = model.connector.image_token_norm
    assert tokens.dtype == torch.bfloat16 and norm.running_mean.dtype == torch.float32
    assert int(norm.batches_seen) == 1 and torch.isfinite(norm.running_var).all()


@pytest.mark.parametrize("bad", ["batch", True, 1])
def test_a_bad_kind_is_a_config_error(tiny_tokenizer_dir, bad):
    with pytest.raises(ConfigError, match="image_token_norm must be None"):
        tiny_babyllava(tiny_tokenizer_dir, image_token_norm=bad)


def test_checkpoints_keep_the_statistics_and_never_claim_a_llava_layout(tiny_tokenizer_dir, tmp_path):
    model = tiny_babyllava(tiny_tokenizer_dir, encoder="vit", image_token_norm="running")
    assert export_blocker(model) == "image-token standardisation (image_token_norm) has no place in a LLaVA checkpoint"
    model.connector.train()
    model.encode_images(pictures(model, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the babyvlm-layout note
        model.save_pretrained(tmp_path / "ckpt")
    loaded = BabyLLaVA.from_pretrained(tmp_path / "ckpt")
    assert loaded.image_token_norm == "running" and loaded.spec["image_token_norm"] == "running"
    torch.testing.assert_close(loaded.connector.image_token_norm.running_mean, model.connector.image_token_norm.running_mean)
    assert int(loaded.connector.image_token_norm.batches_seen) == 1


def test_a_connector_that_already_has_the_attribute_is_refused_by_name(tiny_tokenizer_dir):
    from babyvlm.plugins.babyllava.token_norm import attach_token_norm

    model = tiny_babyllava(tiny_tokenizer_dir, image_token_norm="running")
    with pytest.raises(ConfigError, match="already has an attribute 'image_token_norm'"):
        attach_token_norm(model.connector, "running", 8)
    with pytest.raises(ConfigError, match="image_token_norm needs a torch.nn.Module connector, got object"):
        attach_token_norm(object(), "running", 8)
