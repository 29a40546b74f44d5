"""``BPETokenizer`` and ``build_bpe_tokenizer`` (the ``bpe`` tokenizer), built on ``tokenizers``.

Ids, normalisation and training rules are described in the plugin's package docstring
(``babyvlm/plugins/bpe_tokenizer/__init__.py``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from tokenizers import (
    AddedToken,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from babyvlm.core.constants import EOS_ID, IMAGE_ID, PAD_ID, SOS_ID, SPECIAL_TOKENS, UNK_ID
from babyvlm.core.errors import ConfigError, DataError
from babyvlm.core.io import atomic_write_json, atomic_write_text

PAD, UNK, SOS, EOS, IMAGE = SPECIAL_TOKENS  # the shared convention: ids 0..4 (babyvlm.core.constants)
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_MAP_FILE = "special_tokens_map.json"
BYTE_ALPHABET_SIZE = 256
MIN_VOCAB_SIZE = len(SPECIAL_TOKENS) + BYTE_ALPHABET_SIZE  # specials + every byte, before any merge
DEFAULT_VOCAB_SIZE = 6000
DEFAULT_MIN_FREQUENCY = 3
MODEL_MAX_LENGTH = 8192


class BPETokenizer:
    """A ``tokenizers.Tokenizer`` whose specials sit at ids 0..4, with the small API models and templates use."""

    pad_id, unk_id, sos_id, eos_id, image_id = PAD_ID, UNK_ID, SOS_ID, EOS_ID, IMAGE_ID

    def __init__(self, tokenizer: Tokenizer, *, source: str = "<in memory>") -> None:
        _check_specials(tokenizer, source)
        self.backend = tokenizer
        self.source = source
        self.requested_vocab_size: int | None = None  # set by train(); may exceed vocab_size

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE,
              min_frequency: int = DEFAULT_MIN_FREQUENCY) -> BPETokenizer:
        """Train on ``texts`` (one utterance or document each). Raises ``DataError`` on an empty corpus."""
        _check_training_options(vocab_size, min_frequency)
        tokenizer = _untrained_tokenizer()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=[AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS],
            # Every byte is in the vocabulary, so no text ever needs <unk>.
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        counter = _NonEmptyCounter(texts)
        tokenizer.train_from_iterator(counter, trainer=trainer)
        if counter.non_empty == 0:
            raise DataError(f"cannot train a BPE tokenizer on an empty corpus ({counter.seen} texts, none with "
                            "any non-whitespace character)")
        # HF users calling tokenizer(text) get <sos> prepended, as in training; encode() below adds nothing.
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{SOS} $A", pair=f"{SOS} $A $B", special_tokens=[(SOS, cls.sos_id)])
        trained = cls(tokenizer)
        trained.requested_vocab_size = vocab_size
        if trained.vocab_size < vocab_size:
            warnings.warn(f"BPE corpus too small for vocab_size={vocab_size}: no further pair occurs "
                          f"{min_frequency}+ times, so the vocabulary has {trained.vocab_size} ids "
                          f"({counter.non_empty} texts)", UserWarning, stacklevel=2)
        return trained

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        """Load from a folder holding ``tokenizer.json`` (or from that file itself)."""
        file = Path(path)
        if file.is_dir():
            file = file / TOKENIZER_FILE
        if not file.is_file():
            raise DataError(f"tokenizer file not found: {file} (expected a folder holding {TOKENIZER_FILE}, "
                            "or that file)")
        try:
            tokenizer = Tokenizer.from_file(str(file))
        except Exception as exc:  # the Rust side raises a bare Exception for any parse error
            raise DataError(f"cannot read tokenizer file {file}: {exc}") from exc
        return cls(tokenizer, source=str(file))

    # ---- the API models and templates use ------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, no special tokens added; ``<image>`` maps to ``image_id``."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """``encode`` for many texts at once (parallel in the Rust backend)."""
        return [e.ids for e in self.backend.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``, skipping special tokens (so ``<image>`` and ``<eos>`` vanish)."""
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=True)

    def tokens(self, text: str) -> list[str]:
        """The byte-level token strings of ``text`` (for inspection)."""
        return self.backend.encode(text, add_special_tokens=False).tokens

    def id_to_token(self, token_id: int) -> str | None:
        return self.backend.id_to_token(int(token_id))

    # ---- persistence ---------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``tokenizer.json`` plus the Hugging Face side files; returns the folder."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / TOKENIZER_FILE, self.backend.to_str(pretty=True))
        atomic_write_json(out / CONFIG_FILE, _hf_config())
        atomic_write_json(out / SPECIAL_MAP_FILE, _hf_special_map())
        return out

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, source={self.source!r})"


