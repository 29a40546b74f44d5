"""The ``bpe`` tokenizer plugin: fixed special ids, normalisation, training limits, persistence, HF loading, errors."""

from __future__ import annotations

import itertools
import json
import os
import warnings

import pytest
from tokenizers import AddedToken, Tokenizer, models

import babyvlm
from babyvlm.core.errors import ConfigError, DataError
from babyvlm.plugins.bpe_tokenizer.tokenizer import SPECIAL_TOKENS, BPETokenizer

# Tiny corpora cannot reach the requested vocab size; tests that care assert the warning explicitly.
pytestmark = pytest.mark.filterwarnings("ignore:BPE corpus too small:UserWarning")

WORDS = ["look", "at", "the", "ball", "doggy", "where", "is", "mommy", "kitty", "big", "red", "truck", "go"]


def baby_corpus() -> list[str]:
    """~500 short utterances built from a small vocabulary, so common words merge into single tokens."""
    return [" ".join(words) for words in itertools.permutations(WORDS[:8], 3)][:500]


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the small corpus cannot reach 6000 ids
        return BPETokenizer.train(baby_corpus())


def test_specials_sit_at_fixed_ids(tokenizer):
    assert [tokenizer.backend.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.sos_id, tokenizer.eos_id, tokenizer.image_id) == (0, 1, 2, 3, 4)


def test_encode_adds_no_specials_and_image_is_one_token(tokenizer):
    ids = tokenizer.encode("look at the ball")
    assert ids and min(ids) >= len(SPECIAL_TOKENS)
    with_image = tokenizer.encode("<image>look at the ball")
    assert with_image == [4] + ids
    assert tokenizer.encode("<image><image>") == [4, 4]


def test_frequent_words_merge_into_single_tokens(tokenizer):
    assert tokenizer.tokens("look at the ball") == ["look", "Ġat", "Ġthe", "Ġball"]


def test_nfkc_and_lowercase_normalisation(tokenizer):
    assert tokenizer.encode("ＬＯＯＫ At THE Ball") == tokenizer.encode("look at the ball")
    assert tokenizer.decode(tokenizer.encode("Where IS the Doggy?")) == "where is the doggy?"


def test_decode_skips_special_tokens(tokenizer):
    ids = [tokenizer.sos_id, tokenizer.image_id] + tokenizer.encode("look at the ball") + [tokenizer.eos_id, 0]
    assert tokenizer.decode(ids) == "look at the ball"


def test_unseen_characters_are_bytes_not_unk(tokenizer):
    ids = tokenizer.encode("café 🧸")
    assert tokenizer.unk_id not in ids
    assert tokenizer.decode(ids) == "café 🧸"


def test_encode_batch_matches_encode(tokenizer):
    texts = ["look at the ball", "<image> where is mommy", ""]
    assert tokenizer.encode_batch(texts) == [tokenizer.encode(t) for t in texts]


def test_min_frequency_controls_merges():
    filler = ["look at the ball"] * 5
    twice = BPETokenizer.train(filler + ["wxyz"] * 2, vocab_size=400, min_frequency=3)
    thrice = BPETokenizer.train(filler + ["wxyz"] * 3, vocab_size=400, min_frequency=3)
    assert len(twice.tokens("wxyz")) == 4
    assert thrice.tokens("wxyz") == ["wxyz"]


def test_small_corpus_gives_smaller_vocab_and_reports_real_size():
    with pytest.warns(UserWarning, match="vocab_size=6000"):
        small = BPETokenizer.train(["look at the ball"] * 4)
    assert small.requested_vocab_size == 6000
    assert 261 < small.vocab_size < 6000
    assert small.vocab_size == len(small.backend.get_vocab()) == len(small)
    assert max(small.encode("look at the ball, café!")) < small.vocab_size


def test_vocab_size_is_a_ceiling(tokenizer):
    capped = BPETokenizer.train(baby_corpus(), vocab_size=270)
    assert capped.vocab_size == 270
    assert tokenizer.vocab_size > 270


def test_save_load_roundtrip(tokenizer, tmp_path):
    folder = tokenizer.save(tmp_path / "tok")
    assert {p.name for p in folder.iterdir()} == {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}
    for loaded in (BPETokenizer.load(folder), BPETokenizer.load(folder / "tokenizer.json")):
        assert loaded.vocab_size == tokenizer.vocab_size
        text = "<image>Where is the KITTY? café"
        assert loaded.encode(text) == tokenizer.encode(text)
        assert loaded.decode(loaded.encode(text)) == tokenizer.decode(tokenizer.encode(text))


def test_a_failed_save_leaves_no_temp_file(tokenizer, tmp_path, monkeypatch):
    def disk_full(source, target):
        raise OSError(28, "No space left on device", str(target))

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        tokenizer.save(tmp_path / "tok")
    assert list((tmp_path / "tok").iterdir()) == []


