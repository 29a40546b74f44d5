"""Evaluation adapter ``openai``: DevCV ``Request``s answered by an OpenAI-compatible chat endpoint.

- ``generate_until`` / ``generate_until_multi_round`` post ``/chat/completions`` (multi-round: the
  rounds' images and the endpoint's own answers accumulate in the conversation, as the leaderboard does);
- every answer is cached on disk (one JSON file per request, keyed by the request body and model, written
  atomically), so an interrupted or failed run resumes without paying twice;
- 429 and 5xx answers and connection failures are retried with exponential backoff and jitter (a
  ``Retry-After`` header is honoured, bounded); a client-side rate limit spaces requests;
- 401/403, an unreachable endpoint, exhausted retries and malformed responses raise ``EndpointError``
  (a ``BabyVLMError``) saying what happened and how many answers are cached;
- ``loglikelihood`` is not available through chat APIs: it raises, pointing at ``--mode generate``.

The released BabyLLaVA-V2 evaluation uses no system prompt (template ``baby_v1``), so none is sent by
default; ``system_prompt`` adds one (e.g. the prompt a paper used for GPT-4o).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from babyvlm.core.errors import BabyVLMError, ConfigError
from babyvlm.core.io import atomic_write_json
from babyvlm.core.records import Request
from babyvlm.plugins.openai_adapter.messages import prompt_turns, turn_messages

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0


class EndpointError(BabyVLMError):
    """The endpoint refused, failed or answered something that is not a chat completion."""


class RateLimiter:
    """At most ``per_minute`` request starts per minute (None: unlimited), spaced evenly."""

    def __init__(self, per_minute: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.clock, self.sleep = clock, sleep
        self.next_start = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = self.clock()
            if now < self.next_start:
                self.sleep(self.next_start - now)
                now = self.next_start
            self.next_start = now + self.interval


class OpenAIAdapter:
    """An OpenAI-compatible endpoint as an ``EvalAdapter``; see the module docstring."""

    name = "openai"

    def __init__(self, model: str, base_url: str = "https://api.openai.com/v1", api_key_env: str | None = None,
                 system_prompt: str | None = None, temperature: float = 0.0, max_tokens: int | None = None,
                 cache_dir: str | os.PathLike | None = "openai_cache", timeout_s: float = 60.0,
                 max_retries: int = 5, backoff_s: float = 1.0, max_backoff_s: float = 30.0,
                 requests_per_minute: float | None = None, seed: int | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        if not model or not isinstance(model, str):
            raise ConfigError("adapter 'openai': 'model' (the endpoint's model name) is required")
        if not str(base_url).startswith(("http://", "https://")):
            raise ConfigError(f"adapter 'openai': base_url must start with http:// or https://, got {base_url!r}")
        if max_retries < 0 or backoff_s < 0 or timeout_s <= 0:
            raise ConfigError("adapter 'openai': max_retries and backoff_s must be >= 0 and timeout_s > 0")
        self.model, self.base_url = model, str(base_url).rstrip("/")
        self.api_key = self._api_key(api_key_env)
        self.system_prompt, self.temperature, self.max_tokens, self.seed = system_prompt, temperature, max_tokens, seed
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.sleep = sleep
        self.limiter = RateLimiter(requests_per_minute, sleep=sleep)
        self.jitter = random.Random(seed)
        self.stats = {"requests": 0, "cached": 0, "retries": 0}
        self.opener = _opener(self.base_url)

    @staticmethod
    def _api_key(env_name: str | None) -> str | None:
        if env_name is None:
            return None
        key = os.environ.get(env_name)
        if not key:
            raise ConfigError(f"adapter 'openai': the API key variable {env_name} (api_key_env) is not set")
        return key

    # ---- the EvalAdapter contract ------------------------------------------------------------------
    def fingerprint(self) -> str:
        settings = dict(base_url=self.base_url, model=self.model, system_prompt=self.system_prompt,
                        temperature=self.temperature, max_tokens=self.max_tokens, seed=self.seed)
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        return f"openai:{self.model}@{self.base_url}:{digest}"

    def generate_until(self, requests: Sequence[Request]) -> list[str]:
        answers = []
        for request in requests:
            where = f"{request.task} item {request.item_id}"
            images = iter(request.images)
            messages = self._system() + turn_messages(prompt_turns(request.conversations), images, where)
            answers.append(self.complete(messages, request.max_new_tokens, where))
        return answers

    def generate_until_multi_round(self, requests: Sequence[Request]) -> list[list[str]]:
        results = []
        for request in requests:
            where = f"{request.task} item {request.item_id}"
            images = iter(request.images)
            messages = self._system() + turn_messages(prompt_turns(request.conversations), images, where)
            answers = []
            for number, text in enumerate(request.rounds):
                messages += turn_messages([{"from": "human", "value": text}], images, f"{where} round {number}")
                answer = self.complete(messages, request.max_new_tokens, f"{where} round {number}")
                answers.append(answer)
                messages.append({"role": "assistant", "content": answer})
            results.append(answers)
        return results

    def loglikelihood(self, requests: Sequence[Request]) -> list[list[tuple[float, bool]]]:
        raise ConfigError("adapter 'openai': log-likelihood scoring is not available through chat-completion "
                          "APIs (they return no loss for a given continuation); evaluate with --mode generate")

    # ---- one chat completion, cached and retried ---------------------------------------------------
    def _system(self) -> list[dict[str, Any]]:
        return [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []

    def request_body(self, messages: list[dict[str, Any]], max_new_tokens: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature,
                                "max_tokens": self.max_tokens or max_new_tokens}
        if self.seed is not None:
            body["seed"] = self.seed
        return body

    def complete(self, messages: list[dict[str, Any]], max_new_tokens: int, where: str) -> str:
        body = self.request_body(messages, max_new_tokens)
        cache_file = self._cache_file(body)
        if cache_file is not None and cache_file.is_file():
            cached = self._read_cache(cache_file)
            if cached is not None:
                self.stats["cached"] += 1
                return cached
        answer = self._answer_text(self._post_with_retries(body, where), where)
        if cache_file is not None:
            atomic_write_json(cache_file, {"model": self.model, "answer": answer, "request_sha256": cache_file.stem})
        return answer

    def _cache_file(self, body: dict[str, Any]) -> Path | None:
        if self.cache_dir is None:
            return None
        key = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.json"

    @staticmethod
    def _read_cache(path: Path) -> str | None:
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # a damaged entry is asked again and rewritten, never trusted
        answer = entry.get("answer") if isinstance(entry, dict) else None
        return answer if isinstance(answer, str) else None

    def _cached_count(self) -> int:
        return sum(1 for _ in self.cache_dir.glob("*/*.json")) if self.cache_dir and self.cache_dir.is_dir() else 0

    def _resume_note(self) -> str:
        if self.cache_dir is None:
            return "no request cache is configured (cache_dir=None), so a rerun asks every request again"
        return (f"{self._cached_count()} answers are cached in {self.cache_dir}; rerun the same command to "
                f"resume without asking them again")

    def _post_with_retries(self, body: dict[str, Any], where: str) -> Any:
        url = f"{self.base_url}/chat/completions"
        last = ""
        for attempt in range(self.max_retries + 1):  # bounded: max_retries + 1 tries in all
            if attempt:
                self.stats["retries"] += 1
            self.limiter.wait()
            self.stats["requests"] += 1
            try:
                return self._post(url, body)
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc)
                if exc.code in (401, 403):
                    raise EndpointError(f"{url}: authentication failed (HTTP {exc.code}: {detail}); check the "
                                        f"API key variable named by api_key_env") from None
                if exc.code not in RETRY_STATUSES:
                    raise EndpointError(f"{url} refused the request for {where} (HTTP {exc.code}: {detail})") from None
                last = f"HTTP {exc.code}: {detail}"
                retry_after = _retry_after(exc)
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"unreachable ({reason})"
                retry_after = None
            if attempt < self.max_retries:
                self.sleep(self._backoff(attempt, retry_after))
        raise EndpointError(f"{url}: gave up on {where} after {self.max_retries + 1} tries, last: {last}; "
                            f"{self._resume_note()}")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
        delay = delay / 2 + self.jitter.uniform(0, delay / 2)  # "equal jitter": never zero, never in lockstep
        return max(delay, min(retry_after, MAX_RETRY_AFTER_S)) if retry_after else delay

    def _post(self, url: str, body: dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
        with self.opener.open(request, timeout=self.timeout_s) as response:
            raw = response.read()
        try:
            return json.loads(raw)
        except ValueError:
            raise EndpointError(f"{url}: the response is not JSON ({raw[:120]!r})") from None

    def _answer_text(self, response: Any, where: str) -> str:
        try:
            content = response["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise EndpointError(f"{self.base_url}: malformed chat completion for {where} (no "
                                f"choices[0].message.content): {json.dumps(response)[:200]}") from None
        if content is None:
            return ""
        if not isinstance(content, str):
            raise EndpointError(f"{self.base_url}: choices[0].message.content for {where} is "
                                f"{type(content).__name__}, not text")
        return content


def _opener(base_url: str) -> urllib.request.OpenerDirector:
    """urllib's opener; a loopback endpoint (``babyvlm serve``) is never sent through an HTTP proxy."""
    host = urllib.parse.urlsplit(base_url).hostname or ""
    if host in ("localhost", "::1") or host.startswith("127."):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
    except (ValueError, AttributeError, OSError):
        message = None
    return str(message or exc.reason)


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    value = exc.headers.get("Retry-After") if exc.headers else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
