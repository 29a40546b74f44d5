"""Helpers the model tests share (plain functions, not fixtures): a BPE tokenizer trained on a tiny corpus, and
the tiny BabyLLaVA built on it."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import babyvlm


def tiny_tokenizer(corpus: Sequence[str], vocab_size: int = 300):
    """A ``bpe`` tokenizer trained in memory on ``corpus`` (too small for ``vocab_size``: that warning is
    expected and silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return babyvlm.build("tokenizer", dict(type="bpe", corpus=list(corpus), vocab_size=vocab_size, min_frequency=1))


def saved_tiny_tokenizer(folder: Path, corpus: Sequence[str], vocab_size: int = 300) -> Path:
    """``tiny_tokenizer`` saved into ``folder``; returns the folder."""
    return tiny_tokenizer(corpus, vocab_size).save(folder)


def tiny_babyllava(tokenizer_dir: Path, encoder: str = "cnn", template: str = "baby_v1", seed: int = 0, **options):
    """The ``tiny`` BabyLLaVA (``encoder`` + ``mlp2x_gelu`` + tiny LLaMA) on the tokenizer saved in
    ``tokenizer_dir``, initialised from ``seed``; ``options`` are further model fields (``image_slots=4``)."""
    import torch

    torch.manual_seed(seed)
    return babyvlm.build_model({"model": dict(
        type="babyllava", encoder=dict(type=encoder, preset="tiny"), connector=dict(type="mlp2x_gelu"),
        language_model=dict(type="llama", preset="tiny"), tokenizer=dict(type="bpe", path=str(tokenizer_dir)),
        template=template, **options)})
