"""DevCV tasks built from generated corpora, as real CLI processes: synth (SAYCam and Ego4D formats) ->
``babyvlm tasks build`` -> ``tasks check`` / ``show`` / ``instructions`` / ``list``; determinism, resume,
no leakage, oracle = 100%, a constant answer at its frequency, and checks that fail on tampered files."""

import hashlib
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from babyvlm.plugins.devcv import TASKS
from babyvlm.plugins.devcv.checks import load_context, run_checks
from babyvlm.plugins.devcv.runner import BuildRequest, build_tasks

BABYVLM = [str(Path(sys.executable).with_name("babyvlm"))]
MAX_ITEMS = 24
SHORTS = {"baby_pv": "pv", "baby_localize": "localize", "baby_leftright": "leftright",
          "baby_spatialdetails": "spatialdetails", "baby_vdr_binary": "vdr_binary", "baby_vdr_open": "vdr_open",
          "baby_compare_real": "compare_real", "baby_compare_synthetic": "compare_synthetic", "baby_count": "count",
          "baby_memory": "memory", "baby_subitize": "subitize"}


def babyvlm(*args, expect: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run(BABYVLM + [str(a) for a in args], capture_output=True, text=True, timeout=600)
    assert result.returncode == expect, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One SAYCam-format (6 min in 24 recordings) and one Ego4D-format (1 min) corpus, built once."""
    root = tmp_path_factory.mktemp("devcv")
    babyvlm("synth", "saycam", root / "saycam", "--minutes", 6, "--video-minutes", 0.25, "--quiet")
    babyvlm("synth", "ego4d", root / "ego4d", "--minutes", 1, "--video-minutes", 0.25, "--quiet")
    out = root / "tasks"
    logs = {source: babyvlm("tasks", "build", "--source", source, "--root", root / source, "--out", out,
                            "--max-items", MAX_ITEMS).stdout for source in ("saycam", "ego4d")}
    return root, out, logs


def _tree_digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".babyvlm.lock" and p.name != "manifest.json"}


def test_all_twelve_tasks_in_domain_train_val_test_and_eleven_out_of_domain_test(built):
    _, out, logs = built
    saycam, ego4d = out / "saycam", out / "ego4d"
    for name, short in SHORTS.items():
        for split in ("train", "val", "test"):
            items = json.loads((saycam / f"{short}_{split}.json").read_text())
            assert items, f"{name} {split} is empty"
        assert json.loads((ego4d / f"{short}_test.json").read_text()), name
        assert not (ego4d / f"{short}_train.json").exists()
    assert (saycam / "baby_winoground.csv").read_text().count("\n") > 2
    assert not (ego4d / "baby_winoground.csv").exists()
    manifest = json.loads((saycam / "manifest.json").read_text())
    assert set(manifest["tasks"]) == set(TASKS)
    assert manifest["tasks"]["baby_pv"]["splits"]["test"]["answers"]  # answer distribution recorded
    assert "12 tasks" in logs["saycam"] and "11 tasks" in logs["ego4d"]


def test_splits_are_whole_recordings(built):
    _, out, _ = built
    split_of = json.loads((out / "saycam" / "manifest.json").read_text())["split_of"]
    assert set(split_of.values()) == {"train", "val", "test"}  # a dict: each recording in exactly one split
    assert set(json.loads((out / "ego4d" / "manifest.json").read_text())["split_of"].values()) == {"test"}


def test_tasks_check_passes_on_both_domains(built):
    _, out, _ = built
    result = babyvlm("tasks", "check", out, "--no-rebuild")
    assert "0 failed" in result.stdout
    for check in ("answer_space", "gold_balance", "no_leakage", "oracle", "constant"):
        assert check in result.stdout


def test_oracle_is_100_percent_and_a_constant_answer_scores_its_frequency(built):
    _, out, _ = built
    context = load_context(out, [], rebuild=False)
    for (domain, name, split), items in context.loaded.items():
        task = context.tasks[name]
        for mode in ("generate", "loglikelihood"):
            predictions = [task.score(i, task.respond_with(i, mode, task.oracle_answer(i)), mode) for i in items]
            assert task.aggregate(items, predictions)[task.primary_metric] == 1.0, (domain, name, split, mode)
        if name in ("baby_memory", "baby_winoground"):
            continue
        frequency = Counter(item.answer for item in items)
        for answer in task.constant_answers(items)[:3]:
            predictions = [task.score(i, task.respond_with(i, "loglikelihood", answer), "loglikelihood") for i in items]
            assert task.aggregate(items, predictions)[task.primary_metric] == pytest.approx(frequency[answer] / len(items))


def test_built_items_are_what_they_claim(built):
    _, out, _ = built
    context = load_context(out / "saycam", ["baby_localize", "baby_vdr_binary", "baby_count", "baby_memory"], False)
    for item in context.loaded[("saycam", "baby_localize", "test")]:
        x, y, w, h = item.extras["bb"]
        quadrant = (x + w / 2 > 112) + 2 * (y + h / 2 > 112)  # 224 px frames
        assert "ABCD"[quadrant] == item.answer
    for item in context.loaded[("saycam", "baby_vdr_binary", "train")]:
        assert 5 <= len(item.images) <= 9 and item.answer in ("left", "right")
    for item in context.loaded[("saycam", "baby_count", "val")]:
        assert item.answer in item.choices
    for item in context.loaded[("saycam", "baby_memory", "test")]:
        assert len(item.images) == 29 and len(item.extras["labels"]) == 15


def test_same_seed_is_byte_identical_and_another_seed_differs(built, tmp_path):
    root, out, _ = built
    options = {"max_items": MAX_ITEMS}
    for name, seed in (("again", 0), ("other", 1)):
        build_tasks(BuildRequest(source="saycam", root=str(root / "saycam"), out=str(tmp_path / name), seed=seed,
                                 tasks=["baby_pv", "baby_memory", "baby_winoground"], task_options=options),
                    log=lambda line: None)
    first = {k: v for k, v in _tree_digests(out / "saycam").items() if k.startswith(("pv_", "memory_", "baby_wino"))}
    again = {k: v for k, v in _tree_digests(tmp_path / "again" / "saycam").items() if not k.startswith("images/")}
    assert first == again
    other = _tree_digests(tmp_path / "other" / "saycam")
    assert other["pv_test.json"] != first["pv_test.json"]


def test_rebuilding_resumes_per_task(built):
    root, out, _ = built
    before = _tree_digests(out / "saycam")
    log = babyvlm("tasks", "build", "--source", "saycam", "--root", root / "saycam", "--out", out,
                  "--max-items", MAX_ITEMS, "--no-instructions").stdout
    assert log.count("done already") == 12
    assert _tree_digests(out / "saycam") == before
    clash = babyvlm("tasks", "build", "--source", "saycam", "--root", root / "saycam", "--out", out, "--seed", 5,
                    expect=1)
    assert "fresh --out" in clash.stderr


def test_determinism_check_rebuilds_from_the_manifest(built):
    _, out, _ = built
    results = [r for r in run_checks(out / "ego4d", tasks=["baby_count"], rebuild=True) if r.check == "determinism"]
    assert results and all(r.ok for r in results)


def test_checks_fail_on_skewed_answers_and_leaked_images_naming_task_and_check(built, tmp_path):
    _, out, _ = built
    copy = tmp_path / "tampered"
    shutil.copytree(out / "saycam", copy / "saycam")
    path = copy / "saycam" / "pv_test.json"
    items = json.loads(path.read_text())
    for item in items:
        item["conversations"][-1]["value"] = "A"
    path.write_text(json.dumps(items))
    val = json.loads((copy / "saycam" / "pv_val.json").read_text())
    val[0]["image"] = items[0]["image"]  # a test image reused in val
    (copy / "saycam" / "pv_val.json").write_text(json.dumps(val))
    result = babyvlm("tasks", "check", copy, "--no-rebuild", "--tasks", "baby_pv", expect=1)
    assert "FAILED saycam/baby_pv/test: gold_balance" in result.stderr
    assert "FAILED saycam/baby_pv/test: constant" in result.stderr
    assert "no_leakage" in result.stderr


def test_show_renders_an_item_of_every_task(built, tmp_path):
    from PIL import Image

    from babyvlm.plugins.devcv.show import show_item

    _, out, _ = built
    for name in TASKS:
        short = SHORTS.get(name, "winoground")
        png = show_item(out / "saycam", name, f"{short}_test_00000", tmp_path / f"{name}.png")
        with Image.open(png) as image:
            assert image.size[0] > 100 and image.size[1] > 100
    babyvlm("tasks", "show", out / "ego4d", "baby_vdr_open", "vdr_open_test_00001", "--out", tmp_path / "cli.png")
    missing = babyvlm("tasks", "show", out / "ego4d", "baby_pv", "nope", "--out", tmp_path / "x.png", expect=1)
    assert "no item 'nope'" in missing.stderr


def test_instruction_sets_leave_out_held_out_tasks_and_keep_paths_relative(built):
    _, out, _ = built
    folder = out / "saycam"
    mixed = json.loads((folder / "devcv_instructions_train.json").read_text())
    tasks = {record["task"] for record in mixed}
    assert tasks == set(TASKS) - {"baby_winoground", "baby_subitize"}
    for record in mixed[:50]:
        assert all((folder / path).is_file() and not Path(path).is_absolute() for path in record["image"])
        assert sum(t["value"].count("<image>") for t in record["conversations"]) == len(record["image"])
    babyvlm("tasks", "instructions", folder, "--per-task", "--tasks", "baby_count,baby_subitize")
    assert json.loads((folder / "devcv_instructions_subitize_train.json").read_text())


def test_list_shows_every_task_with_chance_and_primary_metric():
    rows = json.loads(babyvlm("tasks", "list", "--json").stdout)
    by_name = {row["name"]: row for row in rows}
    assert list(by_name) == list(TASKS)
    assert by_name["baby_winoground"]["chance"] == pytest.approx(1 / 6, abs=1e-3)
    assert by_name["baby_memory"]["primary_metric"] == "acc_testing_adjusted"
    assert by_name["baby_vdr_open"]["metrics"] == ["acc_exact", "acc_adjacent"]


def test_export_without_the_evaluation_exporter_is_a_clear_error(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from babyvlm.plugins.devcv.commands import tasks_group

    monkeypatch.setitem(sys.modules, "babyvlm.plugins.evaluation.lmms", None)  # import fails
    result = CliRunner().invoke(tasks_group, ["export", "--format", "lmms-eval", "--data", str(tmp_path),
                                              str(tmp_path / "out")])
    assert result.exit_code != 0 and "export_tasks" in str(result.exception)


def test_too_few_annotated_recordings_is_a_config_error(tmp_path):
    babyvlm("synth", "saycam", tmp_path / "few", "--minutes", 1, "--video-minutes", 0.25, "--quiet")
    for annotations in sorted((tmp_path / "few" / "annotations").glob("*.json"))[2:]:
        annotations.unlink()  # recordings without object annotations cannot make items
    result = babyvlm("tasks", "build", "--source", "saycam", "--root", tmp_path / "few", "--out", tmp_path / "o",
                     "--tasks", "baby_count", expect=1)
    assert "needs at least 3 sessions with object annotations" in result.stderr and "found 2" in result.stderr


def test_export_calls_the_evaluation_exporter(built, tmp_path):
    pytest.importorskip("babyvlm.plugins.evaluation.lmms")
    _, out, _ = built
    result = babyvlm("tasks", "export", "--format", "lmms-eval", "--data", out, tmp_path / "lmms")
    assert "task files" in result.stdout and list((tmp_path / "lmms").rglob("*.yaml"))


def test_easy_match_items_come_from_train_items_of_match_to_sample_tasks_only(built):
    """``--easy-match N``: N easy items per task whose items are a query then one picture per letter (Spatial
    Details, Left/Right), none for the others; every picture from that task's own train items; the plain files
    untouched."""
    _, out, _ = built
    folder = out / "saycam"
    plain = (folder / "devcv_instructions_train.json").read_bytes()
    log = babyvlm("tasks", "instructions", folder, "--per-task", "--easy-match", 40,
                  "--tasks", "baby_spatialdetails,baby_leftright,baby_pv").stdout
    assert "no easy items for pv" in log
    assert (folder / "devcv_instructions_train.json").read_bytes() == plain
    assert len(json.loads((folder / "devcv_instructions_pv_easy40_train.json").read_text())) == \
        len(json.loads((folder / "pv_train.json").read_text()))
    for short in ("spatialdetails", "leftright"):
        train = json.loads((folder / f"{short}_train.json").read_text())
        records = json.loads((folder / f"devcv_instructions_{short}_easy40_train.json").read_text())
        easy = records[len(train):]
        assert len(easy) == 40 and [r["id"] for r in records[:len(train)]] == [r["id"] for r in train]
        train_pictures = {path for item in train for path in item["image"]}
        for record in easy:
            assert set(record["image"]) <= train_pictures
            source = next(item for item in train if item["image"][0] == record["image"][0])
            gold = "ABCD".index(record["conversations"][1]["value"])
            assert record["image"][1 + gold] == source["image"][1 + "ABCD".index(source["conversations"][1]["value"])]
            others = [p for i, p in enumerate(record["image"][1:]) if i != gold]
            assert not set(others) & set(source["image"])  # distractors come from other items
