"""Cost of the ledger against plain JSON lines, and of auditing it, measured in one run.

Writes a run folder shaped like a real one: N entries with LedgerWriter (fsync at every
seal, a seal every 1000 entries), every tenth an item's end binding its line in
results.jsonl, and a closing `files` entry; and the same N bodies as plain JSON lines
(json.dumps, flushed per line) side by side. Then it audits the folder as `govern audit`
does (every MAC or every seal, and the bound files) with the HMAC key and with the public
key alone. Targets, scaled to a million entries: written in under 15 s, audited in 8 s.

    .venv/bin/python benchmarks/ledger_io.py [--entries 1000000] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from govern.ledger.audit import audit
from govern.ledger.binding import RESULTS, folder_digests
from govern.ledger.keys import ENV_KEY, ENV_SIGNING_KEY, keyring_from_secrets
from govern.ledger.writer import LedgerWriter
from govern.run.records import ResultsWriter

HMAC_HEX, SEAL_HEX = "11" * 32, "33" * 32
RING = keyring_from_secrets(HMAC_HEX, SEAL_HEX, "benchmark")
WRITE_TARGET = 15.0  # seconds per million entries written
VERIFY_TARGET = 8.0  # seconds per million entries verified
MILLION = 1_000_000


def body(n: int) -> dict[str, Any]:
    """A transition as the engine records it, about 300 bytes of JSON."""
    return {
        "item": f"gsm8k/test/{n:07d}",
        "stage": "division",
        "decision": "pass",
        "to": "intercession",
        "rule": "edge:division->intercession",
        "status": "applied",
        "visit": 1,
        "role": "senator",
        "tokens": {"prompt": 412, "completion": 87},
        "output_sha256": "9f2c4e1a7b3d5f6081a2c3e4d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718",
    }


def write_run(folder: Path, entries: int) -> float:
    """A run folder: the ledger, results.jsonl bound item by item, and the closing files."""
    start = time.perf_counter()
    writer = LedgerWriter.create(
        folder / "ledger.jsonl",
        RING,
        "benchmark",
        {"institution": "senate"},
        seal_every=1000,
        fsync="seal",
    )
    results = ResultsWriter(folder / RESULTS)
    for n in range(entries):
        if n % 10 == 9:
            digest = results.write({"id": f"gsm8k/test/{n:07d}", "correct_strict": True})
            item = {"item": f"gsm8k/test/{n:07d}", "event": "end", "outcome": "completed"}
            writer.append("item", "controller", {**item, "result_sha256": digest})
        else:
            writer.append("transition", "engine", body(n))
    results.close()
    writer.append("files", "govern", {"files": folder_digests(folder)})
    writer.close()
    return time.perf_counter() - start


def write_plain(path: Path, entries: int) -> float:
    start = time.perf_counter()
    with path.open("w") as handle:
        for n in range(entries):
            handle.write(json.dumps(body(n)) + "\n")
            handle.flush()
    return time.perf_counter() - start


def timed_audit(folder: Path, **key: Any) -> tuple[float, int]:
    """Seconds, and the entries checked: the N entries plus the header, files and seals."""
    start = time.perf_counter()
    result = audit(folder, **key)
    elapsed = time.perf_counter() - start
    if not result.intact:
        raise SystemExit(f"the benchmark run does not audit: {result.text}")
    return elapsed, result.report["ledger"]["entries"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=MILLION)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: temp)")
    args = parser.parse_args()
    entries: int = args.entries
    scale = MILLION / entries

    os.environ[ENV_KEY], os.environ[ENV_SIGNING_KEY] = HMAC_HEX, SEAL_HEX
    with tempfile.TemporaryDirectory(dir=args.dir) as temp:
        run, plain = Path(temp) / "run", Path(temp) / "plain.jsonl"
        run.mkdir()
        ledger = run / "ledger.jsonl"
        public = Path(temp) / "seal.pub"
        public.write_text(RING.active_signer.public)
        ledger_s = write_run(run, entries)
        plain_s = write_plain(plain, entries)
        hmac_s, checked = timed_audit(run)
        del os.environ[ENV_KEY]  # the auditor holds the seal's public key and nothing else
        public_s, _ = timed_audit(run, public_keys=(public,))
        ledger_bytes, plain_bytes = ledger.stat().st_size, plain.stat().st_size

    body_bytes = len(json.dumps(body(0), separators=(",", ":")))
    print(
        f"entries: {entries:,} (nine transitions of {body_bytes} B to one item end); the "
        f"ledger adds a header, a files entry and {checked - entries - 2:,} seals: {checked:,}"
    )
    print(
        f"line: ledger {ledger_bytes / checked:.0f} B, plain {plain_bytes / entries:.0f} B; "
        f"files: ledger {ledger_bytes / 1e6:.0f} MB, plain {plain_bytes / 1e6:.0f} MB"
    )
    for name, seconds in (
        ("ledger write (fsync=seal, seal every 1000)", ledger_s),
        ("plain JSONL write (flush per line)", plain_s),
    ):
        print(f"{name:44s} {seconds:7.2f} s  {entries / seconds:>10,.0f} entries/s")
    print(f"{'ratio ledger / plain':44s} {ledger_s / plain_s:7.2f} x")
    for name, seconds in (("audit (hmac)", hmac_s), ("audit (public key)", public_s)):
        print(f"{name:44s} {seconds:7.2f} s  {seconds * scale:7.2f} s per million")
    write_m, hmac_m, public_m = ledger_s * scale, hmac_s * scale, public_s * scale
    met = {True: "met", False: "NOT met"}
    print(
        f"target: 1M written < {WRITE_TARGET:.0f} s: {write_m:.2f} s per million -> "
        f"{met[write_m < WRITE_TARGET]}"
    )
    print(
        f"target: 1M audited < {VERIFY_TARGET:.0f} s: hmac {hmac_m:.2f} s, public key "
        f"{public_m:.2f} s per million -> {met[max(hmac_m, public_m) < VERIFY_TARGET]}"
    )


if __name__ == "__main__":
    main()
