"""Does a one-line example of the answer line help a small real model follow the format?

Starts llama.cpp's server with SmolLM2-135M-Instruct (as `make test-real` does) and asks the
bare baseline's solver the first GSM8K items with govern's own prompt, once with the answer
format as govern writes it (the form `#### <number>`, no example) and once with a one-line
example added (`For example, if your answer were 42, the last line would be: #### 42`), the
two interleaved item by item with the same seeds. It counts the outputs whose strict answer
line parses and those whose last number is the example's, copied. A 135M-parameter model:
this says how a small model meets the prompt, nothing about large models.

    GOVERN_REAL_PYTHON=~/.cache/govern/real-server/venv/bin/python \\
        .venv/bin/python benchmarks/real_format_example.py [--items 16] [--seeds 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import urllib.request
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the server helpers live with the tests that use them

from govern.engine.prompts import compose  # noqa: E402
from govern.spec.loader import load_institution  # noqa: E402
from govern.tasks.gsm8k import GSM8K  # noqa: E402
from tests.real.llama_server import gsm8k_data, llama_server, server_python  # noqa: E402

EXAMPLE = "42"


def ask(url: str, messages: list[dict], seed: int, max_tokens: int) -> str:
    body = {"model": "smollm2", "messages": messages, "seed": seed, "temperature": 0.7,
            "top_p": 0.9, "max_tokens": max_tokens}  # fmt: skip
    request = urllib.request.Request(
        f"{url}/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as reply:
        return json.load(reply)["choices"][0]["message"]["content"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()
    python = server_python()
    data = gsm8k_data()
    if python is None or data is None:
        print("needs GOVERN_REAL_PYTHON (make bench-real sets it) and the GSM8K split")
        return 2
    task = GSM8K()
    institution = load_institution(ROOT / "institutions" / "bare.yaml").institution
    purpose = institution.stage("solve").purpose
    plain = task.answer_format
    with_example = replace(
        plain, example=f"#### {EXAMPLE}", example_case=f"if your answer were {EXAMPLE}"
    )
    variants = {"form only (govern's)": plain, "form and example `#### 42`": with_example}
    counts = {name: {"strict": 0, "copied": 0, "n": 0} for name in variants}
    questions = [
        json.loads(line)["question"] for line in data.read_text().splitlines()[: args.items]
    ]
    with (
        tempfile.TemporaryDirectory() as folder,
        llama_server(python, Path(folder) / "log") as server,
    ):
        for index, question in enumerate(questions):
            for seed in range(args.seeds):
                for name, output_format in variants.items():  # interleaved, same seed
                    messages = compose(
                        institution, "solver", question, purpose, [], output_format.prompt()
                    )
                    text = ask(server.url, messages, 1000 * seed + index, args.max_tokens)
                    tally = counts[name]
                    tally["n"] += 1
                    tally["strict"] += task.parse_answer(text, "strict") is not None
                    tally["copied"] += task.parse_answer(text, "flexible") == EXAMPLE
    print(f"SmolLM2-135M-Instruct Q4_1, llama.cpp, {args.items} GSM8K items x {args.seeds} seeds, "
          "temperature 0.7 (a 135M model: nothing about large models)\n")  # fmt: skip
    print("| answer format in the prompt | strict line written | last number is 42 |")
    print("| --- | --- | --- |")
    for name, tally in counts.items():
        n = tally["n"]
        print(f"| {name} | {tally['strict']}/{n} | {tally['copied']}/{n} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
