"""A frozen encoder's output per picture computed once (``FeatureMemo``, the trainer's ``feature_cache_mb``):
the outputs are those of the encoder, an encoder that trains is never looked up, the byte budget holds, and a
frozen-encoder phase trains bit for bit as it did without it."""


import numpy as np
import pytest
import torch
from model_support import tiny_babyllava
from safetensors.torch import load_file

import babyvlm
from babyvlm.core.contracts import FeatureRemembering
from babyvlm.plugins.babyllava.feature_memo import FeatureMemo, picture_keys
from babyvlm.plugins.mmengine_trainer.trainer import MMEngineTrainer


def samples(count: int = 6) -> list[dict]:
    answers = ["ball", "cup", "truck", "doggy"]
    rng = np.random.default_rng(0)
    return [{"sample_id": f"s{n}", "images": [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(2)],
             "conversations": [{"from": "human", "value": "<image><image>\nWhat is it?"},
                               {"from": "gpt", "value": answers[n % 4]}]} for n in range(count)]


def frozen(encoder: torch.nn.Module) -> torch.nn.Module:
    return encoder.eval().requires_grad_(False)


@pytest.mark.parametrize("kind", ["cnn", "vit"])
def test_outputs_are_the_encoders_and_a_second_pass_is_served_from_memory(tiny_tokenizer_dir, kind):
    encoder = frozen(tiny_babyllava(tiny_tokenizer_dir, kind).encoder)
    pixels = torch.randn(6, 3, encoder.image_size, encoder.image_size)
    memo = FeatureMemo(2**30)
    with torch.no_grad():
        whole = encoder(pixels)
    first = memo.encode(pixels[:4], encoder)
    mixed = memo.encode(pixels[[5, 0, 4, 0]], encoder)  # two new pictures, one seen twice
    assert torch.equal(first, whole[:4]) and torch.equal(mixed, whole[[5, 0, 4, 0]])
    assert memo.stats() == {"pictures": 8, "reused": 2 + 0, "encoded": 6, "kept": 6,
                            "kept_bytes": 6 * whole[0].numel() * 4, "over_budget": 0, "bypassed": 0}


def test_an_encoder_that_trains_is_run_as_always_and_counted(tiny_tokenizer_dir):
    model = tiny_babyllava(tiny_tokenizer_dir)
    pixels = torch.randn(3, 3, 64, 64)
    memo = FeatureMemo(2**30)
    encoder = model.encoder.eval()  # eval mode, but its parameters train
    out = memo.encode(pixels, encoder)
    out.sum().backward()  # the gradient reaches the encoder
    assert any(p.grad is not None for p in encoder.parameters())
    frozen(encoder).train()  # parameters frozen, batch norm in training mode: its statistics would move
    memo.encode(pixels, encoder)
    frozen(encoder)
    memo.encode(pixels.clone().requires_grad_(True), encoder)  # a saliency map needs the pixels' gradient
    assert memo.stats()["bypassed"] == 9 and memo.stats()["pictures"] == 0 and not memo.kept


def test_outputs_past_the_budget_are_encoded_again_and_counted(tiny_tokenizer_dir):
    encoder = frozen(tiny_babyllava(tiny_tokenizer_dir).encoder)
    pixels = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        whole = encoder(pixels)
    one = whole[0].numel() * 4
    memo = FeatureMemo(one + 1)
    assert torch.equal(memo.encode(pixels, encoder), whole)
    assert torch.equal(memo.encode(pixels, encoder), whole)
    assert memo.stats() == {"pictures": 6, "reused": 1, "encoded": 5, "kept": 1, "kept_bytes": one,
                            "over_budget": 4, "bypassed": 0}


def test_keys_tell_dtypes_shapes_and_pixels_apart():
    picture = torch.zeros(1, 3, 4, 4)
    keys = set()
    for variant in (picture, picture.to(torch.bfloat16), picture.reshape(1, 3, 2, 8), picture + 1e-7, picture.double()):
        keys.update(picture_keys(variant))
    assert len(keys) == 5 and picture_keys(picture) == picture_keys(torch.zeros(1, 3, 4, 4))
    pair = torch.stack([picture[0], picture[0] + 1])
    assert picture_keys(pair) == [picture_keys(picture)[0], picture_keys(picture + 1)[0]]


