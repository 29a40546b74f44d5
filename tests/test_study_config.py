"""A bad run section (tasks, evaluation, report) is refused before any stage runs."""

from __future__ import annotations

import pytest

from babyvlm.core.compose import apply_overrides, load_config
from babyvlm.core.errors import BabyVLMError
from babyvlm.plugins.run_command.pipeline import RunPipeline
from babyvlm.plugins.run_command.sections import check_before_stages


@pytest.mark.parametrize(("pair", "message"), [
    ('tasks.instructions={"per_tsk": true}', "did you mean 'per_task'"),
    ('tasks.instructions={"per_task": "yes"}', r"tasks.instructions\[0\]: per_task must be true or false"),
    ('tasks.commands=[["tasks", "instructions"]]', "tasks: unknown key 'commands'"),
    ("tasks.builder=nope", "unknown task_builder 'nope'"),
    ("corpus.kind=nope", "corpus: kind must be one of ego4d, saycam, got 'nope'"),
    ("evaluation.evaluator=nope", "unknown evaluator 'nope'"),
    ('evaluation.baselines=["randum"]', "Did you mean 'random'"),
    ('evaluation.limit={"*": 0}', "evaluation.limit: expected a positive whole number"),
    ("report.type=nope", "unknown reporter 'nope'"),
    ('evaluation.split="train"', "evaluation: split must be one of test, val"),
])
def test_a_bad_run_section_fails_before_any_work(tmp_path, fresh_registry, pair, message):
    cfg = apply_overrides(load_config("demo"), [pair])
    work = tmp_path / "run"
    with pytest.raises(BabyVLMError, match=message):
        RunPipeline(cfg, work, log=lambda line: None).run()
    assert not (work / "corpus").exists() and not (work / "stages").exists()


def test_the_demo_config_passes_the_check(tmp_path, fresh_registry):
    pipeline = RunPipeline("demo", tmp_path / "run", log=lambda line: None)
    check_before_stages(pipeline.cfg)
    assert pipeline.domains() == {"in_domain": "saycam", "out_of_domain": "ego4d"}  # from the sources