def build_bpe_tokenizer(path: str | os.PathLike | None = None, corpus: Iterable[str] | None = None,
                        corpus_files: Sequence[str | os.PathLike] | None = None,
                        vocab_size: int = DEFAULT_VOCAB_SIZE,
                        min_frequency: int = DEFAULT_MIN_FREQUENCY) -> BPETokenizer:
    """Registry factory: ``path`` loads a saved tokenizer; ``corpus`` and/or ``corpus_files`` train one."""
    if path is not None:
        if corpus is not None or corpus_files is not None:
            raise ConfigError("tokenizer 'bpe': give either 'path' (load) or 'corpus'/'corpus_files' (train), not both")
        return BPETokenizer.load(path)
    if corpus is None and corpus_files is None:
        raise ConfigError("tokenizer 'bpe' needs 'path' (a saved tokenizer folder) or 'corpus'/'corpus_files' to train on")
    if isinstance(corpus, str) or isinstance(corpus_files, (str, os.PathLike)):
        raise ConfigError("tokenizer 'bpe': 'corpus' is a list of texts and 'corpus_files' a list of paths")
    return BPETokenizer.train(_corpus_texts(corpus or [], corpus_files or []), vocab_size, min_frequency)


# ---- helpers -----------------------------------------------------------------------------
def _untrained_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _check_training_options(vocab_size: int, min_frequency: int) -> None:
    if not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB_SIZE:
        raise ConfigError(f"tokenizer 'bpe': vocab_size must be an integer >= {MIN_VOCAB_SIZE} "
                          f"({len(SPECIAL_TOKENS)} specials + {BYTE_ALPHABET_SIZE} bytes), got {vocab_size!r}")
    if not isinstance(min_frequency, int) or min_frequency < 1:
        raise ConfigError(f"tokenizer 'bpe': min_frequency must be an integer >= 1, got {min_frequency!r}")


def _check_specials(tokenizer: Tokenizer, source: str) -> None:
    """Models and templates hard-wire ids 0..4, so a tokenizer with other ids would silently corrupt them."""
    added = tokenizer.get_added_tokens_decoder()
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        actual_id = tokenizer.token_to_id(token)
        if actual_id != expected_id:
            where = "is missing" if actual_id is None else f"has id {actual_id}"
            raise DataError(f"tokenizer {source}: special token {token!r} {where}; babyvlm needs "
                            + ", ".join(f"{t}={i}" for i, t in enumerate(SPECIAL_TOKENS)))
        if expected_id not in added or not added[expected_id].special:
            raise DataError(f"tokenizer {source}: {token!r} (id {expected_id}) is not a special token, so it "
                            "would be split by BPE and kept by decode")


class _NonEmptyCounter:
    """Streams the corpus into the trainer while counting texts, so an empty corpus is caught without a copy."""

    def __init__(self, texts: Iterable[str]) -> None:
        self._texts = texts
        self.seen = 0
        self.non_empty = 0

    def __iter__(self) -> Iterator[str]:
        for index, text in enumerate(self._texts):
            if not isinstance(text, str):
                raise DataError(f"tokenizer corpus item {index} is {type(text).__name__}, not a string")
            self.seen += 1
            if text.strip():
                self.non_empty += 1
                yield text


def _corpus_texts(corpus: Iterable[str], corpus_files: Sequence[str | os.PathLike]) -> Iterator[str]:
    """In-memory texts, then every line of each corpus file (UTF-8 text, one utterance per line)."""
    files = [Path(f) for f in corpus_files]
    for file in files:  # checked now, before a long training run, not halfway through it
        if not file.is_file():
            raise DataError(f"tokenizer corpus file not found: {file}")
    return _stream_corpus(corpus, files)


def _stream_corpus(corpus: Iterable[str], files: list[Path]) -> Iterator[str]:
    yield from corpus
    for file in files:
        try:
            with file.open(encoding="utf-8") as handle:
                for line in handle:
                    yield line.rstrip("\n")
        except UnicodeDecodeError as exc:
            raise DataError(f"tokenizer corpus file {file} is not UTF-8 text: {exc}") from exc


def _hf_special_map() -> dict[str, object]:
    return {"bos_token": SOS, "eos_token": EOS, "unk_token": UNK, "pad_token": PAD,
            "additional_special_tokens": [IMAGE]}


def _hf_config() -> dict[str, object]:
    return {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": MODEL_MAX_LENGTH,
            "clean_up_tokenization_spaces": False, **_hf_special_map()}

