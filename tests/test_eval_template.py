"""Evaluation prompts a checkpoint with its own template: the one its last phase trained with, unless the
user names another; a checkpoint whose own template holds no questions (``baby_plain``) gets ``baby_v1``.
The template used, and where it came from, is recorded in the results and summary files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_eval_fixtures import register_fakes, tiny_checkpoint, write_domain

from babyvlm import registry
from babyvlm.cli import cli


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval_template")
    for template in ("baby_v1_qfirst", "baby_plain"):
        tiny_checkpoint(root / template, template=template)
    return root


def adapter(folder: Path, **options):
    return registry.build("eval_adapter", dict(type="babyvlm", path=str(folder), **options))


def test_the_checkpoints_own_template_is_the_default(checkpoints):
    own = adapter(checkpoints / "baby_v1_qfirst")
    assert (own.template_name, own.template_source) == ("baby_v1_qfirst", "checkpoint")
    assert own.model.template.name == "baby_v1_qfirst"
    asked = adapter(checkpoints / "baby_v1_qfirst", template="baby_v1")
    assert (asked.template_name, asked.template_source) == ("baby_v1", "option")
    assert asked.model.template.name == "baby_v1"
    assert own.fingerprint() != asked.fingerprint()  # results under one template are never reused for another


def test_a_template_that_renders_differently_under_the_same_name_changes_the_fingerprint(checkpoints, monkeypatch):
    """A fix to a template's rendering must not let a resumed evaluation reuse the old template's answers."""
    before = adapter(checkpoints / "baby_v1_qfirst").fingerprint()
    assert adapter(checkpoints / "baby_v1_qfirst").fingerprint() == before  # stable when nothing changed
    from babyvlm.plugins.recipe.question_first import QuestionFirstTemplate

    monkeypatch.setattr(QuestionFirstTemplate, "jinja", QuestionFirstTemplate.jinja + "{# changed #}")
    assert adapter(checkpoints / "baby_v1_qfirst").fingerprint() != before


def test_an_alignment_checkpoint_is_asked_with_baby_v1(checkpoints):
    plain = adapter(checkpoints / "baby_plain")
    assert plain.template_name == "baby_v1" and plain.template_source.startswith("default")
    assert "baby_plain" in plain.template_source


def test_the_results_record_the_template_used(checkpoints, tmp_path, fresh_registry):
    register_fakes()
    data = write_domain(tmp_path / "data" / "saycam", n_letters=6, n_pairs=1, n_rounds=1).parent
    out = tmp_path / "out"
    done = CliRunner().invoke(cli, ["eval", "--model", str(checkpoints / "baby_v1_qfirst"), "--data", str(data),
                                    "--out", str(out), "--tasks", "fake_letters", "--mode", "loglikelihood",
                                    "--with-blind"])
    assert done.exit_code == 0, done.output
    assert "template baby_v1_qfirst" in done.output
    results = json.loads(next((out / "saycam").glob("*_results.json")).read_text())
    assert results["config"]["model_settings"]["template"] == "baby_v1_qfirst"
    assert results["config"]["model_settings"]["template_source"] == "checkpoint"
    summary = json.loads(next(out.glob("*_summary.json")).read_text())
    assert summary["adapter_settings"]["template"] == "baby_v1_qfirst"
    assert summary["blind_at_test_adapter_settings"]["inner"]["template"] == "baby_v1_qfirst"
    again = CliRunner().invoke(cli, ["eval", "--model", str(checkpoints / "baby_v1_qfirst"), "--data", str(data),
                                     "--out", str(tmp_path / "asked"), "--tasks", "fake_letters",
                                     "--mode", "loglikelihood", "--model-opt", "template=baby_v1"])
    assert again.exit_code == 0, again.output
    asked = json.loads(next((tmp_path / "asked" / "saycam").glob("*_results.json")).read_text())
    assert asked["config"]["model_settings"] == {**results["config"]["model_settings"], "template": "baby_v1",
                                                 "template_source": "option"}
