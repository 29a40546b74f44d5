"""A bad study section (tasks commands, evaluation, report) is refused before any stage runs."""

from __future__ import annotations

import pytest

from babyvlm import Experiment
from babyvlm.core.compose import apply_overrides, load_config
from babyvlm.core.errors import BabyVLMError


@pytest.mark.parametrize(("pair", "message"), [
    ('tasks.commands=["tasks instructions"]', r"tasks.commands\[0\]: expected a list of strings"),
    ('tasks.commands=[["no-such-command"]]', "unknown command 'no-such-command'"),
    ("evaluation.evaluator=nope", "unknown evaluator 'nope'"),
    ('evaluation.baselines=["randum"]', "Did you mean 'random'"),
    ('evaluation.limit={"*": 0}', "evaluation.limit: expected a positive whole number"),
    ("report.type=nope", "unknown reporter 'nope'"),
])
def test_a_bad_study_section_fails_before_any_work(tmp_path, fresh_registry, pair, message):
    cfg = apply_overrides(load_config("demo"), [pair])
    work = tmp_path / "run"
    with pytest.raises(BabyVLMError, match=message):
        Experiment(cfg, work, log=lambda line: None).run()
    assert not (work / "corpus").exists() and not (work / "stages").exists()


def test_the_demo_config_passes_the_check(tmp_path, fresh_registry):
    Experiment("demo", tmp_path / "run", log=lambda line: None).check_study_config()
