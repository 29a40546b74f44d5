"""Pictures fitted to the encoder once (``fit_image``, the trainer's ``FittedImages``): what the model
trains on is bit for bit what it trained on before, later draws are served from memory, the byte budget
holds, and bad pictures are still named."""

import io

import numpy as np
import pytest
import torch
from model_support import tiny_babyllava
from PIL import Image
from safetensors.torch import load_file

from babyvlm.core.contracts import ImageFitting
from babyvlm.core.errors import ModelInputError
from babyvlm.plugins.mmengine_trainer.fitted_images import FittedImages
from babyvlm.plugins.mmengine_trainer.trainer import MMEngineTrainer
from babyvlm.plugins.vit.encoder import IMAGENET_MEAN, IMAGENET_STD, pad_to_square, to_rgb_array

SHAPES = [(48, 64), (64, 48), (224, 224), (64, 64), (30, 30), (97, 41)]


def picture(seed: int, shape: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)


def samples(count: int = 6) -> list[dict]:
    answers = ["ball", "cup", "truck", "doggy"]
    return [{"sample_id": f"s{n}", "images": [picture(n, SHAPES[n % len(SHAPES)]), picture(100 + n, (56, 80))],
             "conversations": [{"from": "human", "value": "<image><image>\nWhat is it?"},
                               {"from": "gpt", "value": answers[n % 4]}]} for n in range(count)]


@pytest.mark.parametrize("encoder", ["cnn", "vit"])
def test_preprocessing_a_fitted_picture_gives_the_same_tensor(tiny_tokenizer_dir, encoder):
    model = tiny_babyllava(tiny_tokenizer_dir, encoder)
    assert isinstance(model, ImageFitting) and isinstance(model.encoder, ImageFitting)
    size = model.encoder.image_size
    for seed, shape in enumerate(SHAPES):
        original = picture(seed, shape)
        fitted = model.fit_image(original)
        assert fitted.shape == (size, size, 3) and fitted.dtype == np.uint8
        assert torch.equal(model.encoder.preprocess(fitted), model.encoder.preprocess(original)), shape
        assert np.array_equal(model.fit_image(fitted), fitted)  # fitting twice changes nothing