def test_hugging_face_tokenizers_load_the_saved_folder(tokenizer, tmp_path):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    folder = tokenizer.save(tmp_path / "tok")
    text = "<image>look at the BIG ball"
    fast = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    assert fast(text, add_special_tokens=False).input_ids == tokenizer.encode(text)
    auto = AutoTokenizer.from_pretrained(str(folder))
    assert (auto.pad_token_id, auto.unk_token_id, auto.bos_token_id, auto.eos_token_id) == (0, 1, 2, 3)
    assert auto.convert_tokens_to_ids("<image>") == 4
    assert auto(text).input_ids == [2] + tokenizer.encode(text)  # <sos> prepended, as in training
    assert auto.decode(auto(text).input_ids, skip_special_tokens=True) == tokenizer.decode(tokenizer.encode(text))
    assert len(auto) == tokenizer.vocab_size


def test_load_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match=r"tokenizer file not found: .*nowhere \("):
        BPETokenizer.load(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"tokenizer file not found: .*/tokenizer\.json"):
        BPETokenizer.load(tmp_path)


def test_load_corrupt_file_names_the_path(tmp_path):
    (tmp_path / "tokenizer.json").write_text('{"model": {"type": "BPE", "vocab": ')
    with pytest.raises(DataError, match=r"cannot read tokenizer file .*tokenizer\.json"):
        BPETokenizer.load(tmp_path)


def _word_level_tokenizer(tokens: list[str], special: bool) -> Tokenizer:
    vocab = {t: i for i, t in enumerate(tokens + ["ball"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    if special:
        backend.add_special_tokens([AddedToken(t, special=True) for t in tokens])
    return backend


def test_load_rejects_specials_at_other_ids(tmp_path):
    reordered = ["<unk>", "<pad>", "<sos>", "<eos>", "<image>"]
    _word_level_tokenizer(reordered, special=True).save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(DataError, match=r"tokenizer .*tokenizer\.json: special token '<pad>' has id 1"):
        BPETokenizer.load(tmp_path)


def test_load_rejects_missing_or_non_special_specials(tmp_path):
    _word_level_tokenizer(list(SPECIAL_TOKENS[:4]), special=True).save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(DataError, match="'<image>' is missing"):
        BPETokenizer.load(tmp_path)
    _word_level_tokenizer(list(SPECIAL_TOKENS), special=False).save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(DataError, match="'<pad>' .* is not a special token"):
        BPETokenizer.load(tmp_path)


@pytest.mark.parametrize("corpus", [[], ["", "   ", "\n"]])
def test_empty_corpus_is_an_error(corpus):
    with pytest.raises(DataError, match="empty corpus"):
        babyvlm.build("tokenizer", dict(type="bpe", corpus=corpus))


def test_non_string_corpus_item_is_named():
    with pytest.raises(DataError, match="corpus item 1 is int"):
        BPETokenizer.train(["look", 7])


@pytest.mark.parametrize("options, message", [
    (dict(vocab_size=100), "vocab_size must be an integer >= 261"),
    (dict(min_frequency=0), "min_frequency must be an integer >= 1"),
])
def test_bad_training_options(options, message):
    with pytest.raises(ConfigError, match=message):
        BPETokenizer.train(baby_corpus(), **options)


def test_registry_builds_by_loading(tokenizer, tmp_path):
    tokenizer.save(tmp_path)
    loaded = babyvlm.build("tokenizer", dict(type="bpe", path=str(tmp_path)))
    assert isinstance(loaded, BPETokenizer)
    assert loaded.encode("the red truck") == tokenizer.encode("the red truck")


def test_registry_builds_by_training_from_files(tmp_path):
    corpus_file = tmp_path / "transcripts.txt"
    corpus_file.write_text("\n".join(baby_corpus()), encoding="utf-8")
    built = babyvlm.build("tokenizer", dict(type="bpe", corpus_files=[str(corpus_file)], vocab_size=280, min_frequency=2))
    assert built.vocab_size == 280
    assert built.tokens("look at the ball")[0] == "look"


def test_registry_combines_corpus_and_files(tmp_path):
    corpus_file = tmp_path / "more.txt"
    corpus_file.write_text("wxyz\nwxyz\n", encoding="utf-8")
    built = babyvlm.build("tokenizer", dict(type="bpe", corpus=["wxyz"], corpus_files=[corpus_file], min_frequency=3))
    assert built.tokens("wxyz") == ["wxyz"]


def test_missing_and_non_utf8_corpus_files_are_named(tmp_path):
    with pytest.raises(DataError, match=r"corpus file not found: .*absent\.txt"):
        babyvlm.build("tokenizer", dict(type="bpe", corpus_files=[str(tmp_path / "absent.txt")]))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café olé\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.txt is not UTF-8"):
        babyvlm.build("tokenizer", dict(type="bpe", corpus_files=[str(latin1)]))


@pytest.mark.parametrize("options, message", [
    (dict(), "needs 'path'"),
    (dict(path="x", corpus=["a"]), "not both"),
    (dict(corpus="look at the ball"), "list of texts"),
])
def test_factory_option_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        babyvlm.build("tokenizer", dict(type="bpe", **options))


def test_saved_config_names_every_special(tokenizer, tmp_path):
    config = json.loads((tokenizer.save(tmp_path) / "tokenizer_config.json").read_text())
    assert (config["pad_token"], config["unk_token"], config["bos_token"], config["eos_token"]) == SPECIAL_TOKENS[:4]
    assert config["additional_special_tokens"] == ["<image>"]
