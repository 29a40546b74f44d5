"""The study web app through Flask's test client: consent, seeded per-participant order, answers stored
in SQLite, resume, and every bad request (unknown item, replayed answer, tampered ids, implausible rt,
an option the screen does not have) answered 4xx JSON with nothing changed; then the export."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from click.testing import CliRunner
from test_study_support import answer, current, start, write_task_folder

from babyvlm.core.errors import ConfigError
from babyvlm.plugins.study.app import create_app
from babyvlm.plugins.study.commands import study_group
from babyvlm.plugins.study.content import StudyContent
from babyvlm.plugins.study.storage import StudyDB

TASKS = ["baby_pv", "baby_count", "baby_memory", "baby_winoground", "baby_vdr_binary"]


@pytest.fixture
def study(fresh_registry, tmp_path):
    folder = write_task_folder(tmp_path / "tasks")
    content = StudyContent(folder, TASKS, items_per_task=2, seed=1)
    db = StudyDB(tmp_path / "study.sqlite")
    app = create_app(content, db, completion_url="https://example.org/done?cc=X&pid={PROLIFIC_PID}")
    return app, content, db, tmp_path


def rows(db):
    with sqlite3.connect(db.path) as connection:
        return connection.execute("SELECT trial_index, task, item_id, screen, response, correct, rt_ms "
                                  "FROM trials ORDER BY trial_index").fetchall()


def test_a_participant_answers_resumes_and_is_exported(study):
    app, content, db, tmp_path = study
    client = app.test_client()
    state = start(client, PROLIFIC_PID="abc123", STUDY_ID="s1", SESSION_ID="x9")
    assert state == {"participant_id": state["participant_id"], "next_trial": 0, "total": 25, "finished": False}
    given = []
    for number in range(8):
        trial, screen, page = current(client, content)
        assert trial["trial_index"] == number
        if number == 0:
            assert page.count("<img") >= 1 and "<kbd>" in page
        response = screen.gold if number % 3 else screen.options[-1].key  # some wrong on purpose
        given.append((response, screen.is_correct(response)))
        reply = answer(client, trial, response)
        assert reply.status_code == 200, reply.get_json()
    stored = rows(db)
    assert [(r[4], bool(r[5])) for r in stored] == given and all(r[6] == 5.0 for r in stored)

    # a new browser (no cookie) coming back through the recruiting link resumes at the next screen
    again = app.test_client()
    assert again.get("/?PROLIFIC_PID=abc123").headers["Location"].endswith("/trial")
    assert current(again, content)[0]["trial_index"] == 8
    while True:
        state = again.get("/api/state").get_json()
        if state["finished"]:
            break
        trial, screen, _ = current(again, content)
        assert answer(again, trial, screen.gold).status_code == 200
    done = again.get("/done").data.decode()
    assert "https://example.org/done?cc=X&amp;pid=abc123" in done
    assert len(rows(db)) == 25

    out = tmp_path / "human"
    result = CliRunner().invoke(study_group, ["export", str(db.path), "--out", str(out), "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    assert re.search(r"baby_memory\s+acc_testing_adjusted\s+\S+\s+0\.250", result.output)  # score beside chance
    results = json.loads(next((out / "tasks").glob("*_results.json")).read_text())
    assert results["config"]["model"] == "human"
    assert set(results["results"]) == set(TASKS)
    wrong = {(task, item) for (response, ok), (_, task, item, *_) in zip(given, stored, strict=True) if not ok}
    pv_acc = results["results"]["baby_pv"]["acc,none"]
    assert pv_acc == 1 - len({item for task, item in wrong if task == "baby_pv"}) / 2
    assert results["results"]["baby_winoground"]["chance,none"] == pytest.approx(1 / 6)
    items = json.loads((out / "human_items.json").read_text())["tasks"]
    first_pv = items["baby_pv"][content.items["baby_pv"][0].item.item_id]
    assert sum(first_pv["counts"].values()) == 1 and set(first_pv["counts"]) >= {"A", "B", "C", "D"}
    memory = items["baby_memory"][content.items["baby_memory"][0].item.item_id]
    assert len(memory["screens"]) == 15 and memory["n"] == 1
    participants = json.loads((out / "participants.json").read_text())
    assert participants[0]["prolific_pid"] == "abc123" and participants[0]["finished"]
    trials = (out / "trials.jsonl").read_text().splitlines()
    assert len(trials) == 25 and {"rt", "time_elapsed", "stimulus", "trial_index"} <= set(json.loads(trials[0]))


def test_bad_requests_get_4xx_json_and_change_nothing(study):
    app, content, db, _ = study
    client = app.test_client()
    start(client)
    trial, screen, _ = current(client, content)
    assert answer(client, trial, screen.gold).status_code == 200
    before = rows(db)
    trial, screen, _ = current(client, content)
    previous = dict(trial, trial_index=trial["trial_index"] - 1)
    cases = [
        (dict(previous), screen.gold, 409),                                 # replayed answer
        (dict(trial, trial_index=trial["trial_index"] + 1), screen.gold, 409),  # skipping ahead
        (dict(trial, participant_id="p-someoneelse"), screen.gold, 403),    # tampered participant id
        (dict(trial, item_id="no_such_item"), screen.gold, 404),            # unknown item
        (dict(trial, screen=trial["screen"] + 7), screen.gold, 400),        # tampered screen
        (dict(trial), "Z", 400),                                            # not an option
        (dict(trial), "", 400),
    ]
    for body, response, status in cases:
        reply = answer(client, body, response)
        assert reply.status_code == status and reply.get_json()["error"]["message"], (body, reply.get_json())
    for rt in (-1, 0, "fast", 10 ** 9, 60_000):  # 60 s: longer than the time since the screen was shown
        reply = answer(client, trial, screen.gold, rt_ms=rt)
        assert reply.status_code == 400 and "rt_ms" in reply.get_json()["error"]["message"]
    assert client.post("/api/answer", data="nonsense", content_type="application/json").status_code == 400
    assert app.test_client().post("/api/answer", json=dict(trial, response=screen.gold, rt_ms=5)).status_code == 401
    assert client.post("/start", data={}).status_code == 400  # no consent
    assert client.get("/?PROLIFIC_PID=bad%20id!").status_code == 400
    assert client.get("/nowhere").status_code == 404 and client.get("/nowhere").get_json()["error"]
    assert rows(db) == before
    assert client.get("/api/state").get_json()["next_trial"] == 1


def test_orders_are_seeded_per_participant_and_the_db_is_bound_to_its_items(study, tmp_path):
    app, content, db, _ = study
    first, second = content.order_for("p-1")[1], content.order_for("p-2")[1]
    assert first == content.order_for("p-1")[1] and first != second and sorted(first) == sorted(second)
    memory = [entry for entry in first if entry[0] == "baby_memory"]
    assert [entry[2] for entry in memory] == list(range(15))  # rounds stay together and in order
    index = first.index(memory[0])
    assert first[index:index + 15] == memory
    other = StudyContent(content.tasks_dir, ["baby_pv"], items_per_task=1, seed=1)
    with pytest.raises(ConfigError, match="belongs to a study with other items"):
        create_app(other, db)


def test_serve_command_refuses_bad_arguments(fresh_registry, tmp_path):
    folder = write_task_folder(tmp_path / "tasks")
    result = CliRunner().invoke(study_group, ["serve", str(folder), "--tasks", " , "])
    assert result.exit_code != 0 and "--tasks" in str(result.exception or result.output)
    result = CliRunner().invoke(study_group, ["export", str(tmp_path / "missing.sqlite"), "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and "no such study database" in str(result.exception)


def test_each_task_shape_gets_its_layout(study):
    app, content, _, _ = study
    vdr = content.items["baby_vdr_binary"][0].screens[0]
    assert vdr.layout == "animation" and vdr.frames == list(range(6))
    assert [o.key for o in vdr.options] == ["left", "right"] and vdr.gold in ("left", "right")
    wino = content.items["baby_winoground"][0].screens
    assert [s.layout for s in wino] == ["phrase", "phrase"] and [o.image for o in wino[0].options] == [0, 1]
    memory = content.items["baby_memory"][0].screens
    assert len(memory) == 15 and [len(s.options) for s in memory] == [1] + [2] * 14
    assert all(o.image is not None for s in memory for o in s.options)
    pv = content.items["baby_pv"][0].screens[0]
    assert [o.key for o in pv.options] == ["A", "B", "C", "D"] and pv.options[0].label == "the first image"
    count = content.items["baby_count"][0].screens[0]
    assert [o.key for o in count.options] == [str(c) for c in range(1, 7)]
    client = app.test_client()
    start(client)
    for _ in range(content.total_trials()):  # every screen renders; the VDR one as an animation
        trial, screen, page = current(client, content)
        if screen.layout == "animation":
            assert page.count('class="frame') == 6 and 'id="animation"' in page
        if screen.layout == "phrase":
            assert "&ldquo;" in page and page.count('class="option"') == 2
        assert answer(client, trial, screen.options[0].key).status_code == 200
