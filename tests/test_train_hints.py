"""`babyvlm train` refuses a phase whose instruction file is missing before any phase trains, and names
the commands that write it (`tasks build`, `tasks instructions`, or the whole study with `babyvlm run`)."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from babyvlm.cli import cli


def test_train_demo_after_synth_names_the_task_commands(tmp_path):
    work = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "babyvlm", "train", "demo", "--work-dir", str(work), "--phase", "all"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    message = done.stderr.strip().splitlines()[-1]
    assert "phase 3-instruction: data.llava_json" in message
    assert f"babyvlm tasks build --source saycam --root {work / 'corpus'} --out {work / 'tasks'} --domain saycam" in message
    assert "tasks instructions" not in message  # tasks build writes the mixed train file itself
    assert "babyvlm run demo" in message and "Traceback" not in done.stderr
    assert not (work / "phases").exists()  # refused before phase 0 trained


def test_a_built_task_folder_needs_only_the_instructions_command(tmp_path):
    tasks = tmp_path / "run" / "tasks" / "saycam"
    tasks.mkdir(parents=True)
    (tasks / "manifest.json").write_text("{}")
    done = CliRunner().invoke(cli, ["train", "demo", "--work-dir", str(tmp_path / "run"), "--phase", "3-instruction"])
    assert done.exit_code != 0
    assert f"build it with `babyvlm tasks instructions {tasks}`" in done.output
    assert "tasks build" not in done.output and "--per-task" not in done.output
    one_task = CliRunner().invoke(cli, ["train", "demo", "--work-dir", str(tmp_path / "run"), "--phase", "3-instruction",
                                        "--set", "phases.4.data.llava_json="
                                        "{tasks}/saycam/devcv_instructions_compare_synthetic_train.json"])
    assert f"`babyvlm tasks instructions {tasks} --per-task`" in one_task.output
    easy = CliRunner().invoke(cli, ["train", "demo", "--work-dir", str(tmp_path / "run"), "--phase", "3-instruction",
                                    "--set", "phases.4.data.llava_json={tasks}/saycam/devcv_instructions_easy3000_train.json"])
    assert f"`babyvlm tasks instructions {tasks} --easy-match 3000`" in easy.output
    easy_one = CliRunner().invoke(cli, ["train", "demo", "--work-dir", str(tmp_path / "run"), "--phase", "3-instruction",
                                        "--set", "phases.4.data.llava_json="
                                        "{tasks}/saycam/devcv_instructions_spatialdetails_easy40_train.json"])
    assert f"`babyvlm tasks instructions {tasks} --per-task --easy-match 40`" in easy_one.output
