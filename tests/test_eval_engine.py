"""The ``devcv`` evaluator: lmms-eval-style files, the overall score, ties, tricky answers, blind twins,
resume after SIGKILL (same results, nothing duplicated), never mixing models or tasks, one writer per
folder, released flat folders evaluated unchanged, and a path escape refused."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_eval_fixtures import register_fakes, tiny_checkpoint, write_domain

from babyvlm import registry
from babyvlm.core.errors import BabyVLMError, DataError
from babyvlm.core.io import WriterLock
from babyvlm.plugins.evaluation.metrics import leaderboard_entries, overall

FAKES = ["fake_letters", "fake_pairs", "fake_rounds"]
RUNNER = Path(__file__).with_name("test_eval_fixtures.py")
VOLATILE = ("date", "total_evaluation_time_seconds")


@pytest.fixture
def data(tmp_path, fresh_registry) -> Path:
    register_fakes()
    write_domain(tmp_path / "data" / "saycam", n_letters=12, n_pairs=3, n_rounds=2)
    return tmp_path / "data"


def evaluate(adapter, data: Path, out: Path, **options):
    return registry.build("evaluator", "devcv").evaluate(adapter, FAKES, data, out, log=lambda message: None, **options)


def results_file(out: Path, domain: str = "saycam") -> dict:
    files = sorted((out / domain).glob("*_results.json"))
    assert files, f"no results file in {out / domain}"
    document = json.loads(files[-1].read_text())
    return {key: value for key, value in document.items() if key not in VOLATILE}


def samples(out: Path, task: str, domain: str = "saycam") -> list[dict]:
    path = sorted((out / domain).glob(f"*_samples_{task}.jsonl"))[-1]
    return [json.loads(line) for line in path.read_text().splitlines()]


class Scripted:
    """An adapter answering from a script: generated text per item, equal losses for every option."""

    name = "scripted"

    def __init__(self, answers=None):
        self.answers = answers or {}

    def fingerprint(self):
        return "scripted:" + hashlib.sha256(json.dumps(self.answers, sort_keys=True).encode()).hexdigest()[:8]

    def generate_until(self, requests):
        return [self.answers.get(r.item_id, "") for r in requests]

    def loglikelihood(self, requests):
        return [[(1.0, False)] * len(r.continuations) for r in requests]

    def generate_until_multi_round(self, requests):
        return [["A"] * len(r.rounds) for r in requests]


def test_results_and_samples_files_have_lmms_eval_shape(data, tmp_path):
    summary = evaluate("oracle", data, tmp_path / "out")
    document = results_file(tmp_path / "out")
    letters = document["results"]["fake_letters"]
    assert letters["acc,none"] == 1.0 and letters["acc_stderr,none"] == 0.0 and letters["chance,none"] == 0.25
    assert document["results"]["fake_pairs"]["group_score,none"] == 1.0  # the oracle is perfect everywhere
    assert "image_score,none" in document["results"]["fake_pairs"]
    assert document["n-samples"]["fake_letters"] == {"original": 12, "effective": 12}
    assert document["config"]["model"] == "oracle" and document["config"]["domain"] == "saycam"
    assert {"babyvlm", "torch", "fake_letters"} <= set(document["versions"])
    assert document["higher_is_better"]["fake_pairs"] == {"group_score": True, "image_score": True}
    lines = samples(tmp_path / "out", "fake_letters")
    assert [line["doc_id"] for line in lines] == list(range(12))
    assert {"item_id", "target", "response", "parsed", "correct", "filtered_resps"} <= set(lines[0])
    assert summary["domains"]["saycam"]["overall"]["missing"] == list(leaderboard_entries())  # fakes are not entries
    assert (tmp_path / "out" / f"{summary['date']}_summary.json").is_file()


def test_overall_is_the_mean_of_the_eleven_primaries_with_missing_as_zero():
    scores = dict.fromkeys(leaderboard_entries()[:5], 0.5) | {"baby_subitize": 1.0, "fake": 1.0}
    result = overall(scores)
    assert result["score"] == pytest.approx(5 * 0.5 / 11)
    assert result["entries"] == 5 and result["missing"] == list(leaderboard_entries()[5:])


def test_ties_are_broken_by_a_seeded_draw_and_counted(data, tmp_path):
    summary = evaluate(Scripted(), data, tmp_path / "out", mode="loglikelihood")
    letters = summary["domains"]["saycam"]["tasks"]["fake_letters"]
    assert letters["ties"] == 12  # every option scored the same
    picks = [line["parsed"] for line in samples(tmp_path / "out", "fake_letters")]
    assert len(set(picks)) > 1  # not always the first option
    assert all(line["option_losses"] == dict.fromkeys("ABCD", 1.0) for line in samples(tmp_path / "out", "fake_letters"))


def test_tricky_answers_are_parsed_by_the_task(data, tmp_path):
    answers = {"l0": "(A)", "l1": "b.", "l2": "I think it is C", "l3": "d", "l4": "", "l5": "Apple"}
    evaluate(Scripted(answers), data, tmp_path / "out")
    by_id = {line["item_id"]: line for line in samples(tmp_path / "out", "fake_letters")}
    assert [by_id[f"l{i}"]["parsed"] for i in range(6)] == ["A", "B", "C", "D", None, None]
    assert [by_id[f"l{i}"]["correct"] for i in range(4)] == [True, True, True, True]
    assert results_file(tmp_path / "out")["results"]["fake_letters"]["unparsed"] == 8


def test_blind_twin_of_a_model_that_ignores_images_is_at_chance(tmp_path, fresh_registry):
    register_fakes()
    write_domain(tmp_path / "data" / "saycam", n_letters=40, n_pairs=1, n_rounds=1)
    checkpoint = tiny_checkpoint(tmp_path / "ckpt")
    adapter = registry.build("eval_adapter", dict(type="babyvlm", path=str(checkpoint)))
    summary = registry.build("evaluator", "devcv").evaluate(adapter, ["fake_letters"], tmp_path / "data",
                                                            tmp_path / "out", mode="loglikelihood", with_blind=True,
                                                            log=lambda message: None)
    letters = summary["domains"]["saycam"]["tasks"]["fake_letters"]
    assert abs(letters["blind_at_test"] - letters["chance"]) <= 0.05  # blank images leave the answer prior only
    assert results_file(tmp_path / "out")["results"]["fake_letters"]["blind_at_test_acc,none"] == letters["blind_at_test"]
    assert (tmp_path / "out" / "blind_at_test" / "saycam").is_dir()


def test_a_changed_model_or_item_is_never_mixed_with_old_results(data, tmp_path):
    out = tmp_path / "out"
    first = evaluate(dict(type="random", seed=0), data, out)
    evaluate(dict(type="random", seed=1), data, out)
    records = [json.loads(line) for line in (out / "progress" / "rank0.jsonl").read_text().splitlines()]
    assert len(records) == 2 * (12 + 3 + 2)  # the second model answered everything again
    items = json.loads((data / "saycam" / "letters_test.json").read_text())
    items[0]["conversations"][0]["value"] += " Look closely."
    (data / "saycam" / "letters_test.json").write_text(json.dumps(items))
    again = evaluate(dict(type="random", seed=0), data, out)
    assert len((out / "progress" / "rank0.jsonl").read_text().splitlines()) == len(records) + 1  # only the edit
    assert again["adapter_fingerprint"] == first["adapter_fingerprint"]


def test_one_evaluation_per_out_folder(data, tmp_path):
    with WriterLock(tmp_path / "out", "another evaluation"), pytest.raises(BabyVLMError, match="another process"):
        evaluate("random", data, tmp_path / "out")


def test_a_released_flat_folder_is_evaluated_unchanged(tmp_path, fresh_registry):
    register_fakes()
    folder = write_domain(tmp_path / "devcv_ego4d_release", n_letters=4, n_pairs=2, n_rounds=1)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    summary = evaluate("oracle", folder, tmp_path / "out")
    assert list(summary["domains"]) == ["devcv_ego4d_release"]
    assert [line["item_id"] for line in samples(tmp_path / "out", "fake_letters", "devcv_ego4d_release")] == \
        ["l0", "l1", "l2", "l3"]
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_an_image_path_leaving_the_folder_is_refused(data, tmp_path):
    (data / "outside.jpg").write_bytes((data / "saycam" / "images" / "l0_0.jpg").read_bytes())
    items = json.loads((data / "saycam" / "letters_test.json").read_text())
    items[1]["image"][0] = "../outside.jpg"
    (data / "saycam" / "letters_test.json").write_text(json.dumps(items))
    with pytest.raises(DataError, match="row 1.*leaves its root"):
        evaluate("random", data, tmp_path / "out")


def test_missing_domain_is_named(data, tmp_path):
    with pytest.raises(BabyVLMError, match="--domain ego4d: not found.*saycam"):
        evaluate("random", data, tmp_path / "out", domains=["ego4d"])


# ---- SIGKILL and resume (real CLI subprocesses) ---------------------------------------------------------
def cli(*args: str, **popen) -> subprocess.Popen:
    env = dict(os.environ, BABYVLM_LOAD_PLUGINS="")
    return subprocess.Popen([sys.executable, str(RUNNER), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


@pytest.mark.slow  # three CLI subprocesses: ~35 s of CPU
def test_sigkill_mid_eval_then_resume_gives_the_uninterrupted_results(tmp_path):
    write_domain(tmp_path / "data" / "saycam", n_letters=16, n_pairs=2, n_rounds=2)
    checkpoint = tiny_checkpoint(tmp_path / "ckpt")
    common = ["eval", "--model", str(checkpoint), "--tasks", ",".join(FAKES), "--data", str(tmp_path / "data"),
              "--flush-every", "2", "--batch-size", "2", "--mode", "loglikelihood"]
    whole = cli(*common, "--out", str(tmp_path / "whole"))
    output, _ = whole.communicate(timeout=600)
    assert whole.returncode == 0, output

    killed = cli(*common, "--out", str(tmp_path / "resumed"))
    log = tmp_path / "resumed" / "progress" / "rank0.jsonl"
    deadline = time.monotonic() + 300
    while killed.poll() is None and time.monotonic() < deadline:
        if log.is_file() and len(log.read_bytes().splitlines()) >= 2:
            killed.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    partial = len(log.read_bytes().splitlines())
    with open(log, "ab") as handle:  # what a kill in the middle of a write leaves
        handle.write(b'{"key": ["torn')

    resumed = cli(*common, "--out", str(tmp_path / "resumed"))
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert "resuming" in output
    lines = log.read_text().splitlines()
    keys = [json.dumps(json.loads(line)["key"]) for line in lines]
    assert len(keys) == len(set(keys)) == 16 + 2 + 2 and partial < len(keys)
    want, got = results_file(tmp_path / "whole"), results_file(tmp_path / "resumed")
    assert got["skipped"]["counts"] == {"torn_progress_line": 1}
    for document in (want, got):
        document.pop("skipped")
        document["config"].pop("world_size")
    assert got == want
    for task in FAKES:
        assert samples(tmp_path / "resumed", task) == samples(tmp_path / "whole", task)


def test_compare_human_adds_alignment_columns(data, tmp_path):
    from babyvlm.plugins.evaluation.results import table

    human = tmp_path / "study"
    human.mkdir()
    items = {f"l{i}": {"counts": {"A": 3, "B": 1, "C": 0, "D": 1}, "gold": "A"} for i in range(12)}
    (human / "human_items.json").write_text(json.dumps({"tasks": {"fake_letters": items}}))
    summary = evaluate(dict(type="random", seed=0), data, tmp_path / "out", mode="loglikelihood", compare_human=human)
    figures = summary["domains"]["saycam"]["tasks"]["fake_letters"]["human"]
    assert figures["n_items"] == 12 and figures["temperature"] is not None
    assert "KL" in table(summary).splitlines()[1]
    assert "human_kl,none" in results_file(tmp_path / "out")["results"]["fake_letters"]


def test_cli_prints_the_table_and_names_bad_models_in_one_line(data, tmp_path):
    from click.testing import CliRunner

    from babyvlm.cli import cli

    runner = CliRunner()
    done = runner.invoke(cli, ["eval", "--model", "blind:oracle", "--data", str(data), "--out", str(tmp_path / "out"),
                               "--tasks", "fake_letters,fake_rounds", "--with-blind"])
    assert done.exit_code == 0, done.output
    assert "saycam: overall" in done.output and "fake_letters  acc" in done.output and "blind@test" in done.output
    assert "blind at test" in done.output and "blind twin" not in done.output
    bad = runner.invoke(cli, ["eval", "--model", "oracel", "--data", str(data), "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "Did you mean 'oracle'" in bad.output and "Traceback" not in bad.output
    missing = runner.invoke(cli, ["eval", "--model", "random", "--tasks", "fake_nope", "--data", str(data),
                                  "--out", str(tmp_path / "bad2")])
    assert missing.exit_code != 0 and "unknown task 'fake_nope'" in missing.output


def test_limit_per_task_cuts_only_the_tasks_it_names(data, tmp_path):
    evaluate("random", data, tmp_path / "out", limit={"*": 5, "fake_rounds": 1})
    assert len(samples(tmp_path / "out", "fake_letters")) == 5
    assert len(samples(tmp_path / "out", "fake_pairs")) == 3  # fewer than the default cut: all of them
    assert len(samples(tmp_path / "out", "fake_rounds")) == 1


@pytest.mark.parametrize("bad", [0, -1, "2", {"fake_letters": 0}, {"*": True}])
def test_a_bad_limit_is_refused(data, tmp_path, bad):
    with pytest.raises(BabyVLMError, match="limit must be a positive integer"):
        evaluate("random", data, tmp_path / "out", limit=bad)


def test_a_runs_task_folder_is_not_a_domain_of_its_own(tmp_path):
    """A run's tasks/ holds splits.json (and a build's manifest.json) beside the domain folders: neither
    makes tasks/ a flat released folder, so nothing is counted as a task without items there."""
    from babyvlm.plugins.evaluation.engine import domain_folders

    (tmp_path / "saycam").mkdir()
    (tmp_path / "saycam" / "baby_pv_test.json").write_text("[]")
    (tmp_path / "splits.json").write_text("{}")
    (tmp_path / "manifest.json").write_text("{}")
    assert domain_folders(tmp_path, None) == [("saycam", tmp_path / "saycam")]
    (tmp_path / "baby_pv_test.json").write_text("[]")  # a released flat folder holds its items directly
    assert [name for name, _ in domain_folders(tmp_path, None)] == [tmp_path.name, "saycam"]
