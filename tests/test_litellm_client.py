"""The litellm client against a real OpenAI-compatible server on 127.0.0.1.

The server replies from a per-test script and records every request, so the
tests see exactly what litellm sent and how many times it tried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from govern.models.base import ModelError, ModelRequest, ModelResponse, Oracle
from govern.models.litellm_client import LiteLLMClient, missing_credentials
from tests.conftest import ROOT

MODEL = "openai/test-model"  # unknown to litellm's price list
GOLD = "GOLD-ANSWER-7f3a9c"
CANDIDATE = "CANDIDATE-UNDER-REVIEW-41be"
MESSAGES = [
    {"role": "system", "content": "You are a careful clerk. Answer with a number."},
    {"role": "user", "content": "What is 6 × 7?\nShow no working."},
]
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: dict | None = None
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0  # seconds before answering, to outlast the client's timeout


def completion(text: str = "42", model: str = "test-model") -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }


def error(message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


OK = Reply(body=completion())
RATE_LIMITED = Reply(
    429, error("Rate limit reached", "rate_limit_exceeded"), headers=(("Retry-After", "3"),)
)
SERVER_ERROR = Reply(500, error("The server had an error", "server_error"))
UNAUTHORIZED = Reply(401, error("Incorrect API key provided", "invalid_request_error"))
BAD_REQUEST = Reply(400, error("max_tokens is too large", "invalid_request_error"))
SLOW = Reply(body=completion(), delay=3.0)


@dataclass
class FakeServer:
    url: str = ""
    script: list[Reply] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def bodies(self) -> list[dict]:
        return [json.loads(raw) for raw in self.raw]

    def next_reply(self, path: str, raw: bytes) -> Reply:
        with self.lock:
            self.paths.append(path)
            self.raw.append(raw)
            return self.script.pop(0) if self.script else OK


class _Server(ThreadingHTTPServer):
    fake: FakeServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output clean."""

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path not in ("/v1/chat/completions", "/chat/completions"):
            self._send(Reply(404, error(f"no route {self.path}", "not_found")))
            return
        reply = self.server.fake.next_reply(self.path, raw)
        if reply.delay and self.server.fake.stop.wait(reply.delay):
            return  # the test is over
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._send(reply)  # fails only if the client gave up waiting, as it should

    def _send(self, reply: Reply) -> None:
        payload = json.dumps(reply.body or {}).encode()
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.fake = FakeServer(url=f"http://127.0.0.1:{httpd.server_address[1]}/v1")
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd.fake
    httpd.fake.stop.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


