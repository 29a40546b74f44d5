"""The participant-facing web app of ``babyvlm study serve`` (Flask + Jinja templates).

Pages: ``/`` consent and instructions (recruiting ids from the URL: ``PROLIFIC_PID``, ``STUDY_ID``,
``SESSION_ID``), ``POST /start`` (creates an anonymous participant, or resumes one: the signed session
cookie, or a known ``PROLIFIC_PID``), ``/trial`` (the participant's next screen), ``/done`` (thanks, and
the completion redirect). API: ``POST /api/answer`` stores one answer; ``GET /api/state``.

An answer is accepted only for the participant in the session cookie, for their next trial index, with the
item and screen that index holds, a response among the screen's options and a plausible response time
(0 < rt <= the time since the screen was first served, plus slack); anything else is a 4xx JSON error and
changes nothing (an answer past the last trial too: 409); two starts at once with one ``PROLIFIC_PID``
make one participant (the second gets 409 and resumes it). No client input gets a 500. Answers are
committed before the reply, so closing the browser loses nothing answered,
and reopening resumes at the next unanswered screen.
"""

from __future__ import annotations

import base64
import json
import math
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException

from babyvlm.plugins.study.content import StudyContent
from babyvlm.plugins.study.storage import DuplicateParticipant, ReplayError, StudyDB

RECRUITING_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
RT_SLACK_MS = 2000.0  # client and server clocks start at slightly different moments
MAX_RT_MS = 60 * 60 * 1000.0
MAX_PARAM_LENGTH = 200


class StudyError(Exception):
    def __init__(self, status: int, message: str, **details: Any):
        super().__init__(message)
        self.status, self.message, self.details = status, message, details


def create_app(content: StudyContent, db: StudyDB, completion_url: str | None = None,
               title: str = "Picture games") -> Flask:
    app = Flask("babyvlm.study", template_folder="templates", static_folder="static", root_path=_here())
    app.secret_key = db.meta()["secret"]
    app.config.update(SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_HTTPONLY=True, MAX_CONTENT_LENGTH=64 * 1024)
    db.bind_study(content.settings())
    started = time.time()
    total = content.total_trials()

    def current_participant() -> dict[str, Any] | None:
        participant_id = session.get("participant_id")
        return db.participant(participant_id) if isinstance(participant_id, str) else None

    @app.errorhandler(StudyError)
    def study_error(error: StudyError):
        return jsonify({"error": {"message": error.message, **error.details}}), error.status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return jsonify({"error": {"message": error.description or error.name}}), error.code

    @app.get("/")
    def consent():
        participant = current_participant()
        params = _recruiting_params(request.args)
        if participant is None and params.get("PROLIFIC_PID"):
            participant = db.participant_by_prolific(params["PROLIFIC_PID"])
            if participant is not None:
                session["participant_id"] = participant["participant_id"]
        if participant is not None:
            return redirect(url_for("done" if participant["next_trial"] >= total else "trial"))
        return render_template("consent.html", title=title, params=params, tasks=len(content.items), total=total)

    @app.post("/start")
    def start():
        if request.form.get("consent") != "yes":
            raise StudyError(400, "consent is required to take part")
        params = _recruiting_params(request.form)
        participant = current_participant()
        if participant is None and params.get("PROLIFIC_PID"):
            participant = db.participant_by_prolific(params["PROLIFIC_PID"])
        if participant is None:
            participant_id = f"p-{uuid.uuid4().hex[:12]}"
            seed, order = content.order_for(participant_id)
            try:
                participant = db.add_participant(participant_id, seed, order, params, request.user_agent.string or "")
            except DuplicateParticipant as exc:  # another start with this PROLIFIC_PID won the race: resume it
                session["participant_id"] = exc.existing["participant_id"]
                session.permanent = True
                raise StudyError(409, "this PROLIFIC_PID has just started the study in another request; that "
                                      "participant is resumed", next=url_for("trial")) from None
        session["participant_id"] = participant["participant_id"]
        session.permanent = True
        return redirect(url_for("trial"))

    @app.get("/trial")
    def trial():
        participant = current_participant()
        if participant is None:
            return redirect(url_for("consent"))
        index = participant["next_trial"]
        if index >= total:
            return redirect(url_for("done"))
        task, item_id, screen_number = participant["trial_order"][index]
        entry = content.entry(task, item_id)
        if entry is None:
            raise StudyError(409, f"trial {index}: item {task}/{item_id} is no longer in this study")
        db.mark_shown(participant["participant_id"], index)
        screen = entry.screens[screen_number]
        images = {number: _data_url(entry.item.images[number]) for number in _image_numbers(screen)}
        return render_template("trial.html", title=title, participant=participant, index=index, total=total,
                               task=task, item_id=item_id, screen_number=screen_number, screen=screen,
                               images=images, rounds=len(entry.screens))

    @app.post("/api/answer")
    def answer():
        participant = current_participant()
        if participant is None:
            raise StudyError(401, "no participant session; start the study from its first page")
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise StudyError(400, "the answer must be a JSON object")
        if body.get("participant_id") != participant["participant_id"]:
            raise StudyError(403, "participant_id does not match this session")
        index = _integer(body, "trial_index")
        if participant["next_trial"] >= total:
            raise StudyError(409, f"the study is finished: all {total} trials are answered; no trial {index}",
                             expected=None)
        if index != participant["next_trial"]:
            raise StudyError(409, f"trial {index} is not the next trial (expected {participant['next_trial']}); "
                                     f"answers cannot be replayed or skipped", expected=participant["next_trial"])
        task, item_id, screen_number = participant["trial_order"][index]
        if body.get("task") != task or body.get("item_id") != item_id or body.get("screen") != screen_number:
            known = content.entry(str(body.get("task")), str(body.get("item_id"))) is not None
            raise StudyError(400 if known else 404, f"trial {index} shows {task}/{item_id} screen {screen_number}, "
                                                    f"not {body.get('task')}/{body.get('item_id')} screen "
                                                    f"{body.get('screen')}")
        entry = content.entry(task, item_id)
        screen = entry.screens[screen_number]
        response = body.get("response")
        if not isinstance(response, str) or not response.strip() or len(response) > MAX_PARAM_LENGTH:
            raise StudyError(400, "response must be a non-empty string")
        if not screen.accepts(response):
            raise StudyError(400, f"response {response!r} is not one of this screen's options "
                                  f"{[option.key for option in screen.options]}")
        rt_ms = _response_time(body, participant)
        now = time.time()
        row = dict(participant_id=participant["participant_id"], trial_index=index, task=task, item_id=item_id,
                   screen=screen_number, stimulus=_stimulus_json(screen), response=response.strip(),
                   gold=screen.gold, correct=int(screen.is_correct(response)), rt_ms=rt_ms,
                   shown_at=participant["shown_at"], answered_at=now, time_elapsed_ms=(now - started) * 1000)
        try:
            following = db.record_trial(participant, row, total)
        except ReplayError as exc:
            raise StudyError(409, f"trial {index} was already answered", expected=exc.expected) from None
        return jsonify({"ok": True, "next_trial": following,
                        "next": url_for("done") if following >= total else url_for("trial")})

    @app.get("/api/state")
    def state():
        participant = current_participant()
        if participant is None:
            raise StudyError(401, "no participant session")
        return jsonify({"participant_id": participant["participant_id"], "next_trial": participant["next_trial"],
                        "total": total, "finished": participant["next_trial"] >= total})

    @app.get("/done")
    def done():
        participant = current_participant()
        if participant is None or participant["next_trial"] < total:
            return redirect(url_for("consent"))
        target = _completion_target(completion_url, participant["url_params"])
        return render_template("done.html", title=title, completion_url=target)

    @app.get("/favicon.ico")
    def favicon():
        return Response(status=204)

    return app


