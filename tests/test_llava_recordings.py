"""Re-importing babyvlm's own LLaVA export keeps each sample in its recording (grouped by
``meta.recording_id``), so held-out-recording splits are the same before and after the round trip;
a ``meta.recording_id`` that cannot name a recording is refused naming the record."""

from __future__ import annotations

import json

import pytest
import test_builder_support as support
from click.testing import CliRunner

from babyvlm.cli import cli
from babyvlm.plugins.pretraining_set.component import PretrainingSetBuilder

corpus = support.corpus
fake_source = support.fake_source


def run(*args, ok: bool = True):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert (result.exit_code == 0) == ok, result.output
    assert "Traceback" not in result.output
    return result


def by_recording(builder: PretrainingSetBuilder, store, recordings) -> list[str]:
    return sorted(item["sample_id"] for item in builder.dataset(store, recordings=recordings))


def test_round_trip_keeps_recordings_and_held_out_splits(corpus, tmp_path):
    run("data", "build", "--source", "fake", "--root", corpus, "--out", tmp_path / "built")
    run("data", "export", tmp_path / "built", "--format", "llava", tmp_path / "llava")
    imported = run("data", "import", "--format", "llava", tmp_path / "llava" / "data.json", "--out", tmp_path / "back")
    builder = PretrainingSetBuilder()
    recordings = builder.recording_ids(tmp_path / "built")
    assert len(recordings) == 3 and builder.recording_ids(tmp_path / "back") == recordings
    assert "3 recording(s) recovered" in imported.output
    held_out = sorted(recordings)[:1]
    for store in (tmp_path / "built", tmp_path / "back"):  # the same split on both sides
        assert by_recording(builder, store, held_out) == by_recording(builder, tmp_path / "built", held_out)
        train = [item["sample_id"] for item in builder.dataset(store, exclude_recordings=held_out)]
        assert sorted(train) == sorted(set(by_recording(builder, tmp_path / "built", None))
                                       - set(by_recording(builder, tmp_path / "built", held_out)))
    assert support.store_contents(tmp_path / "back") == support.store_contents(tmp_path / "built")


@pytest.mark.parametrize("recording, message", [
    (["S"], "meta.recording_id must be a string, got list"),
    ("a/b", "meta.recording_id 'a/b' cannot name a recording"),
    ("  ", "meta.recording_id '  ' cannot name a recording"),
])
def test_a_recording_id_that_cannot_be_a_group_is_refused(corpus, tmp_path, recording, message):
    run("data", "build", "--source", "fake", "--root", corpus, "--out", tmp_path / "built")
    run("data", "export", tmp_path / "built", "--format", "llava", tmp_path / "llava")
    path = tmp_path / "llava" / "data.json"
    records = json.loads(path.read_text())
    records[2]["meta"]["recording_id"] = recording
    path.write_text(json.dumps(records))
    result = run("data", "import", "--format", "llava", path, "--out", tmp_path / "back", ok=False)
    assert f"record {records[2]['id']!r} (#2): {message}" in result.output
    assert not (tmp_path / "back").exists() or not any((tmp_path / "back").iterdir())
