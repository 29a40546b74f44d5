"""Hostile annotation files and task options for ``babyvlm tasks build``, as real CLI processes: boxes out
of frame, 1e12 wide, NaN or Infinity; malformed COCO fields (NaN / string ``frame_index``, string
``time_sec``, a list category id, width 0, +-1e6 frame); each record left out is counted, named, printed
in the build's console summary and stored in its manifest, no bad value reaches an item file, and bad
``--task-opt`` values and an empty ``choices`` list are refused naming the option or the item."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from babyvlm.core.errors import DataError
from babyvlm.core.records import SkipReport
from babyvlm.plugins.devcv.annotations import read_annotations

BABYVLM = str(Path(sys.executable).with_name("babyvlm"))
TASKS = "baby_count,baby_localize,baby_pv"


def babyvlm(*args: object, expect: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([BABYVLM, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert result.returncode == expect, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile_annotations") / "corpus"
    babyvlm("synth", "saycam", root, "--minutes", 1, "--video-minutes", 0.25, "--size", 64, "--quiet")
    return root


# what each hostile record looks like, and the reason it is counted under
HOSTILE_IMAGES = [
    ({"frame_index": float("nan")}, "image_bad_frame_index"),
    ({"frame_index": "abc"}, "image_bad_frame_index"),
    ({"time_sec": "late"}, "image_bad_time_sec"),
    ({"width": 0}, "image_bad_size"),
    ({"frame_index": 1_000_000}, "image_frame_outside_video"),
    ({"frame_index": -1_000_000}, "image_bad_frame_index"),
]
HOSTILE_BOXES = [
    ([float("nan"), 2, 10, 10], "annotation_bbox_not_numbers"),
    ([2, 2, float("inf"), 10], "annotation_bbox_not_numbers"),
    ([2, 2, "wide", 10], "annotation_bbox_not_numbers"),
    ([-500, -500, 20, 20], "annotation_box_outside_frame"),
    ([10, 10, 1e12, 1e12], "annotation_box_clipped"),
]


def poison(root: Path) -> tuple[Path, dict[str, int]]:
    """Hostile records written into one annotation file (as JSON a careless tool writes: NaN, Infinity)."""
    path = sorted((root / "annotations").glob("*.objects.json"))[0]
    data = json.loads(path.read_text())
    expected: dict[str, int] = {}
    frames = data["images"]
    for number, (change, reason) in enumerate(HOSTILE_IMAGES):
        frames[number].update(change)
        expected[reason] = expected.get(reason, 0) + 1
    spoiled = {frames[n]["id"] for n in range(len(HOSTILE_IMAGES))}
    expected["annotation_on_left_out_image"] = sum(a["image_id"] in spoiled for a in data["annotations"])
    target = frames[len(HOSTILE_IMAGES)]["id"]
    category = data["categories"][0]["id"]
    for bbox, reason in HOSTILE_BOXES:
        data["annotations"].append({"image_id": target, "category_id": category, "bbox": bbox, "track_id": 99})
        expected[reason] = expected.get(reason, 0) + 1
    data["categories"].append({"id": [7, 8], "name": "listed"})
    data["annotations"].append({"image_id": target, "category_id": [7, 8], "bbox": [1, 1, 5, 5]})
    expected["category_bad_id"] = 1
    expected["annotation_bad_category_id"] = 1
    # the frame with the NaN / Infinity boxes is left out whole, its good boxes with it (counted once, above)
    path.write_text(json.dumps(data))  # json writes NaN and Infinity as the bare (invalid JSON) tokens
    return path, expected


def test_hostile_annotations_are_counted_named_and_never_become_gold_answers(corpus, tmp_path):
    root = tmp_path / "corpus"
    shutil.copytree(corpus, root)
    path, expected = poison(root)
    out = tmp_path / "tasks"
    result = babyvlm("tasks", "build", "--source", "saycam", "--root", root, "--out", out, "--tasks", TASKS,
                     "--max-items", 30, "--no-instructions")
    total = sum(expected.values())
    manifest = json.loads((out / "saycam" / "manifest.json").read_text())
    counted = manifest["annotations"]["skipped"]
    assert counted["counts"] == expected and counted["total"] == total
    assert any(path.name in example for examples in counted["examples"].values() for example in examples)
    assert "images[0] (frame_index nan)" in " ".join(counted["examples"]["image_bad_frame_index"])
    lines = result.stdout.splitlines()
    assert any(line.startswith("annotations: 4 files,") and f"records skipped: {total} — " in line for line in lines)
    assert lines[-1].endswith(f"annotation records skipped: {total} (by reason and per task in "
                              f"{out}/saycam/manifest.json)")
    for name in TASKS.split(","):  # each task's own report, on its console line and in the manifest
        report = manifest["tasks"][name]["report"]
        assert report["counts"]["image_bad_frame_index"] >= 1
        assert any(line.startswith(f"{name}: ") and f"skipped: {report['total']} (" in line for line in lines), name
    for item_file in (out / "saycam").glob("*.json"):
        text = item_file.read_text()
        assert "NaN" not in text and "Infinity" not in text, item_file.name  # only valid JSON is written
        for item in json.loads(text) if isinstance(json.loads(text), list) else []:
            for value in _numbers(item):
                assert math.isfinite(value) and abs(value) <= 64, (item_file.name, item.get("id"), value)


def _numbers(value):
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in ("id",):
                yield from _numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)


def test_boxes_are_clipped_to_the_frame_and_untrusted_extras_are_never_trusted(tmp_path):
    path = tmp_path / "v.objects.json"
    path.write_text(json.dumps({
        "fps": 5, "width": 64, "height": 48, "categories": [{"id": 1, "name": "ball"}, {"id": 1, "name": "again"}],
        "images": [{"id": 0, "frame_index": 0}, {"id": 1, "frame_index": 1.0}, {"id": 2, "frame_index": 1},
                   {"id": 0, "frame_index": 5}, {"id": 3, "frame_index": 12}],
        "annotations": [{"image_id": 0, "category_id": 1, "bbox": [60, 40, 10, 10], "track_id": "seven",
                         "visible_fraction": float("nan")},
                        {"image_id": 1, "category_id": 1, "bbox": [-1e6, 5, 1e12, 5]},
                        {"image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2], "track_id": 3.0,
                         "visible_fraction": 0.5}]}))
    report = SkipReport()
    frames = read_annotations(path, report, frame_count=10)
    assert [f.frame_index for f in frames] == [0, 1]
    clipped = frames[0].boxes[0]
    assert clipped.bbox == (60.0, 40.0, 4.0, 8.0) and clipped.track_id is None and clipped.visible_fraction == 0.0
    assert frames[1].boxes[0].bbox == (0.0, 5.0, 64.0, 5.0) and frames[1].boxes[1].track_id == 3
    assert dict(report.counts) == {"category_duplicate_id": 1, "image_duplicate_frame_index": 1,
                                   "image_duplicate_id": 1, "image_frame_outside_video": 1,
                                   "annotation_box_clipped": 2, "annotation_bad_track_id": 1,
                                   "annotation_bad_visible_fraction": 1}
    assert report.examples["image_frame_outside_video"] == ["v.objects.json:images[4] (frame_index 12 of a 10-frame video)"]
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match="v.objects.json: expected a JSON object with images, annotations"):
        read_annotations(path)


@pytest.mark.parametrize(("option", "message"), [
    ("min_box=NaN", "task 'baby_count': min_box must be a whole number >= 1, got nan"),
    ("jpeg_quality=500", "task 'baby_count': jpeg_quality must be a whole number >= 1 and <= 100, got 500"),
    ("keyframe_sec=Infinity", "task 'baby_count': keyframe_sec must be a number > 0, got inf"),
    ("crop_size=big", "task 'baby_count': crop_size must be a whole number >= 16, got 'big'"),
    ("min_bx=3", "task 'baby_count': unknown option(s) 'min_bx'"),
])
def test_bad_task_options_are_refused_naming_the_option(corpus, tmp_path, option, message):
    result = babyvlm("tasks", "build", "--source", "saycam", "--root", corpus, "--out", tmp_path / "out",
                     "--tasks", "baby_count", "--task-opt", option, expect=1)
    assert result.stderr.strip() == f"Error: {message}" or result.stderr.strip().startswith(f"Error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "saycam" / "count_test.json").exists()


def test_an_item_with_an_empty_choices_list_is_refused_naming_it(corpus, tmp_path):
    out = tmp_path / "tasks"
    babyvlm("tasks", "build", "--source", "saycam", "--root", corpus, "--out", out, "--tasks", "baby_count",
            "--max-items", 5, "--no-instructions")
    path = out / "saycam" / "count_test.json"
    items = json.loads(path.read_text())
    items[1]["choices"] = []
    path.write_text(json.dumps(items))
    result = babyvlm("eval", "--model", "random", "--tasks", "baby_count", "--data", out, "--out", tmp_path / "eval",
                     expect=1)
    assert result.stderr.strip() == (f"Error: {path}: item {items[1]['id']!r}: 'choices' must be a non-empty list of "
                                     f"the answers the item may take (or left out for the task's default answer "
                                     f"space), got []")