def _here() -> str:
    return str(Path(__file__).parent)


def _recruiting_params(source: Mapping[str, str]) -> dict[str, str]:
    """Recruiting-platform ids from the URL or form, length-checked; other parameters are ignored."""
    params = {}
    for key in RECRUITING_PARAMS:
        value = source.get(key)
        if value:
            if len(value) > MAX_PARAM_LENGTH or not value.replace("-", "").replace("_", "").isalnum():
                raise StudyError(400, f"URL parameter {key} must be letters, digits, '-' or '_' (at most "
                                      f"{MAX_PARAM_LENGTH})")
            params[key] = value
    return params


def _integer(body: Mapping[str, Any], key: str) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise StudyError(400, f"{key} must be an integer")
    return value


def _response_time(body: Mapping[str, Any], participant: Mapping[str, Any]) -> float:
    """The client-measured rt, checked against the server's view of when the screen was served."""
    rt = body.get("rt_ms")
    if isinstance(rt, bool) or not isinstance(rt, (int, float)) or not math.isfinite(rt) or not 0 < rt <= MAX_RT_MS:
        raise StudyError(400, f"rt_ms must be a positive number of milliseconds (at most {MAX_RT_MS:.0f}), got {rt!r}")
    shown_at = participant.get("shown_at")
    if shown_at is None:
        raise StudyError(409, "this trial has not been shown yet; load /trial first")
    elapsed_ms = (time.time() - float(shown_at)) * 1000
    if rt > elapsed_ms + RT_SLACK_MS:
        raise StudyError(400, f"rt_ms {rt:.0f} is longer than the {elapsed_ms:.0f} ms since the trial was shown")
    return float(rt)


def _image_numbers(screen) -> list[int]:
    numbers = [value for kind, value in screen.segments if kind == "image"]
    numbers += [option.image for option in screen.options if option.image is not None]
    return sorted(set(numbers))


def _data_url(data: bytes) -> str:
    mime = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _stimulus_json(screen) -> str:
    return json.dumps({"layout": screen.layout, "segments": screen.segments,
                       "options": [option.key for option in screen.options], "gold": screen.gold})


def _completion_target(completion_url: str | None, params: Mapping[str, str]) -> str | None:
    """The redirect, with ``{PROLIFIC_PID}``-style placeholders filled from the participant's URL ids."""
    if not completion_url:
        return None
    target = completion_url
    for key in RECRUITING_PARAMS:
        target = target.replace("{" + key + "}", params.get(key, ""))
    return target
