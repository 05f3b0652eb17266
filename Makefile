# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint demo schema bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check govern tests benchmarks
	$(BIN)/ruff format --check govern tests benchmarks

demo: $(STAMP)
	$(BIN)/govern validate institutions manifests
	$(BIN)/govern inspect institutions manifests
	$(BIN)/govern graph manifests/senate.yaml

schema: $(STAMP)
	$(BIN)/govern schema --out schemas/govern.schema.json

bench: $(STAMP)
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/validate_many.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
