"""Test-wide setup and the fixtures tests share.

Triton kernels run in the CPU interpreter when no GPU is present; the variable must be set before
anything imports triton. Tests are in two tiers: the default (``make test``) and ``@pytest.mark.slow``
(``make test-all``, which CI runs).
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# tiny test models gain nothing from threads, and several test processes share the machine's cores
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
from model_support import saved_tiny_tokenizer  # noqa: E402

from babyvlm import registry  # noqa: E402

TINY_CORPUS = ["look at the ball", "where is the cup", "a big red truck", "the doggy is running"] * 4


@pytest.fixture
def fresh_registry(monkeypatch):
    """A registry rediscovered for this test and forgotten after it: bundled plugins, plus whatever the
    test adds with ``registry.register_plugin`` (installed third-party plugins are not loaded)."""
    monkeypatch.setenv("BABYVLM_LOAD_PLUGINS", "")
    registry.reset()
    yield registry
    registry.reset()


@pytest.fixture(scope="module")
def small_saycam_corpus(tmp_path_factory):
    """A 1.2-minute SAYCam-format synthetic corpus (64 px frames), written once per test module."""
    root = tmp_path_factory.mktemp("corpus") / "saycam"
    registry.get("command", "synth").main(
        ["saycam", str(root), "--minutes", "1.2", "--seed", "3", "--size", "64", "--video-minutes", "0.3", "--quiet"],
        standalone_mode=False)
    return root


@pytest.fixture(scope="module")
def tiny_tokenizer_dir(tmp_path_factory):
    """A BPE tokenizer trained on a 16-utterance corpus, saved once per module (for ``tiny_babyllava``)."""
    return saved_tiny_tokenizer(tmp_path_factory.mktemp("tokenizer"), TINY_CORPUS)
