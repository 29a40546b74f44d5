"""Hostile clients of ``babyvlm serve`` and the human study, over real HTTP on the loopback (request
counts and waits bounded): no 500 for any client input, a request the model refuses fails alone and not
its batch, a PNG decompression bomb gets 413, a seed too large for a generator 400; 200 concurrent
``/start`` with one ``PROLIFIC_PID`` make one participant (the losers 409, resumed), an answer past the
last trial is 409; a bad ``--host`` or a busy port is one line naming it. Also the one image decoder
(``media.decode_image``) as every path uses it: ``tasks show``, evaluation (an undecodable item skipped,
counted and named, the run going on) and the study's stimuli."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fixtures_media import png_bomb
from test_serve_openai_roundtrip import checkpoint, jpeg, model, serve_command  # noqa: F401  (fixtures)
from test_study_support import write_task_folder

from babyvlm.core.errors import BabyVLMError, ConfigError, DataError
from babyvlm.media import ImageTooLarge, decode_image
from babyvlm.plugins.serve.app import create_app
from babyvlm.webserver import bind_listener, listening_server

TIMEOUT = 60  # seconds any one HTTP exchange may take


# ---- a real server on the loopback ----------------------------------------------------------------------
class Running:
    """``app`` served by ``listening_server`` in a thread on 127.0.0.1 (a free port) for the test's length."""

    def __init__(self, app):
        self.server = listening_server(app, "127.0.0.1", bind_listener("127.0.0.1", 0))
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=TIMEOUT)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def post_json(self, path: str, body: object, headers: dict | None = None):
        status, found, data = self.request("POST", path, json.dumps(body).encode(),
                                           {"Content-Type": "application/json", **(headers or {})})
        return status, found, json.loads(data or b"null")


def chat(text: str, *images: bytes, **extra) -> dict:
    parts = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{base64.b64encode(d).decode()}"}}
             for d in images] + [{"type": "text", "text": text}]
    return {"messages": [{"role": "user", "content": parts}], "temperature": 0, "max_tokens": 3, **extra}


def test_bad_requests_fail_alone_and_their_batch_neighbours_are_answered(model):  # noqa: F811
    """One batch holds good requests, a seed of 2**80, a PNG bomb and one the model refuses mid-batch."""
    app = create_app(model, "tiny-baby", max_batch=8, max_queue=16, batch_wait_s=0.5)
    batcher = app.config["BATCHER"]
    generate = batcher.run_batch

    def refusing(jobs):  # the model refuses one conversation, as it would one it cannot fit
        if any("refuse me" in turn["value"] for job in jobs for turn in job.conversations):
            raise BabyVLMError("sample 0: this conversation is refused by the model")
        return generate(jobs)

    batcher.run_batch = refusing
    bodies = [chat("look at the ball", jpeg(n)) for n in range(4)] + [
        chat("look at the ball", seed=2**80, temperature=1.0),
        chat("what is this?", png_bomb()),
        chat("refuse me"),
    ]
    try:
        with Running(app) as server, ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(lambda body: server.post_json("/v1/chat/completions", body), bodies))
    finally:
        batcher.close()
    statuses = [status for status, _, _ in answers]
    assert statuses == [200, 200, 200, 200, 400, 413, 400], [a[2] for a in answers]
    assert answers[4][2]["error"]["param"] == "seed" and "[0, 9223372036854775807]" in answers[4][2]["error"]["message"]
    bomb = answers[5][2]["error"]
    assert bomb["param"] == "messages[0].content[0].image_url.url" and "refused before decoding" in bomb["message"]
    assert "refused by the model" in answers[6][2]["error"]["message"]
    assert all(a[2]["choices"][0]["message"]["content"] is not None for a in answers[:4])
    assert max(batcher.batches) >= 2  # the good ones (and the refused one) did share a batch