class Sleeps:
    """A no-op ``sleep`` that remembers the delays it was asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def client(server: FakeServer, sleeps: Sleeps | None = None, **options: object) -> LiteLLMClient:
    settings: dict = {
        "api_base": server.url,
        "api_key": "test-key",
        "timeout": 1.0,
        "sleep": sleeps or Sleeps(),
    }
    return LiteLLMClient(**(settings | options))


def request(
    model: str = MODEL, seed: int | None = 7, max_tokens: int | None = None
) -> ModelRequest:
    oracle = Oracle(
        item_id="item-1",
        gold=GOLD,
        act="review",
        stage="check",
        agent="checker",
        visit=1,
        candidate=CANDIDATE,
        inputs=(CANDIDATE,),
    )
    return ModelRequest(
        model=model, messages=MESSAGES, oracle=oracle, seed=seed, max_tokens=max_tokens
    )


def complete(model_client: LiteLLMClient, model_request: ModelRequest) -> ModelResponse:
    return asyncio.run(model_client.complete(model_request))


def fail(model_client: LiteLLMClient, model_request: ModelRequest) -> ModelError:
    with pytest.raises(ModelError) as caught:
        complete(model_client, model_request)
    return caught.value


def test_prompts_arrive_unchanged_and_the_oracle_never_leaves(server: FakeServer) -> None:
    complete(client(server), request())
    (body,) = server.bodies
    assert body["messages"] == MESSAGES
    assert body["model"] == "test-model"
    assert server.paths == ["/v1/chat/completions"]
    for raw in server.raw:
        text = raw.decode()
        assert GOLD not in text and CANDIDATE not in text
        assert "item-1" not in text and "oracle" not in text


def test_seed_and_max_tokens_pass_through_only_when_set(server: FakeServer) -> None:
    complete(client(server), request(seed=1234, max_tokens=50))
    complete(client(server), request(seed=None))
    first, second = server.bodies
    assert first["seed"] == 1234 and first["max_tokens"] == 50
    assert "seed" not in second and "max_tokens" not in second


def test_tokens_and_attempts_come_from_the_reply(server: FakeServer) -> None:
    response = complete(client(server), request())
    assert response.text == "42"
    assert response.model == MODEL
    assert (response.prompt_tokens, response.completion_tokens) == (11, 7)
    assert response.attempts == 1 and not response.simulated
    assert response.latency > 0


def test_unknown_price_gives_no_cost_rather_than_a_crash(server: FakeServer) -> None:
    assert complete(client(server), request()).cost is None


def test_known_price_gives_a_cost(server: FakeServer) -> None:
    server.script = [Reply(body=completion(model="gpt-4o-mini"))]
    response = complete(client(server), request(model="openai/gpt-4o-mini"))
    assert response.cost == pytest.approx(11 * 0.15e-6 + 7 * 0.6e-6)


def test_rate_limit_is_retried_after_the_servers_retry_after(server: FakeServer) -> None:
    server.script = [RATE_LIMITED, OK]
    sleeps = Sleeps()
    response = complete(client(server, sleeps), request())
    assert response.attempts == 2
    assert len(server.raw) == 2
    assert sleeps.delays == [3.0]


def test_server_error_is_retried_with_backoff(server: FakeServer) -> None:
    server.script = [SERVER_ERROR, OK]
    sleeps = Sleeps()
    response = complete(client(server, sleeps, backoff_base=0.4), request())
    assert response.attempts == 2
    assert len(server.raw) == 2
    assert len(sleeps.delays) == 1 and 0.2 <= sleeps.delays[0] <= 0.4


def test_persistent_server_errors_give_up_after_max_retries(server: FakeServer) -> None:
    server.script = [SERVER_ERROR] * 10
    sleeps = Sleeps()
    err = fail(client(server, sleeps, max_retries=3, backoff_base=1.0, backoff_max=3.0), request())
    assert len(server.raw) == 4
    assert err.attempts == 4 and err.retryable
    assert err.reason == "server error (HTTP 500)"
    assert "Traceback" not in str(err)
    bounds = [(0.5, 1.0), (1.0, 2.0), (1.5, 3.0)]  # doubling, then capped at backoff_max
    for delay, (low, high) in zip(sleeps.delays, bounds, strict=True):
        assert low <= delay <= high


def test_a_reply_slower_than_the_timeout_is_retried_then_fails(server: FakeServer) -> None:
    server.script = [SLOW, SLOW]
    err = fail(client(server, timeout=0.5, max_retries=1), request())
    assert len(server.raw) == 2
    assert err.attempts == 2 and err.retryable
    assert err.reason == "timed out after 0.5 s"


def test_unauthorized_is_not_retried(server: FakeServer) -> None:
    server.script = [UNAUTHORIZED, OK]
    sleeps = Sleeps()
    err = fail(client(server, sleeps), request())
    assert len(server.raw) == 1 and not sleeps.delays
    assert err.attempts == 1 and not err.retryable
    assert err.reason.startswith("authentication failed (HTTP 401)")


def test_bad_request_is_not_retried_and_keeps_the_providers_words(server: FakeServer) -> None:
    server.script = [BAD_REQUEST, OK]
    err = fail(client(server), request())
    assert len(server.raw) == 1 and err.attempts == 1
    assert err.reason == "request rejected (HTTP 400): max_tokens is too large"


def test_missing_key_names_the_variable_without_sending(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    err = fail(client(server, api_key=None), request())
    assert not server.raw and err.attempts == 1 and not err.retryable
    assert "OPENAI_API_KEY" in err.reason


def test_refused_connection_is_retried_as_a_connection_error() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and now refuses
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()
    err = fail(
        LiteLLMClient(
            api_base=f"http://127.0.0.1:{port}/v1",
            api_key="test-key",
            timeout=1.0,
            max_retries=1,
            sleep=sleeps,
        ),
        request(),
    )
    assert err.attempts == 2 and err.retryable and len(sleeps.delays) == 1
    assert err.reason.startswith("connection failed")


def test_missing_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert missing_credentials("openai/gpt-4o-mini") == ["OPENAI_API_KEY"]
    assert missing_credentials("openai/gpt-4o-mini", api_key="sk-test") == []
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert missing_credentials("openai/gpt-4o-mini") == []
    assert missing_credentials("no-such-provider-model") == []


def test_importing_the_client_does_not_import_litellm() -> None:
    code = (
        "import sys, govern.models.litellm_client\n"
        "assert 'litellm' not in sys.modules, 'litellm imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
