"""``max_age_months``: a store cut from the recordings of children up to an age (developmental sweeps)."""

from __future__ import annotations

import pytest
import test_builder_support as support
from test_builder_support import corpus, fake_source  # noqa: F401  (fixtures)

from babyvlm.core.errors import ConfigError
from babyvlm.plugins.pretraining_set import PretrainingSetBuilder
from babyvlm.plugins.pretraining_set.stores import open_store


def test_only_recordings_up_to_the_age_are_built_and_the_rest_are_counted(corpus, tmp_path):  # noqa: F811
    builder = PretrainingSetBuilder()
    result = builder.build("fake", corpus, tmp_path / "store", max_age_months=7.0, log=lambda line: None)
    ages = {sample.meta.get("recording_id") for _, sample in open_store(tmp_path / "store").iter_samples()}
    assert ages == {"S_20140100_0600_01"}  # 6.5 months; the 7.5 and 8.5 month recordings are left out
    age_filter = result.manifest["source"]["age_filter"]
    assert age_filter["max_age_months"] == 7.0
    assert age_filter["counts"] == {"older_than_max_age": 2}
    assert builder.recording_ids(tmp_path / "store") == {"S_20140100_0600_01"}


def test_resuming_with_another_age_is_refused(corpus, tmp_path):  # noqa: F811
    builder = PretrainingSetBuilder()
    builder.build("fake", corpus, tmp_path / "store", max_age_months=7.0, log=lambda line: None)
    with pytest.raises(Exception, match="max_age_months"):
        builder.build("fake", corpus, tmp_path / "store", max_age_months=8.0, log=lambda line: None)


@pytest.mark.parametrize("bad", [0, -3, "old", True])
def test_a_bad_age_is_a_config_error(bad, tmp_path):
    with pytest.raises(ConfigError, match="max_age_months"):
        PretrainingSetBuilder().build("fake", tmp_path, tmp_path / "store", max_age_months=bad)


def test_no_age_counts_as_skipped(tmp_path):
    root = support.write_corpus(tmp_path / "corpus", recordings=1)
    spec = (root / "fake.json").read_text().replace('"age_months": 6.5', '"age_months": null')
    (root / "fake.json").write_text(spec)
    with pytest.raises(Exception, match="no recordings"):
        PretrainingSetBuilder().build("fake", root, tmp_path / "store", max_age_months=30, log=lambda line: None)
