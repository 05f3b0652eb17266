"""A fault-injecting OpenAI-compatible model server on 127.0.0.1, for tests.

A real HTTP server in a thread that answers ``POST /v1/chat/completions`` in one
of several ways, chosen per request:

==============  ================================================================
mode            reply
==============  ================================================================
ok              a valid completion whose text ends with ``#### <answer>``
latency         the same, after ``latency`` seconds
rate_limit      429 with ``Retry-After: <retry_after>``
server_error    500 with an OpenAI-style error body
unavailable     503 with an OpenAI-style error body
reset           the connection is reset (RST) before any reply
cut             200 with a full Content-Length, then half the JSON and a close
garbage         200, ``application/json``, a body that is not JSON
empty_choices   200, a completion with ``choices: []``
null_content    200, a completion whose message content is ``null`` (``null_finish``)
html            200, ``text/html``: a proxy's error page
drip            200 headers, then one byte every ``drip_interval`` seconds
unauthorized    401, as for a wrong API key (not part of ``mixed``)
mixed           one of the above, picked from the request number and ``seed``
==============  ================================================================

``script`` replies are used first, one per request, then ``mode``. Every request
is counted (``requests``) with the mode it was given (``served``), so a test can
bound the retries a client made. ``answer`` decides what an ``ok`` reply says:
by default the number after ``####`` in the question's text, if any, so a run
on generated items scores them correct.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = (
    "ok",
    "latency",
    "rate_limit",
    "server_error",
    "unavailable",
    "reset",
    "cut",
    "garbage",
    "empty_choices",
    "null_content",
    "html",
    "drip",
    "unauthorized",
)
# mixed: mostly successes, every fault now and then
MIXED_WEIGHTS = {
    "ok": 50,
    "latency": 5,
    "rate_limit": 5,
    "server_error": 5,
    "unavailable": 5,
    "reset": 4,
    "cut": 4,
    "garbage": 4,
    "empty_choices": 4,
    "null_content": 4,
    "html": 4,
    "drip": 2,
}
USAGE = {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28}
HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


def completion(
    text: str | None, model: str = "fault-model", choices: bool = True, finish: str = "stop"
) -> dict:
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": (
            [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ]
            if choices
            else []
        ),
        "usage": USAGE,
    }


def error_body(message: str, kind: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": None}}).encode()


def answer_from_prompt(body: dict) -> str:
    """The gold answer a generated item carries in its question, else 42."""
    text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
    found = re.findall(r"\[answer (\-?\d+)\]", text)
    return f"The answer is {found[-1] if found else 42}.\n#### {found[-1] if found else 42}"


class FaultServer:
    """Start with ``with FaultServer("mixed") as server:``; ``server.url`` is the api_base."""

    def __init__(
        self,
        mode: str = "ok",
        *,
        seed: int = 0,
        script: list[str] | None = None,
        latency: float = 0.2,
        retry_after: int = 1,
        drip_interval: float = 0.2,
        null_finish: str = "stop",
        answer: Callable[[dict], str] = answer_from_prompt,
        weights: dict[str, int] | None = None,
    ) -> None:
        assert mode in (*MODES, "mixed"), mode
        self.mode = mode
        self.seed = seed
        self.script = list(script or [])
        self.latency = latency
        self.retry_after = retry_after
        self.drip_interval = drip_interval
        self.null_finish = null_finish
        self.answer = answer
        self.weights = weights or MIXED_WEIGHTS
        self.requests = 0
        self.served: Counter[str] = Counter()
        self.bodies: list[dict] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.url = ""
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def pick(self, number: int) -> str:
        """The mode for the ``number``-th request (from 0): the script, then the mode."""
        if number < len(self.script):
            return self.script[number]
        if self.mode != "mixed":
            return self.mode
        names = sorted(self.weights)
        return random.Random(f"{self.seed}:{number}").choices(
            names, weights=[self.weights[n] for n in names]
        )[0]

    def take(self, body: dict) -> str:
        with self.lock:
            mode = self.pick(self.requests)
            self.requests += 1
            self.served[mode] += 1
            self.bodies.append(body)
            return mode

    def __enter__(self) -> FaultServer:
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.fault = self
        self._httpd = httpd
        self.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    fault: FaultServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects of a real provider

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output clean."""

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path not in ("/v1/chat/completions", "/chat/completions"):
            self._send(404, error_body(f"no route {self.path}", "not_found"))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        fault = self.server.fault
        mode = fault.take(body)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
            getattr(self, f"_{mode}")(fault, body)

    # --- the replies -----------------------------------------------------------

    def _ok(self, fault: FaultServer, body: dict) -> None:
        reply = completion(fault.answer(body), model=str(body.get("model", "fault-model")))
        self._send(200, json.dumps(reply).encode())

    def _latency(self, fault: FaultServer, body: dict) -> None:
        if not fault.stop.wait(fault.latency):
            self._ok(fault, body)

    def _rate_limit(self, fault: FaultServer, body: dict) -> None:
        payload = error_body("Rate limit reached", "rate_limit_exceeded")
        self._send(429, payload, extra=(("Retry-After", str(fault.retry_after)),))

    def _server_error(self, fault: FaultServer, body: dict) -> None:
        self._send(500, error_body("The server had an error", "server_error"))

    def _unavailable(self, fault: FaultServer, body: dict) -> None:
        self._send(503, error_body("The engine is currently overloaded", "server_error"))

    def _unauthorized(self, fault: FaultServer, body: dict) -> None:
        self._send(401, error_body("Incorrect API key provided", "invalid_request_error"))

    def _reset(self, fault: FaultServer, body: dict) -> None:
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _cut(self, fault: FaultServer, body: dict) -> None:
        payload = json.dumps(completion(fault.answer(body))).encode()
        self._head(200, "application/json", len(payload))
        self.wfile.write(payload[: len(payload) // 2])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _garbage(self, fault: FaultServer, body: dict) -> None:
        self._send(200, b"}{ this is not json ]]")

    def _empty_choices(self, fault: FaultServer, body: dict) -> None:
        self._send(200, json.dumps(completion(None, choices=False)).encode())

    def _null_content(self, fault: FaultServer, body: dict) -> None:
        reply = completion(None, finish=fault.null_finish)
        self._send(200, json.dumps(reply).encode())

    def _html(self, fault: FaultServer, body: dict) -> None:
        self._send(200, HTML, content_type="text/html; charset=utf-8")

    def _drip(self, fault: FaultServer, body: dict) -> None:
        payload = json.dumps(completion(fault.answer(body))).encode()
        self._head(200, "application/json", len(payload))
        for byte in payload:
            if fault.stop.wait(fault.drip_interval):
                break  # the test is over
            self.wfile.write(bytes([byte]))  # raises once the client has hung up
            self.wfile.flush()
        self.close_connection = True

    # --- plumbing --------------------------------------------------------------

    def _head(self, status: int, content_type: str, length: int, extra: Any = ()) -> None:
        self.send_response(status)
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.flush()

    def _send(
        self,
        status: int,
        payload: bytes,
        *,
        content_type: str = "application/json",
        extra: Any = (),
    ) -> None:
        self._head(status, content_type, len(payload), extra)
        self.wfile.write(payload)
        self.wfile.flush()