def test_a_body_over_the_limit_and_garbage_get_4xx_not_500(model):  # noqa: F811
    app = create_app(model, "tiny-baby")
    hostile = [b"{", b"[]", b'{"messages": [{"role": "user", "content": {"nested": [1, 2]}}]}',
               b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1e309}',
               b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
               b'{"messages": [{"role": "user", "content": "hi"}], "stop": [[1]]}',
               b'{"messages": [{"role": "user", "content": "hi"}], "model": ["x"]}']
    try:
        with Running(app) as server:
            for body in hostile:
                status, _, data = server.request("POST", "/v1/chat/completions", body,
                                                 {"Content-Type": "application/json"})
                assert 400 <= status < 500 and json.loads(data)["error"]["message"], (body, status, data)
            big = b"x" * (65 * 1024 * 1024)
            status, _, _ = server.request("POST", "/v1/chat/completions", big, {"Content-Type": "application/json"})
            assert status == 413
    finally:
        app.config["BATCHER"].close()


@pytest.mark.parametrize("command", ["serve", "study"])
def test_a_bad_host_or_a_busy_port_is_one_line_naming_it(checkpoint, tmp_path, command):  # noqa: F811
    folder = write_task_folder(tmp_path / "tasks") if command == "study" else None
    base = serve_command(checkpoint) if command == "serve" else \
        [sys.executable, "-m", "babyvlm", "study", "serve", str(folder), "--db", str(tmp_path / "s.sqlite")]
    bad = subprocess.run(base + ["--host", "256.1.1.1"], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("Error: --host '256.1.1.1': not an address or "
                                                                 "host name this machine can listen on ("), bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = subprocess.run(base + ["--port", str(port)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert busy.returncode == 1 and busy.stderr.strip() == f"Error: cannot listen on 127.0.0.1:{port}: Address " \
                                                           f"already in use", busy.stderr


# ---- the human study --------------------------------------------------------------------------------------
@pytest.fixture
def study(fresh_registry, tmp_path):
    from babyvlm.plugins.study.app import create_app as create_study
    from babyvlm.plugins.study.content import StudyContent
    from babyvlm.plugins.study.storage import StudyDB

    folder = write_task_folder(tmp_path / "tasks")
    content = StudyContent(folder, ["baby_pv", "baby_count"], items_per_task=1, seed=1)
    db = StudyDB(tmp_path / "study.sqlite")
    return create_study(content, db), content, db


def test_200_concurrent_starts_with_one_prolific_pid_make_one_participant(study):
    app, _, db = study
    form = urlencode({"consent": "yes", "PROLIFIC_PID": "same-person", "STUDY_ID": "s1"}).encode()
    with Running(app) as server, ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda _: server.request("POST", "/start", form, {
            "Content-Type": "application/x-www-form-urlencoded"}), range(200)))
        statuses = [status for status, _, _ in answers]
        assert set(statuses) <= {302, 409}, sorted(set(statuses))
        ids = {p["participant_id"] for p in db.participants()}
        assert len(ids) == 1 and db.participants()[0]["prolific_pid"] == "same-person"
        for status, headers, body in answers:  # every browser, winner or not, now holds that participant
            cookie = headers["Set-Cookie"].split(";")[0]
            state = server.request("GET", "/api/state", headers={"Cookie": cookie})
            assert json.loads(state[2])["participant_id"] in ids
            if status == 409:
                assert json.loads(body)["error"]["next"] == "/trial"


def test_an_answer_past_the_last_trial_is_409_and_changes_nothing(study):
    from test_study_support import answer, current, start

    app, content, db = study
    client = app.test_client()
    start(client, PROLIFIC_PID="p1")
    while not client.get("/api/state").get_json()["finished"]:
        trial, screen, _ = current(client, content)
        assert answer(client, trial, screen.gold).status_code == 200
    total = content.total_trials()
    past = {"participant_id": trial["participant_id"], "trial_index": total, "task": trial["task"],
            "item_id": trial["item_id"], "screen": 0}
    for index in (total, total + 5, trial["trial_index"]):
        reply = answer(client, dict(past, trial_index=index), screen.gold)
        assert reply.status_code == 409 and "the study is finished" in reply.get_json()["error"]["message"]
    assert len(db.trials()) == total


# ---- one image decoder for every path -------------------------------------------------------------------------
def test_decode_image_refuses_a_bomb_before_decoding_and_names_a_corrupt_file():
    with pytest.raises(ImageTooLarge, match="where: image larger than"):
        decode_image(png_bomb(), "where")
    with pytest.raises(ImageTooLarge, match=r"where: image of 9000 x 9000 pixels is larger than the 67,108,864"):
        decode_image(png_bomb(9000, 9000), "where")
    with pytest.raises(DataError, match="where: cannot decode image"):
        decode_image(b"\xff\xd8 not really a jpeg", "where")
    assert decode_image(jpeg(1)).shape == (32, 32, 3)


@pytest.fixture
def poisoned(fresh_registry, tmp_path) -> tuple[Path, dict[str, str]]:
    """A task folder whose first baby_pv item has a corrupt image and first baby_count item a PNG bomb."""
    folder = write_task_folder(tmp_path / "data" / "saycam")
    spoiled = {}
    for short, payload in (("pv", b"\xff\xd8 truncated"), ("count", png_bomb())):
        item = json.loads((folder / f"{short}_test.json").read_text())[0]
        (folder / item["image"][0]).write_bytes(payload)
        spoiled[short] = (item["id"], item["image"][0])
    return folder, spoiled


def test_evaluation_skips_counts_and_names_undecodable_items_and_goes_on(poisoned, tmp_path):
    folder, spoiled = poisoned
    out = tmp_path / "eval"
    result = subprocess.run([sys.executable, "-m", "babyvlm", "eval", "--model", "random", "--tasks",
                             "baby_pv,baby_count", "--data", str(folder.parent), "--out", str(out)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for short, task in (("pv", "baby_pv"), ("count", "baby_count")):
        item_id, file = spoiled[short]
        assert any(line.startswith(f"skipped: saycam/{task} item {item_id!r}: {file}: ") for line in
                   result.stdout.splitlines()), result.stdout
    assert "skipped: 2 (undecodable_image 2); each named in the results files" in result.stdout
    results = json.loads(next((out / "saycam").glob("*_results.json")).read_text())
    assert results["skipped"]["counts"] == {"undecodable_image": 2}
    assert results["n-samples"]["baby_pv"]["original"] == 2  # 3 items, one skipped
    summary = json.loads(next(out.glob("*_summary.json")).read_text())
    skipped = summary["domains"]["saycam"]["tasks"]["baby_count"]["skipped_items"]
    assert [(s["item_id"], s["file"]) for s in skipped] == [spoiled["count"]]
    assert "refused before decoding" in skipped[0]["error"]


def test_tasks_show_and_the_study_refuse_an_undecodable_image_naming_it(poisoned, tmp_path):
    from click.testing import CliRunner

    from babyvlm.plugins.devcv.commands import tasks_group
    from babyvlm.plugins.study.content import StudyContent

    folder, spoiled = poisoned
    item_id, file = spoiled["count"]
    shown = CliRunner().invoke(tasks_group, ["show", str(folder), "baby_count", item_id, "--out",
                                             str(tmp_path / "sheet.png")])
    assert isinstance(shown.exception, ImageTooLarge)
    assert str(shown.exception).startswith(f"baby_count item {item_id!r}: {file}: image larger than")
    assert not (tmp_path / "sheet.png").exists()
    with pytest.raises(DataError, match=f"task baby_pv item '{spoiled['pv'][0]}': {spoiled['pv'][1]}: cannot decode"):
        StudyContent(folder, ["baby_pv"], items_per_task=None)


def test_study_serve_without_tasks_serves_every_task_in_the_folder(fresh_registry, tmp_path):
    from babyvlm.plugins.study.commands import _task_list

    folder = write_task_folder(tmp_path / "tasks")
    assert _task_list(None, folder, "test") == sorted(["baby_count", "baby_memory", "baby_pv", "baby_vdr_binary",
                                                       "baby_winoground"])
    with pytest.raises(ConfigError, match="no task has 'val' items here"):
        _task_list(None, folder, "val")
