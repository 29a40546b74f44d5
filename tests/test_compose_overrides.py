"""``--set`` overrides (``apply_overrides``): dotted keys, list indices, JSON values, and refusals."""

import pytest

from babyvlm.core.compose import apply_overrides, load_config
from babyvlm.core.errors import ConfigError


@pytest.fixture
def cfg():
    return load_config("demo")


def test_sets_nested_fields_list_items_and_new_leaves(cfg):
    apply_overrides(cfg, ["corpus.minutes=2", "phases.1.trainer.max_steps=7", "model.language_model.hidden_size=64",
                          'model.encoder={"type": "vit", "preset": "tiny", "image_size": 96}'])
    assert cfg.corpus.minutes == 2 and cfg.phases[1].trainer.max_steps == 7
    assert cfg.model.language_model.hidden_size == 64 and cfg.model.encoder.image_size == 96


@pytest.mark.parametrize(("pair", "message"), [
    ("language_model.hidden_size=0", "the config has no 'language_model' \\(there: corpus, ood_corpus, data"),
    ("phases.9.trainer.max_steps=1", "'phases.9' is not an index of a list of {n_phases}"),
    ("corpus=5", "'corpus' is a section; set one of its fields"),
    ("corpus.minutes.x=1", "'corpus.minutes' is a value, not a section"),
    ("=3", "expected KEY=VALUE"),
])
def test_refusals_name_the_key(cfg, pair, message):
    # the demo's phase count is the demo config's business, so the expected length is read from it
    with pytest.raises(ConfigError, match=message.format(n_phases=len(cfg.phases))):
        apply_overrides(cfg, [pair])
