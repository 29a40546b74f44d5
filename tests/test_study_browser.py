"""The study end to end in headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by
Selenium; no browser is downloaded): a participant arriving from a recruiting link completes items of
three tasks including Memory's 15 rounds, by mouse and by keyboard; a reload mid-study and a browser
closed and reopened both resume at the right screen; the SQLite rows and the export are checked; a
screenshot of an item page is saved (``BABYVLM_ARTIFACTS`` names the folder, else the test's tmp)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from test_study_support import write_task_folder

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="needs Debian's chromium and chromium-driver packages "
                                       "(apt-get install -y chromium chromium-driver)")
TASKS = ["baby_pv", "baby_count", "baby_memory"]


@pytest.fixture
def served(fresh_registry, tmp_path):
    from werkzeug.serving import make_server

    from babyvlm.plugins.study.app import create_app
    from babyvlm.plugins.study.content import StudyContent
    from babyvlm.plugins.study.storage import StudyDB

    content = StudyContent(write_task_folder(tmp_path / "tasks"), TASKS, items_per_task=2, seed=3)
    db = StudyDB(tmp_path / "study.sqlite")
    app = create_app(content, db, completion_url="http://127.0.0.1:9/complete?cc=OK")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", content, db
    server.shutdown()
    server.server_close()


def browser():
    pytest.importorskip("selenium", reason="needs the selenium package")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1000", "--no-proxy-server"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(60)
    return driver


def wait_ready(driver, previous_index: int | None = None) -> dict:
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d):
        state = d.execute_script(
            "var t = document.getElementById('trial');"
            "if (!t || t.dataset.ready !== '1') return null;"
            "return {index: Number(t.dataset.index), task: t.dataset.task, item: t.dataset.item,"
            "        screen: Number(t.dataset.screen), layout: t.dataset.layout};")
        return state if state and state["index"] != previous_index else None

    return WebDriverWait(driver, 30, poll_frequency=0.05).until(ready)


def respond(driver, content, state, by_key: bool, wrong: bool) -> str:
    from selenium.webdriver.common.by import By

    screen = content.entry(state["task"], state["item"]).screens[state["screen"]]
    keys = [option.key for option in screen.options]
    response = next((k for k in keys if k != screen.gold), screen.gold) if wrong else screen.gold
    button = driver.find_element(By.CSS_SELECTOR, f'button.option[data-response="{response}"]')
    if by_key:
        button_key = button.get_attribute("data-key")
        driver.find_element(By.TAG_NAME, "body").send_keys(button_key)
    else:
        button.click()
    return response


def test_a_participant_takes_the_study_in_chromium(served, tmp_path):
    from selenium.webdriver.common.by import By

    url, content, db = served
    artifacts = Path(os.environ.get("BABYVLM_ARTIFACTS", tmp_path / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    total = content.total_trials()
    given: list[tuple[int, str]] = []
    driver = browser()
    try:
        driver.get(f"{url}/?PROLIFIC_PID=chromium1&STUDY_ID=st&SESSION_ID=se")
        driver.find_element(By.ID, "consent").click()
        driver.find_element(By.ID, "start").click()
        state = wait_ready(driver)
        shot = False
        while len(given) < 10:
            assert state["index"] == len(given)
            if not shot and state["task"] == "baby_pv":
                driver.save_screenshot(str(artifacts / "study_item_page.png"))
                shot = True
            if state["task"] == "baby_memory" and state["screen"] == 1:
                driver.save_screenshot(str(artifacts / "study_memory_round.png"))
            if len(given) == 4:  # reload before answering: the same screen comes back
                driver.refresh()
                assert wait_ready(driver) == state
            response = respond(driver, content, state, by_key=len(given) % 2 == 1, wrong=len(given) % 4 == 2)
            given.append((state["index"], response))
            state = wait_ready(driver, previous_index=state["index"])
        if not shot:
            driver.save_screenshot(str(artifacts / "study_item_page.png"))
    finally:
        driver.quit()  # the browser is closed mid-study

    driver = browser()  # a new browser, no cookie: the recruiting link resumes the participant
    try:
        driver.get(f"{url}/?PROLIFIC_PID=chromium1&STUDY_ID=st&SESSION_ID=se")
        state = wait_ready(driver)
        assert state["index"] == 10
        while True:
            response = respond(driver, content, state, by_key=False, wrong=False)
            given.append((state["index"], response))
            if len(given) == total:
                break
            state = wait_ready(driver, previous_index=state["index"])
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.ID, "done"))
        link = driver.find_element(By.ID, "completion").get_attribute("href")
        assert link == "http://127.0.0.1:9/complete?cc=OK"
    finally:
        driver.quit()

    with sqlite3.connect(db.path) as connection:
        stored = connection.execute("SELECT trial_index, task, response, correct, rt_ms, gold FROM trials "
                                    "ORDER BY trial_index").fetchall()
        pids = connection.execute("SELECT prolific_pid, study_id, finished_at IS NOT NULL FROM participants").fetchall()
    assert pids == [("chromium1", "st", 1)]
    assert [(index, response) for index, _, response, *_ in stored] == given
    assert {task for _, task, *_ in stored} == set(TASKS)
    assert sum(1 for row in stored if row[1] == "baby_memory") == 15
    assert all(0 < row[4] < 60_000 for row in stored)  # client-measured rt from stimulus onset
    assert [bool(row[3]) for row in stored] == [row[2] == row[5] for row in stored]
    assert sum(not row[3] for row in stored) >= 1  # answered wrong on purpose (where a screen has 2+ options)

    from babyvlm.plugins.study.export import export_study

    out = tmp_path / "human"
    summary = export_study(db.path, out, bootstrap_resamples=10)
    results = json.loads(next((out / "tasks").glob("*_results.json")).read_text())["results"]
    assert set(results) == set(TASKS) and results["baby_memory"]["chance,none"] == 0.25
    assert summary["domains"]["tasks"]["tasks"]["baby_pv"]["participants"] == 1
    assert (artifacts / "study_item_page.png").stat().st_size > 10_000