def preprocess_before_fitting(image, size: int) -> torch.Tensor:
    """The encoders' preprocessing as it was before ``fit_image`` existed (always through PIL's resize)."""
    square = pad_to_square(to_rgb_array(image))
    resized = Image.fromarray(square).resize((size, size), resample=Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (pixels - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)


def as_jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_fitted_pictures_give_what_preprocessing_gave_before(tiny_tokenizer_dir):
    model = tiny_babyllava(tiny_tokenizer_dir)
    inputs = [picture(seed, shape) for seed, shape in enumerate(SHAPES)]
    inputs += [Image.fromarray(picture(7, (40, 70))).convert("L"), Image.fromarray(picture(8, (64, 64))).convert("RGBA"),
               as_jpeg(picture(9, (224, 224))), as_jpeg(picture(10, (108, 216)))]
    for number, image in enumerate(inputs):
        before = preprocess_before_fitting(image, 64)
        assert torch.equal(model.encoder.preprocess(model.fit_image(image)), before), number
        assert torch.equal(model.encoder.preprocess(image), before), number


def test_later_draws_are_served_from_memory_and_equal_the_first(tiny_tokenizer_dir):
    model = tiny_babyllava(tiny_tokenizer_dir)
    data = samples()
    fitted = FittedImages(data, model.fit_image, max_bytes=2**30)
    first = [fitted[n] for n in range(len(data))]
    again = [fitted[n] for n in range(len(data))]
    assert fitted.stats() == {"draws": 12, "fitted": 6, "kept_items": 6,
                              "kept_bytes": 6 * 2 * 64 * 64 * 3, "over_budget": 0, "not_arrays": 0}
    for one, two in zip(first, again, strict=True):
        assert all(a is b for a, b in zip(one["images"], two["images"], strict=True))
        assert not one["images"][0].flags.writeable  # shared by every draw: read-only
    plain, cached = model.prepare_batch(data), model.prepare_batch(again)
    assert all(torch.equal(plain[key], cached[key]) for key in plain)


def test_the_datasets_own_arrays_and_the_kept_lists_are_left_alone(tiny_tokenizer_dir):
    model = tiny_babyllava(tiny_tokenizer_dir)
    own = picture(0, (64, 64))  # already the encoder's size: fit_image hands back this very array
    data = [{"sample_id": "s0", "images": [own], "conversations": samples(1)[0]["conversations"]}]
    fitted = FittedImages(data, model.fit_image, max_bytes=2**30)
    first = fitted[0]
    own[0, 0, 0] ^= 1  # the dataset's array stays writable, and the kept copy does not follow the edit
    assert first["images"][0][0, 0, 0] != own[0, 0, 0]
    first["images"].append("extra")
    assert len(fitted[0]["images"]) == 1


def test_pictures_an_encoder_cannot_fit_are_passed_on_not_kept():
    data = [{"sample_id": "s0", "images": [b"jpeg bytes"], "conversations": []}]
    fitted = FittedImages(data, lambda image: image, max_bytes=1)
    assert fitted[0]["images"] == [b"jpeg bytes"] and fitted[0]["images"] == [b"jpeg bytes"]
    assert fitted.stats()["kept_items"] == 0 and fitted.stats()["not_arrays"] == 1 and fitted.stats()["draws"] == 2


def test_items_past_the_budget_are_fitted_on_every_draw_and_counted(tiny_tokenizer_dir):
    model = tiny_babyllava(tiny_tokenizer_dir)
    one_item = 2 * 64 * 64 * 3
    fitted = FittedImages(samples(4), model.fit_image, max_bytes=one_item + 10)
    for _ in range(2):
        for n in range(4):
            assert fitted[n]["images"][0].shape == (64, 64, 3)
    assert fitted.stats() == {"draws": 8, "fitted": 7, "kept_items": 1, "kept_bytes": one_item, "over_budget": 3,
                              "not_arrays": 0}


def test_other_items_pass_through_and_bad_pictures_are_named(tiny_tokenizer_dir):
    model = tiny_babyllava(tiny_tokenizer_dir)
    assert FittedImages(["just text"], model.fit_image, 2**20)[0] == "just text"
    broken = samples(2)
    broken[1]["images"][1] = np.zeros((8, 8), np.uint8)  # not HxWx3
    with pytest.raises(ModelInputError, match=r"item 1 \(s1\), image 1: image array must be uint8 HxWx3"):
        FittedImages(broken, model.fit_image, 2**20)[1]


def train(tiny_tokenizer_dir, folder, **options):
    model = tiny_babyllava(tiny_tokenizer_dir)
    trainer = MMEngineTrainer(max_steps=6, lr=2e-3, batch_size=4, log_every=0, export=False, tensorboard=False,
                              **options)
    lines = []
    result = trainer.fit(model, samples(), log=lines.append, stage="3-instruction", work_dir=folder)
    return result, load_file(str(folder / "iter_6.safetensors")), lines


def test_training_with_fitted_pictures_equals_training_without(tiny_tokenizer_dir, tmp_path):
    cached, cached_weights, lines = train(tiny_tokenizer_dir, tmp_path / "cached")
    plain, plain_weights, _ = train(tiny_tokenizer_dir, tmp_path / "plain", image_cache_mb=0)
    assert cached.losses == plain.losses
    assert cached_weights.keys() == plain_weights.keys()
    assert all(torch.equal(cached_weights[k], plain_weights[k]) for k in plain_weights)
    assert cached.extra["fitted_images"] == {"draws": 24, "fitted": 6, "kept_items": 6,
                                             "kept_bytes": 6 * 2 * 64 * 64 * 3, "over_budget": 0, "not_arrays": 0}
    assert "fitted_images" not in plain.extra
    assert any("pictures fitted to the encoder once: 24 draws, 6 fitted, 6 items kept" in line for line in lines)


def test_with_loader_workers_the_budget_is_split_and_the_log_says_so(tiny_tokenizer_dir, tmp_path):
    workers, _, lines = train(tiny_tokenizer_dir, tmp_path / "workers", num_workers=2, image_cache_mb=10)
    plain, _, _ = train(tiny_tokenizer_dir, tmp_path / "plain", image_cache_mb=0)
    assert workers.losses == plain.losses and "fitted_images" not in workers.extra
    assert any("fitted to the encoder once in each of 2 loader workers (up to 5.0 MB each" in line for line in lines)
    trainer = MMEngineTrainer(num_workers=2, image_cache_mb=10)
    assert trainer.fitted_images(tiny_babyllava(tiny_tokenizer_dir), samples()).max_bytes == 5 * 2**20
