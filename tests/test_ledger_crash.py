"""A writer killed with SIGKILL mid-run: the verifier calls the ledger unsealed (not
tampered), reopening recovers it, and no entry completed before the kill is lost."""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from govern.ledger.format import parse
from govern.ledger.keys import keyring_from_secrets
from govern.ledger.verifier import verify
from govern.ledger.writer import LedgerWriter

ROOT = Path(__file__).resolve().parent.parent
WRITER = Path(__file__).with_name("ledger_crash_writer.py")
RING = keyring_from_secrets("11" * 32, "33" * 32, "test")
ENOUGH = 3000  # entries written before the kill
TIMEOUT = 15.0


def _run_and_kill(path: Path, mode: str) -> tuple[list[int], str]:
    """Start the writer, SIGKILL it once it has printed seq >= ENOUGH; the printed seqs."""
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    process = subprocess.Popen(
        [sys.executable, str(WRITER), str(path), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:  # a thread, so that waiting for output can time out
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    printed: list[int] = []
    deadline = time.monotonic() + TIMEOUT
    try:
        while not printed or printed[-1] < ENOUGH:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                break
            printed.append(int(line))
        time.sleep(random.uniform(0.0, 0.02))  # not just after a print: a random moment
    except queue.Empty:
        pass  # too slow: the caller's assertion shows the writer's stderr
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    while (line := lines.get(timeout=10)) is not None:
        printed.append(int(line))
    return printed, process.stderr.read()


@pytest.mark.parametrize("mode", ["buffered", "chunked", "held"])
def test_sigkill_mid_write_loses_no_complete_entry(tmp_path: Path, mode: str) -> None:
    """Whether or not the kill tore the last line (likelier when chunked), nothing is lost:
    when held, nothing flushed (so nothing a run's item end vouched for)."""
    path = tmp_path / "ledger.jsonl"
    printed, stderr = _run_and_kill(path, mode)
    assert printed and printed[-1] >= ENOUGH, stderr

    data = path.read_bytes()
    good_end = data.rfind(b"\n") + 1
    complete, torn = data[:good_end].splitlines(), data[good_end:]
    assert [parse(line)["seq"] for line in complete] == list(range(len(complete)))

    report = verify(path, RING)
    assert not report.intact
    assert report.damage.kind == ("torn" if torn else "unsealed")
    assert report.summary().startswith("unsealed, intact up to entry ")
    assert report.entries == len(complete) > printed[-1]

    writer = LedgerWriter.reopen(path, RING, seal_every=1000, fsync="never")
    for n in range(10):
        writer.append("transition", "engine", {"after": n})
    writer.close()

    after = path.read_bytes().splitlines()
    assert after[: len(complete)] == complete  # nothing complete was lost or changed
    recovery = parse(after[len(complete)])
    assert recovery["kind"] == "recovery"
    assert recovery["body"]["after_seq"] == len(complete) - 1
    assert recovery["body"]["torn_bytes"] == len(torn)
    assert recovery["body"]["reason"] == ("torn last line" if torn else "unsealed")
    assert [parse(line)["seq"] for line in after] == list(range(len(after)))

    for report in (
        verify(path, RING),
        verify(path, trusted={RING.active_signer.public: "test"}),
    ):
        assert report.intact, report.summary()
        assert report.entries == len(after) and report.closed_as == "complete"


def test_a_held_writer_writes_at_a_flush_a_seal_or_when_enough_wait(tmp_path: Path) -> None:
    from govern.ledger import writer as ledger_writer

    path = tmp_path / "ledger.jsonl"
    writer = LedgerWriter.create(path, RING, "held", {"purpose": "test"}, seal_every=50)
    on_disk = lambda: len(path.read_bytes().splitlines())  # noqa: E731
    assert on_disk() == 1  # the header, written at once
    writer.hold()
    for n in range(10):
        writer.append("transition", "engine", {"n": n})
    assert on_disk() == 1
    writer.flush()
    assert on_disk() == 11
    for n in range(40):  # the 50th entry brings a seal: it and all before it go down
        writer.append("transition", "engine", {"n": n})
    assert on_disk() == 51 and parse(path.read_bytes().splitlines()[-1])["kind"] == "seal"
    writer.append("transition", "engine", {})
    writer.close()
    assert on_disk() == writer.seq == 54  # and the closing seal
    assert verify(path, RING).intact

    many = LedgerWriter.create(tmp_path / "many.jsonl", RING, "m", {}, seal_every=10**6)
    many.hold()
    for n in range(ledger_writer.HELD_AT_MOST):
        assert len((tmp_path / "many.jsonl").read_bytes().splitlines()) == 1
        many.append("transition", "engine", {"n": n})
    assert len((tmp_path / "many.jsonl").read_bytes().splitlines()) == 1 + many.seq - 1
    many.close()

    always = LedgerWriter.create(tmp_path / "always.jsonl", RING, "a", {}, fsync="always")
    always.hold()  # an entry synced at once is written at once
    always.append("transition", "engine", {})
    assert len((tmp_path / "always.jsonl").read_bytes().splitlines()) == 2
    always.close()


def test_a_run_puts_each_items_end_on_disk_before_the_next_item(tmp_path: Path) -> None:
    """A run holds its ledger's entries, and flushes them at each item's end: the ledger on
    disk then ends with that end entry, which vouches for the item's result line."""
    import asyncio
    import json

    from govern.run.runner import RunRequest, execute, prepare

    out = tmp_path / "run"
    request = RunRequest(
        ROOT / "institutions" / "mongol.yaml",
        task="gsm8k",
        data=ROOT / "tasks" / "gsm8k_sample.jsonl",
        limit=5,
        concurrency=1,
        out=out,
    )
    seen: list[str] = []

    def after(record: dict) -> None:
        last = parse((out / "ledger.jsonl").read_bytes().splitlines()[-1])
        assert last["kind"] == "item" and last["body"]["event"] == "end"
        assert last["body"]["item"] == record["id"]
        results = (out / "results.jsonl").read_text().splitlines()
        assert json.loads(results[-1])["id"] == record["id"]
        seen.append(record["id"])

    asyncio.run(execute(prepare(request), on_item=after))
    assert len(seen) == 5
