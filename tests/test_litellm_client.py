"""The litellm client against a real OpenAI-compatible server on 127.0.0.1.

The server replies from a per-test script and records every request, so the
tests see exactly what litellm sent and how many times it tried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
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
from govern.models.providers import PLACEHOLDER_KEY, unknown_provider
from govern.models.router import ModelRouter
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
    headers: list[dict[str, str]] = field(default_factory=list)  # lower-case names
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def bodies(self) -> list[dict]:
        return [json.loads(raw) for raw in self.raw]

    def next_reply(self, path: str, raw: bytes, headers: dict[str, str]) -> Reply:
        with self.lock:
            self.paths.append(path)
            self.raw.append(raw)
            self.headers.append(headers)
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
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.fake.next_reply(self.path, raw, headers)
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
    assert err.reason == "timed out (0.5 s per attempt)"


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
    """Without an api_base the provider's own service is meant: its key is required, and the
    SDK refuses before anything is sent (nothing reaches the network)."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    err = fail(client(server, api_key=None, api_base=None), request())
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


@pytest.mark.parametrize(
    ("model", "needs"),
    [
        ("gpt-4o-mini", ["OPENAI_API_KEY"]),
        ("o3-mini", ["OPENAI_API_KEY"]),
        ("claude-sonnet-4-5", ["ANTHROPIC_API_KEY"]),
        ("anthropic/claude-x", ["ANTHROPIC_API_KEY"]),
        ("gemini/gemini-1.5-pro", ["GEMINI_API_KEY or GOOGLE_API_KEY"]),
        ("mistral/mistral-large", ["MISTRAL_API_KEY"]),
        ("groq/llama3", ["GROQ_API_KEY"]),
        ("deepseek/deepseek-chat", ["DEEPSEEK_API_KEY"]),
        ("openrouter/openai/gpt-4o", ["OPENROUTER_API_KEY or OR_API_KEY"]),
        (
            "azure/my-deployment",
            [
                "AZURE_API_KEY or AZURE_OPENAI_API_KEY or AZURE_AD_TOKEN",
                "AZURE_API_BASE or AZURE_OPENAI_ENDPOINT",
            ],
        ),
        ("ollama_chat/llama3.1", []),  # a local server: nothing definite
        ("bedrock/anthropic.claude-3", []),  # credentials may come from a profile
        ("nosuchprovider/x", []),
        ("llama3", []),
    ],
)
def test_the_credential_table(
    model: str, needs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in {n for need in needs for n in need.split(" or ")} | {"OPENAI_API_KEY"}:
        monkeypatch.delenv(name, raising=False)
    assert missing_credentials(model) == needs


def test_any_one_alternative_will_do_and_an_api_base_stands_for_a_base(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "g")
    assert missing_credentials("gemini/gemini-1.5-pro") == []
    monkeypatch.setenv("AZURE_API_KEY", "a")
    assert missing_credentials("azure/d", api_base="https://x.openai.azure.com") == []
    # a server of one's own needs no key (govern sends a placeholder where the SDK wants one)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert missing_credentials("openai/x", api_base="http://127.0.0.1:1/v1") == []
    assert missing_credentials("anthropic/x", api_base="http://127.0.0.1:1") == []


def test_a_local_openai_compatible_server_gets_a_placeholder_key_when_none_is_set(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    response = complete(client(server, api_key=None), request(model="openai/test-model"))
    assert response.text == "42"
    assert server.headers[0]["authorization"] == f"Bearer {PLACEHOLDER_KEY}"
    monkeypatch.setenv("OPENAI_API_KEY", "real-key")
    complete(client(server, api_key=None), request(model="openai/test-model"))
    assert server.headers[1]["authorization"] == "Bearer real-key"


PROBLEMS_TIMING = """
import sys, time
started = time.perf_counter()
from govern.models.router import ModelRouter
found = ModelRouter().problems(["openai/gpt-4o-mini", "nosuchprovider/x"])
elapsed = time.perf_counter() - started
assert "litellm" not in sys.modules, "litellm was imported"
assert any("OPENAI_API_KEY" in p for p in found), found
assert any("nosuchprovider" in p for p in found), found
print(elapsed)
"""


def test_problems_are_found_without_importing_litellm_and_at_once() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    done = subprocess.run(
        [sys.executable, "-c", PROBLEMS_TIMING],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 1.0  # importing litellm alone takes seconds


def test_an_unknown_provider_is_a_problem_before_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    router = ModelRouter(api_base="http://127.0.0.1:9/v1")
    (problem,) = router.problems(["nosuchprovider/x", "openai/x", "hosted_vllm/x"])
    assert "litellm knows no provider 'nosuchprovider'" in problem
    assert ModelRouter(api_key="k").problems(["groq/llama3", "together_ai/meta/x", "llama3"]) == []


# names litellm places (a provider, a listed model, a routing rule, a known host) and names
# it refuses; the check that reads litellm's files must agree with litellm itself
PLACED = [
    ("openai/x", None),
    ("anthropic/claude-x", None),
    ("hosted_vllm/x", None),
    ("ollama_chat/llama3.1", None),
    ("together_ai/meta-llama/x", None),
    ("openrouter/openai/gpt-4o", None),
    ("publicai/x", None),  # a provider litellm defines in JSON, not in its enum
    ("meta-llama/Llama-3-8b", "https://api.together.xyz/v1"),  # placed by its api_base
]
REFUSED = [
    ("nosuchprovider/x", None),
    ("nosuchprovider/x", "http://127.0.0.1:8000/v1"),
    ("meta-llama/Llama-3-8b", None),
    ("OpenAI/gpt-4o", None),
]


def test_unknown_provider_agrees_with_litellm() -> None:
    from govern.models.litellm_client import _litellm

    get_llm_provider = _litellm().get_llm_provider
    for model, api_base in PLACED:
        get_llm_provider(model, api_base=api_base)  # litellm places it
        assert unknown_provider(model, api_base=api_base) is None, model
    for model, api_base in REFUSED:
        with pytest.raises(Exception, match="LLM Provider NOT provided"):
            get_llm_provider(model, api_base=api_base)
        assert unknown_provider(model, api_base=api_base) == model.split("/")[0], model
    assert unknown_provider("llama3") is None  # bare names: litellm's own business


def test_an_unknown_provider_fails_each_call_with_a_clear_reason() -> None:
    err = fail(LiteLLMClient(api_key="k", sleep=Sleeps()), request(model="nosuchprovider/x"))
    assert err.attempts == 1 and not err.retryable
    assert err.reason.startswith("unknown provider 'nosuchprovider'")


def test_importing_the_client_does_not_import_litellm() -> None:
    code = (
        "import sys, govern.models.litellm_client\n"
        "assert 'litellm' not in sys.modules, 'litellm imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
