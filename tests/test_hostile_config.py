"""Every config surface refuses what it does not know, before any stage runs and with a did-you-mean:
``--set`` keys and types, ``--force`` stage names, ``sweep --grid`` keys, phase keys, component options
and the optional study sections; ``eval --tasks ""`` and ``--model-opt seed=abc``. Each case is one
line naming the section and key, and nothing is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from babyvlm.cli import cli as babyvlm_cli
from babyvlm.core.errors import ConfigError
from babyvlm.core.experiment import check_config


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(babyvlm_cli, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize(("override", "message"), [
    ("corpus.minuts=2", "corpus: unknown key 'minuts' (did you mean 'minutes'?); known: kind, minutes, seed"),
    ("corpus.minutes=abc", "corpus: minutes must be a number > 0, got 'abc'"),
    ("ood_corpus.kind=ego5d", "ood_corpus: kind must be one of ego4d, saycam, got 'ego5d'"),
    ("phases.0.templat=baby_v1", "phases[0]: unknown key 'templat' (did you mean 'template'?)"),
    ("phases.1.trainer.max_step=3", "phases[1].trainer (trainer 'dino'): unknown option 'max_step' (did you mean "
                                    "'max_steps'?)"),
    ("phases.2.trainer.lr=fast", "trainer 'mmengine': lr must be a number > 0.0, got 'fast'"),
    ("phases.4.data.llava_jsn=x.json", "phases[4].data: unknown key 'llava_jsn' (did you mean 'llava_json'?)"),
    ("evalution.mode=x", "--set evalution.mode: the config has no 'evalution' (did you mean 'evaluation'?)"),
    ("evaluation.mode=gen", "evaluation: mode must be one of generate, loglikelihood, got 'gen'"),
    ("evaluation.blind_twin=yes", "evaluation: blind_twin must be true or false, got 'yes'"),
    ("evaluation.tasks=", "evaluation: tasks must be 'all' or a non-empty list of task names, got ''"),
    ('tasks.names=["baby_pvv"]', "unknown task 'baby_pvv'"),
    ("tasks.max_items=0", "tasks: max_items must be a whole number >= 1, got 0"),
    ('tasks.task_options={"min_box": NaN}', "min_box must be a whole number >= 1, got nan"),
    ("data.blank_images=yes", "data: blank_images must be true or false, got 'yes'"),
    ("data.heldout_recording=2", "data: unknown key 'heldout_recording' (did you mean 'heldout_recordings'?)"),
    ("model.templat=baby_v1", "model (model 'babyllava'): unknown option 'templat' (did you mean 'template'?)"),
    ("model.connector.type=mlp2x_gel", "unknown connector 'mlp2x_gel'"),
    ("report.titel=x", "report (reporter 'markdown'): unknown option 'titel' (did you mean 'title'?)"),
])
def test_run_refuses_a_bad_override_before_any_stage(tmp_path, override, message):
    work = tmp_path / "work"
    code, output = run("run", "demo", "--work-dir", str(work), "--set", override)
    assert code == 1 and message in output, output
    assert output.strip().startswith("Error: ") and len(output.strip().splitlines()) == 1, output
    assert not work.exists() or not any(work.iterdir())  # no stage ran


def test_a_bad_type_fails_early_in_a_real_process_not_with_a_subcommands_help(tmp_path):
    done = subprocess.run([sys.executable, "-m", "babyvlm", "run", "demo", "--work-dir", str(tmp_path / "w"),
                           "--set", "corpus.minutes=abc"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 1 and done.stderr == "Error: corpus: minutes must be a number > 0, got 'abc'\n"
    assert "Usage:" not in done.stdout + done.stderr and not (tmp_path / "w").exists()


def test_force_names_a_known_stage(tmp_path):
    code, output = run("run", "demo", "--work-dir", str(tmp_path / "w"), "--force", "modle")
    assert code == 1 and "Error: --force: unknown stage 'modle' (did you mean 'model'?); known: corpora, tasks, " \
                         "model, blind_twin, evaluation, report" in output
    assert not (tmp_path / "w").exists()


def test_sweep_grid_keys_and_values_are_checked_before_any_point_runs(tmp_path):
    for grid, message in (("corpus.minuts=1,2", "sweep point 'corpus.minuts=1': corpus: unknown key 'minuts' "
                                                "(did you mean 'minutes'?)"),
                          ("corpus.minutes=1,abc", "sweep point 'corpus.minutes=abc': corpus: minutes must be a "
                                                   "number > 0, got 'abc'"),
                          ("corpuss.minutes=1,2", "the config has no 'corpuss' (did you mean 'corpus'?)")):
        code, output = run("sweep", "demo", "--grid", grid, "--work-dir", str(tmp_path / "sweep"))
        assert code == 1 and message in output, output
    assert not (tmp_path / "sweep").exists()


def test_train_refuses_unknown_sections_and_keys(tmp_path):
    config = tmp_path / "typo.py"
    config.write_text("data = dict(source='saycam', builder='pretraining_set')\nmodel = 'babyllava'\n"
                      "evalution = dict(mode='generate')\n_helper = 1\n")
    code, output = run("train", str(config), "--work-dir", str(tmp_path / "w"))
    assert code == 1 and "config: unknown section 'evalution' (did you mean 'evaluation'?)" in output, output
    with pytest.raises(ConfigError, match="data: unknown key 'rot' \\(did you mean 'root'\\?\\)"):
        check_config({"data": dict(source="saycam", builder="pretraining_set", rot="/x"), "model": "babyllava"})
    with pytest.raises(ConfigError, match="data.source \\(source 'saycam'\\): unknown option 'transcript' "
                                          "\\(did you mean 'transcripts'\\?\\)"):
        check_config({"data": dict(source=dict(type="saycam", transcript="human"), builder="pretraining_set"),
                      "model": "babyllava"})


def test_eval_refuses_empty_tasks_and_a_bad_seed_before_writing(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for args, message in ((["--tasks", ""], "Error: --tasks: no task named; give task names (comma-separated) or "
                                            "'all'"),
                          (["--tasks", " , "], "Error: --tasks: no task named"),
                          (["--model-opt", "seed=abc"], "Error: --model-opt: seed must be a whole number >= 0, "
                                                         "got 'abc'"),
                          (["--model-opt", "batch_size=0"], "Error: --model-opt: batch_size must be a whole number")):
        code, output = run("eval", "--model", "random", "--data", str(data), "--out", str(tmp_path / "out"), *args)
        assert code == 1 and output.strip().startswith(message), output
    assert not (tmp_path / "out").exists()


def test_helpers_with_an_underscore_and_the_bundled_configs_pass(tmp_path):
    for preset in ("demo", "paper"):
        check_config(preset)
    assert Path(tmp_path).is_dir()
