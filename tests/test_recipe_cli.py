"""``babyvlm recipe balance``: a mixed instruction file becomes one task-balanced pass, through the CLI."""

from __future__ import annotations

import json
from collections import Counter

from click.testing import CliRunner

from babyvlm.cli import cli


def write_records(path, counts):
    records = [{"id": f"{task}_{i}", "image": [f"images/{task}_{i}.jpg"], "task": task,
                "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A"}]}
               for task, count in counts.items() for i in range(count)]
    path.write_text(json.dumps(records))


def test_balance_writes_equal_task_counts(fresh_registry, tmp_path):
    source, out = tmp_path / "mixed.json", tmp_path / "balanced.json"
    write_records(source, {"baby_count": 9, "baby_localize": 2})
    result = CliRunner().invoke(cli, ["recipe", "balance", str(source), str(out), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "baby_localize: 2 -> 9" in result.output
    records = json.loads(out.read_text())
    assert Counter(r["task"] for r in records) == {"baby_count": 9, "baby_localize": 9}
    assert len({r["id"] for r in records}) == 18


def test_balance_refuses_records_without_a_task_by_file_and_row(fresh_registry, tmp_path):
    source = tmp_path / "mixed.json"
    source.write_text(json.dumps([{"id": "a", "task": "baby_pv"}, {"id": "b"}]))
    result = CliRunner().invoke(cli, ["recipe", "balance", str(source), str(tmp_path / "out.json")])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {source}: record 1 has no 'task' string, so it cannot be balanced by task"
    assert not (tmp_path / "out.json").exists()
