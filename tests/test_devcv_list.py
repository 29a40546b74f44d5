"""``babyvlm tasks list`` lists every registered task — another plugin's too, after the DevCV twelve —
with its plugin and chance level; a task that cannot be built is listed with its error, not fatal."""

from __future__ import annotations

import json
from types import SimpleNamespace

from click.testing import CliRunner

from babyvlm import registry
from babyvlm.core.hookspecs import hookimpl
from babyvlm.plugins.devcv import TASKS
from babyvlm.plugins.devcv.commands import tasks_group


class DotsTask:
    """The bare Task contract (none of the optional DevCV fields): 'How many dots? 1-5'."""

    name, primary_metric, metrics = "aa_dots", "acc", ("acc",)

    def chance(self) -> float:
        return 1 / 5

    def load(self, folder, split="test"):
        return []

    def build(self, recordings, splits, seed=0, log=print):
        return {}

    def requests(self, item, mode):
        return []

    def score(self, item, responses, mode):
        raise NotImplementedError

    def aggregate(self, items, predictions):
        return {"acc": 0.0}


def task_plugin(**tasks) -> SimpleNamespace:
    def register_tasks(register):
        for name, component in tasks.items():
            register(name, component)

    return SimpleNamespace(register_tasks=hookimpl(register_tasks))


def test_list_includes_another_plugins_task_and_a_broken_one(fresh_registry):
    registry.register_plugin(task_plugin(aa_dots=DotsTask, zz_broken="no_such_module_anywhere:Task"), "dots")
    result = CliRunner().invoke(tasks_group, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    # the toolbox's own order first, then other plugins' tasks by name (aa_dots sorts first, comes after)
    assert list(rows) == [*TASKS, "aa_dots", "zz_broken"]
    assert rows["baby_pv"]["plugin"] == "devcv" and rows["baby_pv"]["chance"] == 0.25
    assert rows["aa_dots"] == {"name": "aa_dots", "plugin": "dots", "domains": [], "inputs": "", "answer_space": "",
                               "chance": 0.2, "primary_metric": "acc", "metrics": ["acc"],
                               "held_out_of_instructions": False}
    assert rows["zz_broken"]["plugin"] == "dots"
    assert "cannot import no_such_module_anywhere:Task" in rows["zz_broken"]["error"]


def test_table_shows_the_plugin_and_marks_an_unavailable_task(fresh_registry):
    registry.register_plugin(task_plugin(aa_dots=DotsTask, zz_broken="no_such_module_anywhere:Task"), "dots")
    result = CliRunner().invoke(tasks_group, ["list"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()[1:]}
    assert set(lines) == {*TASKS, "aa_dots", "zz_broken"}
    assert lines["aa_dots"].split()[1:4] == ["dots", "0.200", "acc"]
    assert "(unavailable: " in lines["zz_broken"] and "no_such_module_anywhere" in lines["zz_broken"]
