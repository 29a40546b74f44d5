"""Blank images: what a blind twin trains on (the builder's ``blank_images``) and what ``media.blank_image``
makes — by default one grey for every picture, nothing of the picture left; the mean-colour blank only as a
named option."""

from __future__ import annotations

import numpy as np
import test_builder_support as support  # noqa: F401
from test_builder_support import corpus, fake_source  # noqa: F401  (fixtures)

from babyvlm.media import BLANK_GREY, blank_image
from babyvlm.plugins.pretraining_set import PretrainingSetBuilder


def test_the_default_blank_is_the_same_grey_for_every_picture():
    rng = np.random.default_rng(0)
    dark, bright = (rng.integers(low, low + 40, (12, 20, 3), dtype=np.uint8) for low in (0, 200))
    assert (blank_image(dark) == BLANK_GREY).all() and (blank_image(bright) == BLANK_GREY).all()
    assert blank_image(dark).shape == dark.shape


def test_the_mean_colour_blank_keeps_size_and_mean_colour():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    blank = blank_image(image, "mean_colour")
    assert blank.shape == image.shape and blank.dtype == np.uint8
    assert (blank == blank[0, 0]).all()
    assert np.abs(blank[0, 0].astype(float) - image.reshape(-1, 3).mean(0)).max() <= 0.5


def test_the_builder_dataset_blanks_every_image_and_keeps_the_text(corpus, tmp_path):  # noqa: F811
    builder = PretrainingSetBuilder()
    builder.build("fake", corpus, tmp_path / "store", log=lambda line: None)
    seen = builder.dataset(tmp_path / "store")
    blind = builder.dataset(tmp_path / "store", blank_images=True)
    assert len(seen) == len(blind) > 0
    for index in range(len(seen)):
        real, blank = seen[index], blind[index]
        assert blank["conversations"] == real["conversations"] and blank["sample_id"] == real["sample_id"]
        for picture, nothing in zip(real["images"], blank["images"], strict=True):
            assert nothing.shape == picture.shape and (nothing == BLANK_GREY).all()
