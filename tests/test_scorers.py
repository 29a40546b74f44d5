"""Scorers: ``none`` keeps all; ``open_clip`` needs the package and local weights, and its scores filter samples.

The ``open_clip`` adapter is exercised with a stand-in ``open_clip`` module whose "CLIP" embeds an
image as a one-hot of its palette colour and a text as a one-hot of the colour it names, so
similarities are 1 (match) or 0, and a two-colour clip scores 0.71 against either colour.
"""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import test_builder_support as support
import torch

import babyvlm
from babyvlm import registry
from babyvlm.core.errors import ConfigError
from babyvlm.media import decode_jpeg
from babyvlm.plugins.pretraining_set.builder import BuildPlan, build_pretraining_set
from babyvlm.plugins.pretraining_set.stores import open_store

NAMES = ["red", "green", "blue", "yellow", "magenta", "cyan", "white", "black", "brown", "teal"]


def _one_hot(index: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(index), len(NAMES)).float()


class _ColourClip(torch.nn.Module):
    def encode_image(self, batch: torch.Tensor) -> torch.Tensor:
        return batch

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens


def _fake_open_clip() -> types.ModuleType:
    module = types.ModuleType("open_clip")

    def create_model_and_transforms(name, pretrained, device):
        assert name == "ViT-B-32" and pretrained.endswith("weights.bin")
        return _ColourClip(), None, lambda pil: _one_hot(support.nearest_colour(np.asarray(pil)))

    def get_tokenizer(name):
        return lambda texts: torch.stack([_one_hot(NAMES.index(t.split()[0])) for t in texts])

    module.create_model_and_transforms, module.get_tokenizer = create_model_and_transforms, get_tokenizer
    return module


@pytest.fixture
def fake_open_clip(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "open_clip", _fake_open_clip())
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"local weights")
    return weights


def test_none_keeps_everything():
    scorer = babyvlm.build("scorer", "none")
    assert scorer.score_images([np.zeros((4, 4, 3), np.uint8)], ["x"]) is None
    assert scorer.score_video([np.zeros((4, 4, 3), np.uint8)], "x") is None


def test_open_clip_missing_package_or_weights_is_a_clear_error(monkeypatch, tmp_path, fake_open_clip):
    with pytest.raises(ConfigError, match="checkpoint=PATH"):
        babyvlm.build("scorer", "open_clip")
    with pytest.raises(ConfigError, match=r"checkpoint .*missing\.pt not found"):
        babyvlm.build("scorer", dict(type="open_clip", checkpoint=str(tmp_path / "missing.pt")))
    monkeypatch.setitem(sys.modules, "open_clip", None)  # as if not installed
    with pytest.raises(ConfigError, match="needs the 'open_clip' package.*open_clip_torch"):
        babyvlm.build("scorer", dict(type="open_clip", checkpoint=str(fake_open_clip)))


def test_open_clip_scores_are_cosine_similarities(fake_open_clip):
    scorer = babyvlm.build("scorer", dict(type="open_clip", checkpoint=str(fake_open_clip)))
    assert (scorer.video_threshold, scorer.image_threshold) == (0.1, 0.2)  # the paper's
    red, blue = (np.full((8, 8, 3), support.PALETTE[i], np.uint8) for i in (0, 2))
    same, other = scorer.score_images([red, red], ["red", "blue"])
    assert (same, other) == (pytest.approx(1.0), pytest.approx(0.0))
    assert scorer.score_video([red, blue], "red") == pytest.approx(0.5 ** 0.5)
    assert scorer.score_video([red, red, blue], "red") > scorer.score_video([red, blue, blue], "red")


def test_build_filters_by_scores_and_picks_best_frames(tmp_path, fake_open_clip):
    support.register_fake_source()
    try:
        support.write_colour_video(tmp_path / "c" / "v.mp4", 10)
        # clip k covers seconds 2k and 2k+1; its text names the colour of second 2k+1, except clip 3's
        texts = [NAMES[2 * k + 1] for k in range(5)]
        texts[3] = "blue"
        entry = {"id": "S_20140101_0600_01", "video": "v.mp4", "child": "S", "age_months": 6,
                 "utterances": [[2.0 * k, None, texts[k]] for k in range(5)]}
        (tmp_path / "c" / "fake.json").write_text(json.dumps({"recordings": [entry]}))
        plan = BuildPlan(source="fake", root=tmp_path / "c", out=tmp_path / "s", scorer="open_clip",
                         scorer_options={"checkpoint": str(fake_open_clip)})  # the paper's thresholds
        result = build_pretraining_set(plan, log=lambda _: None)
    finally:
        registry.reset()
    assert dict(result.report.counts) == {"low_video_text_similarity": 1, "low_image_text_similarity": 4}
    assert result.manifest["counts"]["by_format"] == {"image": 4, "interleaved": 1, "video": 4}
    for _, sample in open_store(tmp_path / "s").iter_samples(["image", "interleaved"]):
        texts = [t["value"] for t in sample.conversations if t["from"] == "gpt"]
        for image, text in zip(sample.images, texts, strict=True):  # kept / best frames show the named colour
            assert NAMES[support.nearest_colour(decode_jpeg(image, sample.sample_id))] == text
        assert all(s is not None for s in sample.meta.get("scores", [sample.meta.get("score")]))
