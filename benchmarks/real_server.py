"""The bare baseline and the senate on a real (tiny) model under each parsing policy.

Starts llama.cpp's server (llama-cpp-python) with SmolLM2-135M-Instruct (Q4_1) on the
loopback interface, runs `govern run` on the first GSM8K items for each institution and
parsing policy, one call at a time, and prints a markdown table read from each run's
summary.json and results.jsonl. A 135M-parameter model: the figures say how govern and
its parsing policies meet a small model's output, nothing about large models.

    make bench-real        # builds the server's venv once, then runs this
    GOVERN_REAL_PYTHON=~/.cache/govern/real-server/venv/bin/python \\
        .venv/bin/python benchmarks/real_server.py [--items 3] [--max-tokens 256]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the server helpers live with the tests that use them

from tests.real.llama_server import (  # noqa: E402
    MODEL,
    PYTHON_ENV,
    govern,
    gsm8k_data,
    llama_server,
    read_run,
    server_python,
)

DEFAULT_PYTHON = Path.home() / ".cache" / "govern" / "real-server" / "venv" / "bin" / "python"
POLICIES: list[tuple[str, str, object]] = [  # label, file name, the manifest's `parsing`
    ("strict", "strict", "strict"),
    ("tolerant", "tolerant", "tolerant"),
    ("flexible", "flexible", "flexible"),
    ("tolerant, 2 re-asks", "reasks", {"mode": "tolerant", "reasks": 2}),
]
TITLE = (
    "SmolLM2-135M-Instruct Q4_1 on llama.cpp (llama-cpp-python {version} server, CPU, "
    "{cores} cores), {items} GSM8K items"
)


def manifest(folder: Path, institution: str, name: str, parsing: object, sampling: dict) -> Path:
    """A manifest derived from the shipped one (the senate) or the baseline institution."""
    up = Path("../..")
    if institution == "senate":
        text: dict = {"extends": str(up / "manifests" / "senate.yaml"), "id": name}
    else:
        text = {"id": name, "institution": str(up / "institutions" / "bare.yaml")}
        text["task"] = {"name": "gsm8k"}
    text |= {"parsing": parsing, "sampling": sampling}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(text, sort_keys=False))
    return path


def row(institution: str, policy: str, folder: Path) -> list[str]:
    summary, records = read_run(folder)
    turns = [t for r in records for t in r["turns"]]
    n = summary["n"]
    calls = (summary["calls_per_item"] or 0) * n

    def share(p: dict) -> str:
        return f"{p['successes']}/{p['n']}" if "successes" in p else f"{p['value']:.0%}"

    return [
        institution,
        policy,
        share(summary["accuracy_strict"]),
        share(summary["accuracy_flexible"]),
        f"{summary['unparsed_turns']}/{len(turns)} ({summary['unparsed_turns'] / len(turns):.0%})"
        if turns
        else "-",
        f"{summary['calls_per_item']:.1f}",
        f"{summary['tokens_per_item']:.0f}",
        f"{summary['wall_seconds'] / calls:.2f}" if calls else "-",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--keep", action="store_true", help="keep the runs (paths printed)")
    args = parser.parse_args()
    python = server_python() or DEFAULT_PYTHON
    if not python.exists():
        print(f"no server venv at {python}: run `make bench-real` (or set {PYTHON_ENV})")
        return 2
    sampling = {"temperature": args.temperature, "top_p": 0.9, "max_tokens": args.max_tokens}
    data = gsm8k_data()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.pop("GOVERN_GSM8K", None)
    env["GOVERN_CACHE"] = "off"  # every row measures the model, never the response cache
    if data is not None:
        env["GOVERN_GSM8K"] = str(data)
    (ROOT / "runs").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".bench-real-", dir=ROOT / "runs"))
    rows: list[list[str]] = []
    notes: list[str] = []
    began = time.monotonic()
    try:
        with llama_server(python, work / "server.log") as server:
            version = _version(python)
            for institution in ("bare", "senate"):
                for label, slug, parsing in POLICIES:
                    name = f"{institution}_{slug}"
                    path = manifest(work, institution, name, parsing, sampling)
                    out = work / name
                    started = time.monotonic()
                    done = govern(
                        "run", str(path), "--task", "gsm8k", "--limit", str(args.items),
                        "--model", MODEL, "--api-base", server.url, "--concurrency", "1",
                        "--out", str(out),
                        env=env,
                    )  # fmt: skip
                    took = time.monotonic() - started
                    if not (out / "summary.json").is_file():
                        reason = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
                        rows.append([institution, label, "not run", "", "", "", "", ""])
                        notes.append(f"{institution}, {label}: exit {done.returncode}: {reason}")
                        continue
                    rows.append(row(institution, label, out))
                    print(f"  {institution:7} {label:20} {took:6.0f} s", file=sys.stderr)
    finally:
        if args.keep:
            print(f"runs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    source = "the GSM8K test split" if data else "the project's GSM8K sample (not the benchmark)"
    print()
    print("### " + TITLE.format(version=version, cores=os.cpu_count(), items=args.items))
    print()
    print(
        f"A 135M-parameter model: says nothing about large models. The first {args.items} "
        f"items of {source}; temperature {args.temperature:g}, top_p 0.9, max_tokens "
        f"{args.max_tokens}, a seed per call; one call at a time. Accuracy is items right of "
        "items run (strict: the `#### ` line; flexible: the last number); unparsable: model "
        "outputs that did not parse under the policy, of all outputs; seconds per call: wall "
        "time over calls."
    )
    print()
    header = [
        "institution", "parsing", "accuracy strict", "accuracy flexible",
        "unparsable rate", "calls per item", "tokens per item", "seconds per call",
    ]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    for note in notes:
        print(f"\n- {note}")
    print(f"\n({time.monotonic() - began:.0f} s in all)")
    return 0


def _version(python: Path) -> str:
    import subprocess

    found = subprocess.run(
        [str(python), "-c", "import llama_cpp; print(llama_cpp.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() or "?"


if __name__ == "__main__":
    sys.exit(main())
