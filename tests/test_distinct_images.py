"""Equal images in a batch are encoded once (``babyllava.model.distinct_images``) only where that is exact:
the features and the encoder's gradients match encoding every copy."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from babyvlm.plugins.babyllava.model import distinct_images
from babyvlm.plugins.cnn_encoder.encoder import CNNEncoder


def features_and_grads(encoder: nn.Module, pixels: torch.Tensor, dedupe: bool):
    encoder = copy.deepcopy(encoder)
    distinct, inverse = distinct_images(pixels, encoder) if dedupe else (pixels, None)
    features = encoder(distinct)
    if inverse is not None:
        features = features.index_select(0, inverse)
    weights = torch.linspace(-1, 1, features.numel(), dtype=features.dtype).reshape(features.shape)
    (features * weights).sum().backward()
    return features.detach(), [p.grad.clone() for p in encoder.parameters()], distinct.shape[0]


@pytest.mark.parametrize("training", [True, False])
def test_a_batch_of_one_blank_is_encoded_once_with_the_same_features_and_gradients(training):
    # float64: batch norm over a near-constant picture divides by a tiny deviation, which magnifies float32
    # rounding in either path; in double precision both agree to rounding
    torch.manual_seed(0)
    encoder = CNNEncoder("tiny").double().train(training)
    pixels = torch.full((6, 3, 64, 64), 0.25, dtype=torch.float64)
    plain, plain_grads, _ = features_and_grads(encoder, pixels, dedupe=False)
    once, once_grads, encoded = features_and_grads(encoder, pixels, dedupe=True)
    assert encoded == 1
    assert torch.allclose(plain, once, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-4, rtol=1e-4) for a, b in zip(plain_grads, once_grads, strict=True))


def test_repeated_pictures_are_shared_in_eval_mode_but_not_under_training_batch_norm():
    torch.manual_seed(0)
    encoder = CNNEncoder("tiny")
    base = torch.rand(3, 3, 64, 64)
    pixels = base[[0, 1, 0, 2, 1]]
    encoder.eval()
    plain, plain_grads, _ = features_and_grads(encoder, pixels, dedupe=False)
    once, once_grads, encoded = features_and_grads(encoder, pixels, dedupe=True)
    assert encoded == 3 and torch.allclose(plain, once, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-4, rtol=1e-4) for a, b in zip(plain_grads, once_grads, strict=True))
    encoder.train()  # batch statistics would change without the duplicates: every copy is encoded
    assert distinct_images(pixels, encoder)[1] is None


def test_dropout_in_training_keeps_every_copy():
    encoder = nn.Sequential(nn.Flatten(), nn.Dropout(0.5)).train()
    assert distinct_images(torch.zeros(4, 3, 8, 8), encoder)[1] is None
    assert distinct_images(torch.zeros(4, 3, 8, 8), encoder.eval())[0].shape[0] == 1


def test_the_shared_features_gradient_is_the_same_on_every_run():
    """A blind twin's batch is one blank many times over: the gather's backward must add the copies'
    gradients in a fixed order, or the twin trains differently on every run (it did, with two threads)."""
    from babyvlm.plugins.babyllava.model import BabyLLaVA

    torch.manual_seed(0)
    model = BabyLLaVA(encoder=dict(type="cnn", preset="tiny"),
                      language_model=dict(type="llama", preset="tiny", vocab_size=64), template=None)
    model.encoder.eval()
    blanks = torch.full((300, 3, 64, 64), 0.1)
    assert distinct_images(blanks, model.encoder)[0].shape[0] == 1  # encoded once, gathered back 300 times
    weights = torch.randn(300, model.tokens_per_image, model.connector.out_features)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        grads = set()
        for _ in range(8):
            model.zero_grad()
            (model.encode_images(blanks) * weights).sum().backward()
            grads.add(b"".join(p.grad.numpy().tobytes() for p in model.connector.parameters()))
    finally:
        torch.set_num_threads(threads)
    assert len(grads) == 1
