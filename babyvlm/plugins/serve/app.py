"""The Flask app of ``babyvlm serve``: ``/v1/models``, ``/v1/chat/completions``, ``/health``.

Every refusal is JSON in OpenAI's error shape (``{"error": {"message", "type", "param", "code"}}``):
400 for a malformed body (every value checked before the request joins a batch), 404/405 for unknown
routes and methods, 413 for oversized bodies and images (a decompression bomb), 429 when the queue is
full, 504 when an answer takes longer than ``request_timeout_s``; 500 only for a failure of the server
itself, never for what a client sent, and a request the model refuses fails alone, not its batch.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from babyvlm.core.errors import BabyVLMError
from babyvlm.plugins.serve.batcher import Batcher, QueueFull
from babyvlm.plugins.serve.chat_request import ApiError, ChatJob, parse_chat_request
from babyvlm.plugins.serve.generation import greedy_ids, sampled_ids

MAX_BODY_BYTES = 64 * 1024 * 1024


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    cuts = [text.index(stop) for stop in stops if stop in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


def create_app(model: Any, model_name: str, max_batch: int = 8, max_queue: int = 64, max_tokens_limit: int = 1024,
               request_timeout_s: float = 600.0, batch_wait_s: float = 0.01) -> Flask:
    """The app, with its batcher at ``app.config["BATCHER"]`` (a worker thread that owns ``model``)."""
    app = Flask("babyvlm.serve")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    def run_batch(jobs: Sequence[ChatJob]) -> list[list[int]]:
        return greedy_ids(model, jobs) if jobs[0].greedy else sampled_ids(model, jobs)

    batcher = Batcher(run_batch, max_batch=max_batch, max_queue=max_queue, batch_wait_s=batch_wait_s)
    app.config["BATCHER"] = batcher
    created = int(time.time())

    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        return jsonify(error.body()), error.status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        kind = "not_found_error" if error.code == 404 else "invalid_request_error"
        return jsonify(ApiError(error.code or 400, error.description or error.name, kind=kind).body()), error.code

    @app.get("/health")
    def health():
        return jsonify({"status": "ok", "model": model_name, "queued": batcher.queue.qsize(),
                        "batches": len(batcher.batches), "largest_batch": max(batcher.batches, default=0)})

    @app.get("/v1/models")
    def models():
        return jsonify({"object": "list", "data": [{"id": model_name, "object": "model", "created": created,
                                                     "owned_by": "babyvlm"}]})

    @app.post("/v1/chat/completions")
    def chat_completions():
        body = request.get_json(silent=True)
        if body is None:
            raise ApiError(400, "the request body must be JSON (Content-Type: application/json)")
        job = parse_chat_request(body, max_tokens_limit)
        if body.get("model") not in (None, model_name):
            raise ApiError(404, f"model {body.get('model')!r} is not served here; this server serves "
                                f"{model_name!r}", param="model", kind="not_found_error", code="model_not_found")
        try:  # the prompt is built here, so a conversation the model refuses never joins a batch
            prompt_tokens = len(model.prompt_ids({"conversations": job.conversations})) + \
                len(job.images) * (int(model.tokens_per_image) - 1)
        except BabyVLMError as exc:
            raise ApiError(400, str(exc), param="messages") from None
        try:
            ids = batcher.submit(job, request_timeout_s)
        except QueueFull as exc:
            raise ApiError(429, f"server busy: {exc}; retry later", kind="rate_limit_error") from None
        except TimeoutError as exc:
            raise ApiError(504, f"generation timed out: {exc}", kind="server_error") from None
        except BabyVLMError as exc:  # the model refused the input (e.g. too long, image count mismatch)
            raise ApiError(400, str(exc)) from None
        except Exception as exc:
            raise ApiError(500, f"generation failed: {type(exc).__name__}: {exc}", kind="server_error") from None
        text, stopped = cut_at_stop(model.tokenizer.decode(ids), job.stop)
        finish = "length" if len(ids) >= job.max_tokens and not stopped else "stop"
        return jsonify({
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(ids),
                      "total_tokens": prompt_tokens + len(ids)},
        })

    return app
