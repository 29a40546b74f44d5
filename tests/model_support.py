"""Helpers the model tests share (plain functions, not fixtures): a BPE tokenizer trained on a tiny corpus."""

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
