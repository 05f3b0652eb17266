"""The README's recipes for local servers (llama.cpp, Ollama, vLLM), run as written with only
the port changed, against a loopback server that speaks the OpenAI-compatible API they
serve under /v1. Not Ollama or vLLM themselves: `make test-real` runs the llama.cpp recipe
against llama.cpp's server; nothing here can run Ollama or vLLM."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from govern.models.providers import PLACEHOLDER_KEY
from tests.conftest import ROOT, TEST_KEYS
from tests.real.llama_server import server_command
from tests.test_litellm_client import FakeServer, server  # noqa: F401 - the fixture

README = (ROOT / "README.md").read_text()
SECTION = README.split("### Local servers: llama.cpp, Ollama, vLLM", 1)[1].split("\n### ", 1)[0]
BLOCKS = re.findall(r"```sh\n(.*?)```", SECTION, flags=re.S)


def command_lines(prefix: str) -> list[list[str]]:
    """The section's command lines starting with ``prefix``, continuations joined, comments
    dropped, as words."""
    lines = [line for block in BLOCKS for line in block.replace("\\\n", " ").splitlines()]
    return [shlex.split(line, comments=True) for line in lines if line.startswith(prefix)]


RECIPES = {
    words[words.index("--api-base") + 1]: words
    for words in command_lines("govern run ")
    if "--api-base" in words
}


def test_the_readme_has_a_recipe_for_each_server() -> None:
    assert sorted(RECIPES) == [
        "http://127.0.0.1:11434/v1",  # Ollama
        "http://127.0.0.1:8000/v1",  # vLLM
        "http://127.0.0.1:8080/v1",  # llama.cpp's server
    ]
    assert command_lines("ollama serve") and command_lines("vllm serve ")


def test_the_readmes_llama_cpp_command_is_the_one_the_real_tests_run() -> None:
    (words,) = command_lines("python -m llama_cpp.server")
    assert words == server_command(Path("python"), Path("<model.gguf>"), 8080)
    assert "openai/smollm2" in RECIPES["http://127.0.0.1:8080/v1"]


@pytest.mark.parametrize("base", sorted(RECIPES), ids=lambda base: base.rsplit(":", 1)[1])
def test_a_readme_recipe_runs_against_an_openai_compatible_server(
    base: str,
    server: FakeServer,  # noqa: F811 - the fixture imported above
    cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    words = RECIPES[base]
    assert words[:2] == ["govern", "run"]
    args = [server.url if w == base else w for w in words]  # the loopback server's port
    assert server.url.startswith("http://127.0.0.1:") and server.url.endswith("/v1")
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    done = cli(*args[1:], "--out", str(tmp_path / "run"), home=tmp_path / "home", **TEST_KEYS)
    assert done.returncode == 0, done.stderr
    served = words[words.index("--model") + 1].removeprefix("openai/")
    assert server.bodies and {b["model"] for b in server.bodies} == {served}
    assert set(server.paths) == {"/v1/chat/completions"}
    assert {h["authorization"] for h in server.headers} == {f"Bearer {PLACEHOLDER_KEY}"}
    records = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").open()]
    assert len(records) == int(words[words.index("--limit") + 1])
    assert sum(r["calls"] for r in records) == len(server.bodies)
