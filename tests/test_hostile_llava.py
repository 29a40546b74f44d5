"""LLaVA JSON that a template cannot train on is refused or counted at import time (not later inside
``prepare_batch``); SAYCam-style frame names give an imported store its recordings back; export writes
one image as a string (LLaVA-1.5's form) unless asked for lists."""

from __future__ import annotations

import json

import numpy as np
import pytest
import test_builder_support as support
from click.testing import CliRunner

from babyvlm.cli import cli
from babyvlm.media import encode_jpeg
from babyvlm.plugins.pretraining_set.component import PretrainingSetBuilder
from babyvlm.plugins.pretraining_set.stores import open_store

# shared fixture: the fake source registered for every test (autouse)
fake_source = support.fake_source

STEM = "S_20141029_2412_02"
OTHER = "A_20150101_0805_01"


def human(value="<image>"):
    return {"from": "human", "value": value}


def gpt(value="a ball"):
    return {"from": "gpt", "value": value}


def write_llava(folder, records):
    folder.mkdir(parents=True, exist_ok=True)
    for record in records:
        for name in [record["image"]] if isinstance(record.get("image"), str) else record.get("image") or []:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(encode_jpeg(np.full((8, 8, 3), 100, np.uint8)))
    path = folder / "data.json"
    path.write_text(json.dumps(records))
    return path


def run(*args, ok=True):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert (result.exit_code == 0) == ok, result.output
    return result


BAD_CONVERSATIONS = {
    "empty_conversation": [],
    "unknown_role": [human(), {"from": "assistant", "value": "a ball"}],
    "gpt_turn_first": [gpt(), human()],
    "turns_not_alternating": [human(), human("and?"), gpt()],
    "no_final_answer": [human(), gpt(), human("more?")],
    "image_token_in_gpt_turn": [human(), gpt("<image> a ball")],
    "nul_byte": [human(), gpt("a\x00ball")],
}


def test_unusable_conversations_are_counted_at_import_and_refused_with_strict(tmp_path):
    records = [{"id": "good", "image": "good.jpg", "conversations": [human(), gpt()]}]
    records += [{"id": reason, "image": f"{reason}.jpg", "conversations": turns}
                for reason, turns in BAD_CONVERSATIONS.items()]
    path = write_llava(tmp_path / "llava", records)
    result = run("data", "import", path, "--out", tmp_path / "store")
    manifest = open_store(tmp_path / "store").manifest()
    assert manifest["counts"]["total"] == 1
    skips = manifest["skips"]
    assert skips["counts"] == dict.fromkeys(BAD_CONVERSATIONS, 1)
    assert skips["examples"]["turns_not_alternating"] == [
        f"{path} record 'turns_not_alternating' (#4) (turns 0 and 1 are both 'human')"]
    assert f"skipped: {len(BAD_CONVERSATIONS)}" in result.output

    refused = run("data", "import", path, "--out", tmp_path / "strict", "--strict", ok=False)
    assert f"{path} record 'empty_conversation' (#1): no turns (strict: refused" in refused.output
    assert not (tmp_path / "strict").exists()


@pytest.mark.parametrize("records, message", [
    ([], "the list of records is empty; nothing to import"),
    ([{"id": "x", "image": "x.jpg", "conversations": [gpt()]}], "no usable record (skipped: 1"),
])
def test_import_refuses_files_with_nothing_usable(tmp_path, records, message):
    path = write_llava(tmp_path / "llava", records)
    result = run("data", "import", path, "--out", tmp_path / "store", ok=False)
    assert message in result.output and not (tmp_path / "store").exists()


def test_import_refuses_an_image_that_is_a_fifo(tmp_path):
    import os

    path = write_llava(tmp_path / "llava", [{"id": "p", "image": "pipe.jpg", "conversations": [human(), gpt()]}])
    (tmp_path / "llava" / "pipe.jpg").unlink()
    os.mkfifo(tmp_path / "llava" / "pipe.jpg")
    result = run("data", "import", path, "--out", tmp_path / "store", ok=False)
    assert "record 'p' (#0): image 'pipe.jpg': not a regular file (a FIFO); refused" in result.output


def test_frame_names_give_an_imported_store_its_recordings(tmp_path):
    records = [
        {"id": "a", "image": f"frames/{STEM}_1000_2500_frame_0.jpg", "conversations": [human(), gpt("ball")]},
        {"id": "b", "image": [f"{OTHER}_0_900_frame_0.jpg", f"{OTHER}_0_900_frame_1.jpg"],
         "conversations": [human("<image>\n<image>"), gpt("dog")]},
        {"id": "c", "image": f"{STEM}_4000_5000_frame_1.jpg", "conversations": [human(), gpt("cup")]},
        {"id": "d", "image": "plain.jpg", "conversations": [human(), gpt("hat")]},
    ]
    run("data", "import", write_llava(tmp_path / "llava", records), "--out", tmp_path / "store")
    builder = PretrainingSetBuilder()
    assert builder.recording_ids(tmp_path / "store") == {STEM, OTHER, "llava-000000"}
    only = builder.dataset(tmp_path / "store", recordings=[STEM])
    assert sorted(item["sample_id"] for item in only) == ["a", "c"]
    meta = {item["sample_id"]: item["meta"] for item in builder.dataset(tmp_path / "store")}
    assert (meta["a"]["recording_id"], meta["a"]["child"], meta["a"]["date"], meta["a"]["clip"]) == (
        STEM, "S", "2014-10-29", [1.0, 2.5])
    assert meta["b"]["child"] == "A" and meta["b"]["clip"] == [0.0, 0.9]
    assert "recording_id" not in meta["d"]
    stats = open_store(tmp_path / "store").stats()
    assert stats["counts"]["by_child"] == {"A": 1, "S": 2, "unknown": 1}


def test_export_writes_one_image_as_a_string_unless_asked_for_lists(tmp_path):
    root = support.write_corpus(tmp_path / "corpus", recordings=1, seconds=4)
    run("data", "build", "--source", "fake", "--root", root, "--out", tmp_path / "store")
    run("data", "export", tmp_path / "store", tmp_path / "llava")
    records = json.loads((tmp_path / "llava" / "data.json").read_text())
    assert {type(r["image"]).__name__ for r in records if r["format"] == "image"} == {"str"}
    assert {type(r["image"]).__name__ for r in records if r["format"] != "image"} == {"list"}
    run("data", "export", tmp_path / "store", tmp_path / "llava", "--image-lists")  # replaces the older export
    records = json.loads((tmp_path / "llava" / "data.json").read_text())
    assert {type(r["image"]).__name__ for r in records} == {"list"}
    run("data", "import", tmp_path / "llava" / "data.json", "--out", tmp_path / "back")  # both forms import
    assert support.store_contents(tmp_path / "back") == support.store_contents(tmp_path / "store")
