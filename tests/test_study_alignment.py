"""Alignment on constructed human data: the fitted temperature and KL match a hand computation."""

from __future__ import annotations

import json
import math

import pytest

from babyvlm.core.errors import DataError
from babyvlm.plugins.study.alignment import HUMAN_ITEMS_FILE, compare_with_humans, spearman


def write_human(folder, items):
    (folder / HUMAN_ITEMS_FILE).write_text(json.dumps({"tasks": {"baby_x": items}}))
    return folder


def test_two_option_items_with_one_loss_gap_fit_the_closed_form(tmp_path):
    # Every item: losses A=0, B=1, so p(A) = sigmoid(1/T) on all of them. The mean KL over items is then
    # minimised where p(A) equals the mean human share of A (0.8 here), i.e. T = 1 / logit(0.8) = 1/ln 4.
    shares = {"i1": (9, 1), "i2": (7, 3), "i3": (8, 2)}
    items = {i: {"counts": {"A": a, "B": b}, "gold": "A"} for i, (a, b) in shares.items()}
    samples = [{"item_id": i, "target": "A", "parsed": "A", "correct": True, "option_losses": {"A": 0.0, "B": 1.0}}
               for i in shares]
    result = compare_with_humans({"baby_x": samples}, write_human(tmp_path, items))["baby_x"]

    def kl(h, p):
        return h * math.log(h / p) + (1 - h) * math.log((1 - h) / (1 - p))

    assert result["temperature"] == pytest.approx(1 / math.log(4), rel=1e-5)
    assert result["kl"] == pytest.approx((kl(0.9, 0.8) + kl(0.7, 0.8) + kl(0.8, 0.8)) / 3, rel=1e-6)
    assert result["n_items"] == 3 and result["basis"] == "option_losses"
    assert result["human_accuracy"] == pytest.approx(0.8)


def test_perfectly_matched_item_has_zero_kl_and_spearman_follows_the_ranks(tmp_path):
    # one item at 3 options whose human shares are softmax(-loss / 2): the fit must find T = 2, KL = 0
    losses = {"A": 0.0, "B": 1.0, "C": 3.0}
    weights = {k: math.exp(-v / 2) for k, v in losses.items()}
    total = sum(weights.values())
    counts = {k: round(10000 * w / total) for k, w in weights.items()}
    items = {"m": {"counts": counts, "gold": "A"}}
    result = compare_with_humans({"baby_x": [{"item_id": "m", "target": "A", "option_losses": losses}]},
                                 write_human(tmp_path, items))["baby_x"]
    assert result["temperature"] == pytest.approx(2.0, rel=1e-3)
    assert result["kl"] == pytest.approx(0.0, abs=1e-7)
    assert spearman([0.1, 0.5, 0.9, 0.3], [1, 3, 4, 2]) == pytest.approx(1.0)
    assert spearman([0.1, 0.5, 0.9], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_generation_scored_items_use_correctness_and_unmatched_items_are_counted(tmp_path):
    items = {"a": {"counts": {"A": 9, "B": 1}, "gold": "A"}, "b": {"counts": {"A": 5, "B": 5}, "gold": "A"},
             "c": {"counts": {"A": 1, "B": 9}, "gold": "A"}}
    samples = [{"item_id": "a", "correct": True}, {"item_id": "b", "correct": True},
               {"item_id": "c", "correct": False}, {"item_id": "zzz", "correct": True}]
    result = compare_with_humans({"baby_x": samples, "baby_other": samples}, write_human(tmp_path, items))
    assert set(result) == {"baby_x"}  # tasks the study did not include are left out
    row = result["baby_x"]
    assert row["basis"] == "correct" and row["kl"] is None and row["temperature"] is None
    assert row["n_items"] == 3 and row["skipped"]["counts"]["no_human_responses"] == 1
    assert row["spearman"] == pytest.approx(math.sqrt(3) / 2)  # ranks (3,2,1) vs (2.5,2.5,1)


def test_missing_or_malformed_human_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no human_items.json"):
        compare_with_humans({}, tmp_path)
    (tmp_path / HUMAN_ITEMS_FILE).write_text(json.dumps({"tasks": {"t": {"i": {"counts": {"A": -1}}}}}))
    with pytest.raises(DataError, match=r"tasks\['t'\]\['i'\]"):
        compare_with_humans({}, tmp_path)


def test_eval_compare_human_reads_a_real_export(fresh_registry, tmp_path):
    """Participants answer through the app, the study is exported, and the evaluation engine's
    ``compare_human`` reports KL / temperature / Spearman beside a likelihood-scored model."""
    from test_study_support import answer, current, start, write_task_folder

    from babyvlm.plugins.evaluation.engine import DevCVEvaluator
    from babyvlm.plugins.study.app import create_app
    from babyvlm.plugins.study.content import StudyContent
    from babyvlm.plugins.study.export import export_study
    from babyvlm.plugins.study.storage import StudyDB

    data = tmp_path / "data"
    folder = write_task_folder(data / "saycam")
    content = StudyContent(folder, ["baby_pv", "baby_count"], items_per_task=3, seed=0)
    db = StudyDB(tmp_path / "study.sqlite")
    app = create_app(content, db)
    for participant in range(3):
        client = app.test_client()
        start(client)
        for number in range(content.total_trials()):
            trial, screen, _ = current(client, content)
            wrong = (participant + number) % 3 == 0
            response = next(o.key for o in screen.options if o.key != screen.gold) if wrong else screen.gold
            assert answer(client, trial, response).status_code == 200
    export_study(db.path, tmp_path / "human", bootstrap_resamples=0)
    summary = DevCVEvaluator(bootstrap_resamples=0).evaluate(
        "random", ["baby_pv", "baby_count"], data, tmp_path / "eval", mode="loglikelihood",
        compare_human=tmp_path / "human", log=lambda line: None)
    for name in ("baby_pv", "baby_count"):
        human = summary["domains"]["saycam"]["tasks"][name]["human"]
        assert human["n_items"] == 3 and human["kl"] is not None and human["kl"] >= 0
        assert 1e-3 <= human["temperature"] <= 1e3
