"""Each model's own server and concurrency limit (``models.endpoints``), against real HTTP
servers on the loopback interface."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from govern.models.router import ModelRouter
from govern.run.runner import RunRequest, execute, prepare
from govern.spec.errors import SpecInvalid
from govern.spec.models import Endpoint
from govern.tasks.gsm8k import SAMPLE
from tests.conftest import ROOT, spec_errors, write
from tests.test_litellm_client import (  # the loopback server and its replies
    FakeServer,
    Reply,
    completion,
    server,
)
from tests.test_sampling import SENATE, prepared_against, turns

# The senate with three senators, who give opinions and then vote, each body in parallel.
THREE_SENATORS = SENATE.replace("      seats: 5\n", "      seats: 3\n", 1)
AYE = Reply(body=completion("The motion's arithmetic holds.\nVOTE: yes"))


@pytest.fixture
def other_server() -> Iterator[FakeServer]:
    """A second loopback server, started and stopped by ``server``'s own function."""
    yield from server.__wrapped__()


def with_models(text: str, section: str) -> str:
    """``text`` with ``section`` added to its models mapping."""
    assert text.count("\nmodels:\n") == 1
    return text.replace("\nmodels:\n", f"\nmodels:\n{section}", 1)


def header_config(folder: Path) -> dict:
    return json.loads((folder / "ledger.jsonl").read_text().splitlines()[0])["body"]["config"]


@dataclass
class InFlight:
    """Holds each request to a loopback server ``hold`` seconds before its reply, and counts
    the most requests it held at once."""

    hold: float
    now: int = 0
    most: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def watch(self, loopback: FakeServer) -> InFlight:
        reply = loopback.next_reply

        def held(path: str, raw: bytes, headers: dict[str, str]) -> Reply:
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            time.sleep(self.hold)
            with self.lock:
                self.now -= 1  # before the reply is sent, so a limited client cannot overlap
            return reply(path, raw, headers)

        loopback.next_reply = held
        return self


def test_each_model_is_sent_to_its_own_server_only(
    tmp_path: Path,
    server: FakeServer,
    other_server: FakeServer,
) -> None:
    endpoints = (
        f"  endpoints:\n"
        f"    openai/a: {{api_base: '{server.url}'}}\n"
        f"    openai/b: {{api_base: '{other_server.url}', concurrency: 2}}\n"
    )
    run = prepared_against(
        server,
        tmp_path,
        with_models(THREE_SENATORS, endpoints),
        role_models={"consul": "openai/a", "senator": "openai/b"},
    )
    other_server.script = [AYE] * 20
    asyncio.run(execute(run))
    recorded = turns(tmp_path / "run")
    sent = {"a": server.bodies, "b": other_server.bodies}
    for name, bodies in sent.items():
        assert bodies and {body["model"] for body in bodies} == {name}
        assert len(bodies) == sum(t["model"] == f"openai/{name}" for t in recorded)
    assert header_config(tmp_path / "run")["endpoints"] == {
        "openai/a": {"api_base": server.url},
        "openai/b": {"api_base": other_server.url, "concurrency": 2},
    }


@pytest.mark.parametrize(("limit", "most"), [(None, 3), (1, 1)], ids=["unlimited", "one_slot"])
def test_a_single_slot_endpoint_never_has_two_calls_in_flight(
    tmp_path: Path, server: FakeServer, limit: int | None, most: int
) -> None:
    """Without the limit (the control) the three senators' calls overlap at the server."""
    model = "openai/test-model"
    section = f"  endpoints: {{{model}: {{concurrency: {limit}}}}}\n" if limit else ""
    real = {"senator": model, "tribune": model}  # a tribune with no DECISION line lets it stand
    run = prepared_against(server, tmp_path, with_models(THREE_SENATORS, section), role_models=real)
    run.context.router.concurrency = 8  # the helper runs one call at a time in all
    server.script = [AYE] * 20
    watch = InFlight(hold=0.3).watch(server)
    asyncio.run(execute(run))
    assert len(server.bodies) == 7  # three opinions, three ballots, the tribune
    assert watch.most == most


def test_models_on_one_server_share_its_smallest_limit() -> None:
    base = "http://127.0.0.1:9/v1"
    router = ModelRouter(
        api_base=base,
        endpoints={
            "openai/a": Endpoint(concurrency=3),
            "openai/b": Endpoint(api_base=f"{base}/", concurrency=2),
            "openai/c": Endpoint(api_base="http://127.0.0.1:10/v1"),
        },
    )
    assert router.base_of("openai/a") == router.base_of("openai/d") == base
    assert router.base_of("openai/c") == "http://127.0.0.1:10/v1"
    limits = [router._limit(m) for m in ("openai/a", "openai/b", "openai/d")]
    assert limits[0] is limits[1] is limits[2] and limits[0].ceiling == 2
    other = router._limit("openai/c")  # a server of its own, bounded by the run's concurrency
    assert other is not limits[0] and other.ceiling == router.concurrency


def test_credentials_are_checked_against_each_models_own_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    router = ModelRouter(endpoints={"openai/local": Endpoint(api_base="http://127.0.0.1:9/v1")})
    (problem,) = router.problems(["openai/local", "openai/gpt-4o-mini"])
    assert problem.startswith("model 'openai/gpt-4o-mini' needs OPENAI_API_KEY")


def test_an_endpoint_for_a_model_no_role_uses_is_refused_at_its_line(tmp_path: Path) -> None:
    section = "  endpoints: {openai/nobody: {concurrency: 1}}\n"
    text = with_models(SENATE, section)
    manifest = write(tmp_path, "senate.yaml", text)
    write(tmp_path, "pyproject.toml", "")
    line = text.splitlines().index(section.rstrip("\n")) + 1
    column = section.index("openai/nobody") + 1
    with pytest.raises(SpecInvalid) as refused:
        prepare(RunRequest(manifest, limit=1, out=tmp_path / "run", data=SAMPLE))
    (error,) = refused.value.errors
    assert (error.line, error.column) == (line, column)
    assert error.message.startswith("models.endpoints names 'openai/nobody', which no role uses")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("endpoint", ["{concurrency: 0}", "{api_base: ''}", "{slots: 1}"])
def test_a_wrong_endpoint_is_an_error_at_its_line(tmp_path: Path, endpoint: str) -> None:
    write(tmp_path, "pyproject.toml", "")
    text = with_models(SENATE, f"  endpoints:\n    sim/medium: {endpoint}\n")
    errors = spec_errors(write(tmp_path, "senate.yaml", text))
    line = text.splitlines().index(f"    sim/medium: {endpoint}") + 1
    assert errors and all(e.line == line for e in errors), errors


def test_the_readmes_endpoints_example_is_a_valid_manifest_section(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    example = next(b for b in readme.split("```yaml\n")[1:] if "endpoints:" in b)
    example = example.split("```", 1)[0]
    write(tmp_path, "pyproject.toml", "")
    manifest = write(
        tmp_path, "senate.yaml", SENATE.replace("models:\n  default: sim/medium\n", example)
    )
    assert spec_errors(manifest) == []
    run = prepare(RunRequest(manifest, limit=1, out=tmp_path / "run", data=SAMPLE))
    router = run.context.router
    assert router.base_of(run.context.role_models["senator"]) == "http://localhost:8080/v1"
    assert router.base_of(run.context.role_models["consul"]) == "http://localhost:8000/v1"
    run.ledger.close("interrupted")
