"""Cost of the ledger against plain JSON lines, and of verifying it, measured in one run.

Writes N typical transition entries with LedgerWriter (fsync at every seal, a seal every
1000 entries) and the same N bodies as plain JSON lines (json.dumps, flushed per line)
side by side, then verifies the ledger with the HMAC key and with the public key alone.
Targets, scaled to a million entries: written in under 15 s, verified in under 8 s.

    .venv/bin/python benchmarks/ledger_io.py [--entries 1000000] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from govern.ledger.keys import keyring_from_secrets
from govern.ledger.verifier import verify
from govern.ledger.writer import LedgerWriter

RING = keyring_from_secrets("11" * 32, "33" * 32, "benchmark")
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


def write_ledger(path: Path, entries: int) -> float:
    start = time.perf_counter()
    writer = LedgerWriter.create(
        path, RING, "benchmark", {"institution": "senate"}, seal_every=1000, fsync="seal"
    )
    for n in range(entries):
        writer.append("transition", "engine", body(n))
    writer.close()
    return time.perf_counter() - start


def write_plain(path: Path, entries: int) -> float:
    start = time.perf_counter()
    with path.open("w") as handle:
        for n in range(entries):
            handle.write(json.dumps(body(n)) + "\n")
            handle.flush()
    return time.perf_counter() - start


def timed_verify(path: Path, **key: Any) -> tuple[float, int]:
    """Seconds, and the entries checked: the N transitions plus the header and the seals."""
    start = time.perf_counter()
    report = verify(path, **key)
    elapsed = time.perf_counter() - start
    if not report.intact:
        raise SystemExit(f"the benchmark ledger does not verify: {report.summary()}")
    return elapsed, report.entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=MILLION)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: temp)")
    args = parser.parse_args()
    entries: int = args.entries
    scale = MILLION / entries

    with tempfile.TemporaryDirectory(dir=args.dir) as temp:
        ledger, plain = Path(temp) / "ledger.jsonl", Path(temp) / "plain.jsonl"
        ledger_s = write_ledger(ledger, entries)
        plain_s = write_plain(plain, entries)
        hmac_s, checked = timed_verify(ledger, keyring=RING)
        public_s, _ = timed_verify(ledger, trusted={RING.active_signer.public: "test"})
        ledger_bytes, plain_bytes = ledger.stat().st_size, plain.stat().st_size

    body_bytes = len(json.dumps(body(0), separators=(",", ":")))
    print(
        f"entries: {entries:,} transitions (body {body_bytes} B); the ledger adds a header and "
        f"{checked - entries - 1:,} seals: {checked:,} lines"
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
    for name, seconds in (("verify (hmac)", hmac_s), ("verify (public key)", public_s)):
        print(f"{name:44s} {seconds:7.2f} s  {seconds * scale:7.2f} s per million")
    write_m, hmac_m, public_m = ledger_s * scale, hmac_s * scale, public_s * scale
    met = {True: "met", False: "NOT met"}
    print(
        f"target: 1M written < {WRITE_TARGET:.0f} s: {write_m:.2f} s per million -> "
        f"{met[write_m < WRITE_TARGET]}"
    )
    print(
        f"target: 1M verified < {VERIFY_TARGET:.0f} s: hmac {hmac_m:.2f} s, public key "
        f"{public_m:.2f} s per million -> {met[max(hmac_m, public_m) < VERIFY_TARGET]}"
    )


if __name__ == "__main__":
    main()
