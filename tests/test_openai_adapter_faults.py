"""The `openai` adapter against a tiny fake endpoint on 127.0.0.1: a burst of 429s is retried with backoff
and then succeeds; one that outlasts the retries, an unreachable endpoint, auth failures and malformed
responses end with a clear EndpointError and a resumable cache, never a crash or a hang."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from babyvlm.core.errors import BabyVLMError, ConfigError
from babyvlm.core.records import Request
from babyvlm.plugins.openai_adapter.adapter import EndpointError, OpenAIAdapter, RateLimiter


class FakeEndpoint:
    """Answers each POST with the next scripted (status, body) and records the request bodies."""

    def __init__(self):
        self.script: list[tuple[int, object]] = []
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                endpoint.bodies.append(json.loads(self.rfile.read(length)))
                endpoint.headers.append(dict(self.headers))
                status, body = endpoint.script.pop(0) if endpoint.script else (200, reply("default"))
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def reply(text: str) -> dict:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


@pytest.fixture
def endpoint():
    fake = FakeEndpoint()
    yield fake
    fake.close()


def adapter_for(url, tmp_path, **options):
    sleeps: list[float] = []
    adapter = OpenAIAdapter(model="fake-model", base_url=url, cache_dir=tmp_path / "cache", seed=0,
                            sleep=sleeps.append, **options)
    return adapter, sleeps


def items(count: int) -> list[Request]:
    return [Request(kind="generate", item_id=f"i{n}", task="baby_t", images=[b"\xff\xd8jpeg-bytes"],
                    conversations=[{"from": "human", "value": f"<image>\nQuestion {n}? (A) x (B) y"}])
            for n in range(count)]


def test_a_burst_of_429s_is_retried_with_growing_jittered_backoff(endpoint, tmp_path):
    endpoint.script = [(429, {"error": {"message": "slow down"}})] * 3 + [(200, reply("B"))]
    adapter, sleeps = adapter_for(endpoint.url, tmp_path, max_retries=4, backoff_s=1.0)
    assert adapter.generate_until(items(1)) == ["B"]
    assert len(sleeps) == 3 and adapter.stats["retries"] == 3
    for attempt, delay in enumerate(sleeps):  # equal jitter: in [b/2, b] with b = 2^attempt
        assert 2 ** attempt / 2 <= delay <= 2 ** attempt
    sent = endpoint.bodies[-1]
    assert sent["model"] == "fake-model" and sent["temperature"] == 0.0
    parts = sent["messages"][0]["content"]
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert parts[1] == {"type": "text", "text": "\nQuestion 0? (A) x (B) y"}


def test_429s_outlasting_the_retries_leave_a_resumable_cache(endpoint, tmp_path):
    endpoint.script = [(200, reply("A")), (200, reply("B"))] + [(429, {"error": {"message": "quota"}})] * 3
    adapter, _ = adapter_for(endpoint.url, tmp_path, max_retries=2)
    with pytest.raises(EndpointError, match=r"gave up on baby_t item i2 after 3 tries, last: HTTP 429: quota; "
                                            r"2 answers are cached .* rerun the same command to resume"):
        adapter.generate_until(items(4))
    endpoint.script = [(200, reply("C")), (200, reply("D"))]
    rerun, _ = adapter_for(endpoint.url, tmp_path, max_retries=2)
    assert rerun.generate_until(items(4)) == ["A", "B", "C", "D"]
    assert rerun.stats["cached"] == 2 and rerun.stats["requests"] == 2  # nothing is paid twice


def test_an_unreachable_endpoint_is_a_clear_error(tmp_path):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter, sleeps = adapter_for(f"http://127.0.0.1:{port}/v1", tmp_path, max_retries=2)
    with pytest.raises(EndpointError, match=r"after 3 tries, last: unreachable .*0 answers are cached"):
        adapter.generate_until(items(1))
    assert len(sleeps) == 2


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_not_retried(endpoint, tmp_path, monkeypatch, status):
    monkeypatch.setenv("FAKE_KEY", "sk-test")
    endpoint.script = [(status, {"error": {"message": "bad key"}})]
    adapter, sleeps = adapter_for(endpoint.url, tmp_path, api_key_env="FAKE_KEY")
    with pytest.raises(EndpointError, match=rf"authentication failed \(HTTP {status}: bad key\)"):
        adapter.generate_until(items(1))
    assert sleeps == [] and endpoint.headers[0]["Authorization"] == "Bearer sk-test"


@pytest.mark.parametrize("body, message", [
    ({"choices": []}, "malformed chat completion"),
    ({"choices": [{"message": {"content": ["x"]}}]}, "not text"),
    (b"<html>oops</html>", "not JSON"),
])
def test_malformed_responses_are_clear_errors(endpoint, tmp_path, body, message):
    endpoint.script = [(200, body)]
    adapter, _ = adapter_for(endpoint.url, tmp_path)
    with pytest.raises(EndpointError, match=message):
        adapter.generate_until(items(1))
    assert not list((tmp_path / "cache").glob("*/*.json"))  # nothing wrong is cached


def test_bad_settings_and_loglikelihood_are_config_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    with pytest.raises(ConfigError, match="NO_SUCH_KEY"):
        OpenAIAdapter(model="m", base_url="http://127.0.0.1:1/v1", api_key_env="NO_SUCH_KEY")
    with pytest.raises(ConfigError, match="base_url"):
        OpenAIAdapter(model="m", base_url="127.0.0.1:1")
    adapter = OpenAIAdapter(model="m", base_url="http://127.0.0.1:1/v1", cache_dir=None)
    with pytest.raises(BabyVLMError, match="--mode generate"):
        adapter.loglikelihood([Request(kind="choice", item_id="x", task="t", images=[], continuations=["A"])])
    assert adapter.fingerprint() != OpenAIAdapter(model="m2", base_url="http://127.0.0.1:1/v1").fingerprint()


def test_multi_round_accumulates_images_and_answers_and_a_system_prompt_leads(endpoint, tmp_path):
    endpoint.script = [(200, reply("A")), (200, reply("B"))]
    adapter, _ = adapter_for(endpoint.url, tmp_path, system_prompt="Answer with a letter.")
    request = Request(kind="multi_round", item_id="m", task="baby_memory", images=[b"1", b"2", b"3"],
                      rounds=["(A) <image>", "(A) <image> (B) <image>"])
    assert adapter.generate_until_multi_round([request]) == [["A", "B"]]
    second = endpoint.bodies[1]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[2]["content"] == "A"
    assert sum(part["type"] == "image_url" for m in second[1::2] if isinstance(m["content"], list)
               for part in m["content"]) == 1 + 2


def test_rate_limiter_spaces_request_starts():
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(per_minute=120, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.wait()
    assert slept == [0.5, 0.5]


def test_babyvlm_eval_through_the_adapter_stops_clearly_on_429s_and_resumes(endpoint, fresh_registry, tmp_path):
    """The CLI end to end: answers come back for some items, then a burst of 429s outlasts the retries;
    the run ends with one clear line (no traceback), and a rerun pays only for what was missing."""
    from click.testing import CliRunner
    from test_study_support import ensure_devcv, write_task_folder

    from babyvlm.cli import cli

    ensure_devcv()
    if "openai" not in fresh_registry.names("eval_adapter"):
        import babyvlm.plugins.openai_adapter as plugin

        fresh_registry.register_plugin(plugin, "openai_adapter_for_tests")
    data = tmp_path / "data"
    write_task_folder(data / "saycam")
    args = ["eval", "--model", "openai", "--tasks", "baby_pv,baby_count", "--data", str(data), "--out",
            str(tmp_path / "out"), "--flush-every", "1", "--model-opt", "model=fake-model",
            "--model-opt", f"base_url={endpoint.url}", "--model-opt", f"cache_dir={tmp_path / 'cache'}",
            "--model-opt", "max_retries=1", "--model-opt", "backoff_s=0"]
    endpoint.script = [(200, reply("A")), (200, reply("(B)"))] + [(429, {"error": {"message": "quota"}})] * 2
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 1 and "Traceback" not in first.output
    assert "HTTP 429: quota" in first.output and "rerun the same command to resume" in first.output
    asked = len(endpoint.bodies)
    endpoint.script = []  # the endpoint answers "default" from now on
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert "chance" in second.output and "baby_count" in second.output
    assert len(endpoint.bodies) - asked == 6 - 2  # 3 pv + 3 count items; the two answered are not asked again