def test_a_training_sub_module_or_a_hook_makes_the_encoder_not_frozen(tiny_tokenizer_dir):
    encoder = frozen(tiny_babyllava(tiny_tokenizer_dir).encoder)
    pixels = torch.randn(2, 3, 64, 64)
    memo = FeatureMemo(2**30)
    next(m for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)).train()  # its statistics would move
    memo.encode(pixels, encoder)
    encoder.eval()
    calls = []
    handle = encoder.register_forward_hook(lambda *_: calls.append(1))
    memo.encode(pixels, encoder)
    memo.encode(pixels, encoder)
    assert len(calls) == 2 and memo.stats()["bypassed"] == 6 and not memo.kept  # the hook ran on every call
    handle.remove()
    memo.encode(pixels, encoder)
    assert memo.stats()["encoded"] == 2


def test_the_model_remembers_only_inside_the_context_and_refuses_nesting(tiny_tokenizer_dir):
    model = tiny_babyllava(tiny_tokenizer_dir)
    assert isinstance(model, FeatureRemembering) and model.feature_memo is None
    with pytest.raises(ValueError, match="boom"), model.remember_frozen_features(2**20) as memo:
        assert model.feature_memo is memo
        with pytest.raises(RuntimeError, match="nested"), model.remember_frozen_features(2**20):
            pass
        memo.encode(torch.randn(2, 3, 64, 64), frozen(model.encoder))
        assert memo.kept
        raise ValueError("boom")
    assert model.feature_memo is None and not memo.kept and memo.stats()["kept"] == 2  # freed, still counted


def train(tiny_tokenizer_dir, folder, stage: str, **options):
    model = tiny_babyllava(tiny_tokenizer_dir)
    trainer = MMEngineTrainer(max_steps=6, lr=2e-3, batch_size=4, log_every=0, export=False, tensorboard=False,
                              **options)
    lines = []
    result = trainer.fit(model, samples(), log=lines.append, stage=stage, work_dir=folder)
    return result, load_file(str(folder / "iter_6.safetensors")), lines


def test_a_frozen_encoder_phase_trains_the_same_with_its_features_remembered(tiny_tokenizer_dir, tmp_path):
    remembered, weights, lines = train(tiny_tokenizer_dir, tmp_path / "memo", "2-joint", feature_cache_mb=64)
    plain, plain_weights, plain_lines = train(tiny_tokenizer_dir, tmp_path / "plain", "2-joint")  # the default: off
    assert remembered.losses == plain.losses
    assert weights.keys() == plain_weights.keys() and all(torch.equal(weights[k], plain_weights[k]) for k in weights)
    stats = remembered.extra["frozen_features"]
    # 6 steps x 4 items x 2 pictures over 6 items: each of the 12 pictures encoded once; a picture drawn twice in
    # one batch (an epoch boundary) reaches the memo once (the model encodes a batch's distinct pictures)
    assert (stats["encoded"], stats["kept"]) == (12, 12) and 40 <= stats["pictures"] <= 48
    assert stats["reused"] == stats["pictures"] - 12 and stats["bypassed"] == 0
    assert "frozen_features" not in plain.extra
    assert any(f"each picture encoded once: {stats['pictures']} pictures, {stats['reused']} reused, 12 encoded"
               in line for line in lines)
    assert not any("encoded once" in line for line in plain_lines)


def test_a_phase_that_trains_the_encoder_is_not_changed(tiny_tokenizer_dir, tmp_path):
    remembered, weights, lines = train(tiny_tokenizer_dir, tmp_path / "memo", "3-instruction", feature_cache_mb=64)
    plain, plain_weights, _ = train(tiny_tokenizer_dir, tmp_path / "plain", "3-instruction")
    assert remembered.losses == plain.losses and all(torch.equal(weights[k], plain_weights[k]) for k in weights)
    assert 40 <= remembered.extra["frozen_features"]["bypassed"] <= 48
    assert remembered.extra["frozen_features"]["pictures"] == 0
    assert not any("encoded once" in line for line in lines)


def test_the_budget_is_checked_and_changing_it_is_a_harmless_resume_setting():
    with pytest.raises(babyvlm.core.errors.ConfigError, match="feature_cache_mb"):
        MMEngineTrainer(feature_cache_mb=-1)
    from babyvlm.plugins.mmengine_trainer.checkpoints import HARMLESS_SETTINGS
    assert "feature_cache_mb" in HARMLESS_SETTINGS
