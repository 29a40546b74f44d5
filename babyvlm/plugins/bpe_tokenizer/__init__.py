"""Tokenizer plugin: the byte-level BPE tokenizer BabyVLM-V2 trains from scratch on transcripts.

Registered as ``bpe`` (kind ``tokenizer``). Build it from a config::

    build("tokenizer", dict(type="bpe", path="runs/tok"))                        # load a saved one
    build("tokenizer", dict(type="bpe", corpus=["look at the ball", ...]))       # train in memory
    build("tokenizer", dict(type="bpe", corpus_files=["transcripts.txt"], vocab_size=6000, min_frequency=3))

Fixed ids: ``<pad>``=0, ``<unk>``=1, ``<sos>``=2, ``<eos>``=3, ``<image>``=4. Text is NFKC-normalised and
lowercased. ``encode`` adds no special tokens (templates decide where ``<sos>``/``<eos>`` go); an
``<image>`` written in the text becomes the single id 4.

A corpus too small to reach ``vocab_size`` gives a smaller vocabulary (BPE stops when no pair reaches
``min_frequency``). That is not an error: ``vocab_size`` always reports the real size, which is what a
language model must size its embeddings by, and a ``UserWarning`` says how far short it fell.

The code lives in ``tokenizer.py``; importing this package (plugin discovery) does not import ``tokenizers``.
"""

from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins import lazy_exports

__all__ = ["BYTE_ALPHABET_SIZE", "CONFIG_FILE", "DEFAULT_MIN_FREQUENCY", "DEFAULT_VOCAB_SIZE", "EOS", "IMAGE",
           "MIN_VOCAB_SIZE", "MODEL_MAX_LENGTH", "PAD", "SOS", "SPECIAL_MAP_FILE", "SPECIAL_TOKENS",
           "TOKENIZER_FILE", "UNK", "BPETokenizer", "build_bpe_tokenizer"]
__getattr__ = lazy_exports(__name__, dict.fromkeys(__all__, "tokenizer"))


@hookimpl
def register_tokenizers(register) -> None:
    register("bpe", "babyvlm.plugins.bpe_tokenizer.tokenizer:build_bpe_tokenizer")
