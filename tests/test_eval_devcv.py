"""The engine on the real DevCV tasks, from released-format files written by hand (flat folder, a single
image string, a prompt without ``<image>``): oracle 100%, random and blind(random) near chance, a tiny
babyvlm checkpoint and the hf adapter evaluate them unchanged; an image path leaving the folder is refused
naming the item; ``baseline_checks`` runs the random and blind checks ``babyvlm tasks check`` includes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_eval_fixtures import ensure_evaluation_plugin, jpeg, tiny_checkpoint

from babyvlm import registry
from babyvlm.core.errors import DataError

PROMPT = ("Point at the ball. Is it in the (A) top left or (B) top right or (C) bottom left or (D) bottom right "
          "of the image?")


def released_localize(folder: Path, n: int = 24) -> Path:
    """``localize_test.json`` + ``images/`` as the public release ships them (no <image> in the prompt)."""
    (folder / "images").mkdir(parents=True)
    records = []
    for index in range(n):
        (folder / "images" / f"frame_{index}.jpg").write_bytes(jpeg((30 * (index % 8), 90, 160), seed=index))
        records.append({"id": f"ego4d_localize_{index}", "image": f"images/frame_{index}.jpg",
                        "conversations": [{"from": "human", "value": PROMPT}, {"from": "gpt", "value": "ABCD"[index % 4]}],
                        "bb": [4, 4, 8, 8]})
    (folder / "localize_test.json").write_text(json.dumps(records))
    return folder


@pytest.fixture
def release(tmp_path, fresh_registry) -> Path:
    ensure_evaluation_plugin()
    if "baby_localize" not in registry.names("task"):
        pytest.skip("the DevCV tasks plugin is not installed")
    return released_localize(tmp_path / "devcv_release")


def evaluate(adapter, folder: Path, out: Path, **options):
    return registry.build("evaluator", "devcv").evaluate(adapter, ["baby_localize"], folder, out,
                                                         log=lambda message: None, **options)


def test_released_items_evaluate_unchanged_with_every_bundled_baseline(release, tmp_path):
    before = {p: p.read_bytes() for p in release.rglob("*") if p.is_file()}
    oracle = evaluate("oracle", release, tmp_path / "oracle")["domains"]["devcv_release"]["tasks"]["baby_localize"]
    assert oracle["metrics"]["acc"] == 1.0 and oracle["n"] == 24 and oracle["chance"] == 0.25
    for mode in ("generate", "loglikelihood"):
        summary = evaluate(dict(type="random", seed=0), release, tmp_path / f"random_{mode}", mode=mode,
                           with_blind=True)
        task = summary["domains"]["devcv_release"]["tasks"]["baby_localize"]
        assert 0.0 <= task["metrics"]["acc"] <= 0.6 and task["blind_at_test"] is not None
        assert summary["domains"]["devcv_release"]["overall"]["score"] == pytest.approx(task["metrics"]["acc"] / 11)
    assert {p: p.read_bytes() for p in release.rglob("*") if p.is_file()} == before


def test_a_tiny_checkpoint_and_its_hf_twin_evaluate_released_items(release, tmp_path):
    from test_eval_fixtures import hf_processor_for

    checkpoint = tiny_checkpoint(tmp_path / "ckpt")
    hf_processor_for(checkpoint)
    for name in ("babyvlm", "hf"):
        adapter = registry.build("eval_adapter", dict(type=name, path=str(checkpoint)))
        task = evaluate(adapter, release, tmp_path / name, mode="loglikelihood", limit=8)[
            "domains"]["devcv_release"]["tasks"]["baby_localize"]
        assert task["n"] == 8 and 0.0 <= task["metrics"]["acc"] <= 1.0
        assert all(set(sample["option_losses"]) == set("ABCD") for sample in task["samples"])


def test_an_image_path_leaving_the_release_folder_is_refused_naming_the_item(release, tmp_path):
    records = json.loads((release / "localize_test.json").read_text())
    records[3]["image"] = "../../etc/passwd"
    (release / "localize_test.json").write_text(json.dumps(records))
    with pytest.raises(DataError, match="ego4d_localize_3.*leaves its root"):
        evaluate("random", release, tmp_path / "out")


def test_baseline_checks_report_random_and_blind_beside_chance(release, tmp_path):
    from babyvlm.plugins.evaluation.baselines import baseline_checks

    checks = baseline_checks(release, out_dir=tmp_path / "checks")
    assert {check["check"] for check in checks} == {"random_near_chance"}  # blind(random) would be random again
    checks = baseline_checks(release, model=dict(type="random", seed=3), out_dir=tmp_path / "checks2")
    localize = [check for check in checks if check["task"] == "baby_localize"]
    assert {check["check"] for check in localize} == {"random_near_chance", "blind_near_chance"}
    for check in localize:
        assert check["chance"] == 0.25 and check["passed"] is True and check["domain"] == "devcv_release"


def test_one_evaluator_reads_and_checks_the_items_once_for_every_adapter(release, tmp_path, monkeypatch):
    from babyvlm.plugins.evaluation import engine

    (release / "images" / "frame_3.jpg").write_bytes(b"not a jpeg")
    reads = []
    real = engine.load_items
    monkeypatch.setattr(engine, "load_items", lambda *args: reads.append(1) or real(*args))
    evaluator = registry.build("evaluator", "devcv")
    summaries = [evaluator.evaluate(adapter, ["baby_localize"], release, tmp_path / name, log=lambda message: None)
                 for name, adapter in (("oracle", "oracle"), ("random", dict(type="random", seed=0)))]
    assert len(reads) == 1
    for summary in summaries:  # the undecodable item is skipped and reported for every adapter, not just the first
        task = summary["domains"]["devcv_release"]["tasks"]["baby_localize"]
        assert task["n"] == 23 and [s["item_id"] for s in task["skipped_items"]] == ["ego4d_localize_3"]
        assert summary["skipped"]["counts"]["undecodable_image"] == 1
    records = json.loads((release / "localize_test.json").read_text())
    (release / "localize_test.json").write_text(json.dumps(records[:10]))  # a changed item file is read anew
    summary = evaluator.evaluate("oracle", ["baby_localize"], release, tmp_path / "again", log=lambda message: None)
    assert len(reads) == 2 and summary["domains"]["devcv_release"]["tasks"]["baby_localize"]["n"] == 9
