"""Picture-slot tags (``BabyLLaVA(image_slots=K)``): each picture's tokens get the embedding of its place in
its sample; off by default; trained and frozen with the connector; kept by checkpoints; never in a LLaVA one."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from model_support import tiny_babyllava

from babyvlm.core.errors import ConfigError, ModelInputError
from babyvlm.plugins.babyllava.hf_export import export_blocker
from babyvlm.plugins.babyllava.model import BabyLLaVA

RNG = np.random.default_rng(0)


def picture() -> np.ndarray:
    return RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)


def samples() -> list[dict]:
    """Two samples: three pictures (a query and two options), then one."""
    return [{"conversations": [{"from": "human", "value": "<image>\nwhich is the ball? (A) <image> (B) <image>"},
                               {"from": "gpt", "value": "A"}], "images": [picture(), picture(), picture()]},
            {"conversations": [{"from": "human", "value": "<image>\nwhere is the cup?"},
                               {"from": "gpt", "value": "B"}], "images": [picture()]}]


def picture_positions(model: BabyLLaVA, batch: dict) -> list[list[int]]:
    """Per row, the expanded positions where each picture's tokens start, in reading order."""
    width = model.tokens_per_image
    rows = []
    for ids in batch["input_ids"].tolist():
        starts, position = [], 0
        for token in ids:
            if token == model.image_id:
                starts.append(position)
            position += width if token == model.image_id else 1
        rows.append(starts)
    return rows


def test_off_by_default_and_nothing_changes(tiny_tokenizer_dir):
    model = tiny_babyllava(tiny_tokenizer_dir)
    assert model.image_slots == 0 and "image_slots" not in model.spec
    assert not any("image_slots" in key for key in model.state_dict())


def test_each_pictures_tokens_get_the_embedding_of_its_slot(tiny_tokenizer_dir):
    model = tiny_babyllava(tiny_tokenizer_dir, image_slots=4).eval()
    table = model.connector.image_slots
    assert tuple(table.weight.shape) == (4, model.language_model.config.hidden_size)
    batch = model.prepare_batch(samples())
    with torch.no_grad():
        tagged = model.embed(batch["input_ids"], batch["pixel_values"], batch["attention_mask"]).inputs_embeds
        saved = table.weight.clone()
        table.weight.zero_()
        plain = model.embed(batch["input_ids"], batch["pixel_values"], batch["attention_mask"]).inputs_embeds
        table.weight.copy_(saved)
    difference = tagged - plain
    width = model.tokens_per_image
    tagged_positions = set()
    for row, starts in enumerate(picture_positions(model, batch)):
        for slot, start in enumerate(starts):
            block = difference[row, start:start + width]
            torch.testing.assert_close(block, saved[slot].expand_as(block))
            tagged_positions |= {(row, p) for p in range(start, start + width)}
    untouched = [(r, p) for r in range(difference.shape[0]) for p in range(difference.shape[1])
                 if (r, p) not in tagged_positions]
    assert untouched and all(float(difference[r, p].abs().max()) == 0.0 for r, p in untouched)  # text, padding


def test_the_table_trains_and_freezes_with_the_connector(tiny_tokenizer_dir):
    model = tiny_babyllava(tiny_tokenizer_dir, image_slots=4)
    table = model.connector.image_slots.weight
    model.freeze_backbones("1-alignment")
    assert table.requires_grad
    loss = model(**model.prepare_batch(samples()))["loss"]
    loss.backward()
    assert table.grad is not None and float(table.grad[:3].abs().sum()) > 0  # slots 0-2 were used
    assert float(table.grad[3].abs().sum()) == 0.0  # no sample has a fourth picture
    model.freeze_backbones("0-language")
    assert not table.requires_grad


def test_a_sample_with_more_pictures_than_slots_is_refused_by_name(tiny_tokenizer_dir):
    model = tiny_babyllava(tiny_tokenizer_dir, image_slots=2)
    with pytest.raises(ModelInputError, match=r"sample 0: 3 images, but the model tags at most 2 picture slots"):
        model(**model.prepare_batch(samples()))


@pytest.mark.parametrize("bad", [-1, True, 1.5, "2"])
def test_a_bad_slot_count_is_a_config_error(tiny_tokenizer_dir, bad):
    with pytest.raises(ConfigError, match="image_slots must be an integer >= 0"):
        tiny_babyllava(tiny_tokenizer_dir, image_slots=bad)


def test_checkpoints_keep_the_tags_and_never_claim_a_llava_layout(tiny_tokenizer_dir, tmp_path):
    model = tiny_babyllava(tiny_tokenizer_dir, encoder="vit", image_slots=3)
    assert export_blocker(model) == "picture-slot tags (image_slots) have no place in a LLaVA checkpoint"
    assert export_blocker(tiny_babyllava(tiny_tokenizer_dir, encoder="vit")) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the babyvlm-layout note
        model.save_pretrained(tmp_path / "ckpt")
    loaded = BabyLLaVA.from_pretrained(tmp_path / "ckpt")
    assert loaded.image_slots == 3 and loaded.spec["image_slots"] == 3
    torch.testing.assert_close(loaded.connector.image_slots.weight, model.connector.image_slots.weight)
    assert not (tmp_path / "ckpt" / "config.json").exists()  # no HF LLaVA config written


def test_a_picture_encoded_on_its_own_is_a_one_picture_sample(tiny_tokenizer_dir):
    """``encode_images`` without positions (the contrastive phase's call) tags every picture as slot 0, as a
    one-picture sample shows it, so the table gets a gradient in every phase that trains it (DDP needs that)."""
    model = tiny_babyllava(tiny_tokenizer_dir, image_slots=3).eval()
    table = model.connector.image_slots
    pixels = model.prepare_batch(samples())["pixel_values"]
    alone = model.encode_images(pixels)
    with torch.no_grad():
        saved = table.weight.clone()
        table.weight.zero_()
        untagged = model.encode_images(pixels)
        table.weight.copy_(saved)
    torch.testing.assert_close(alone.detach() - untagged, saved[0].expand_as(untagged))
    alone.float().mean().backward()
    assert float(table.weight.grad[0].abs().sum()) > 0


def test_batched_scoring_matches_one_sample_at_a_time_with_different_picture_counts(tiny_tokenizer_dir):
    """Slots count within each sample, so a sample scores the same alone and beside others."""
    model = tiny_babyllava(tiny_tokenizer_dir, image_slots=4).eval()
    batch = samples()
    together = model.loglikelihood(batch)
    apart = [model.loglikelihood([sample])[0] for sample in batch]
    for (joint, _), (single, _) in zip(together, apart, strict=True):
        assert joint == pytest.approx(single, abs=1e-4)
