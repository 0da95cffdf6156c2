# The newcomer's two commands: `make demo` and `make test`. Each creates .venv and installs what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench schemas clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned to the CPU wheel: the torch extra's range then installs nothing more (unpinned = GBs of CUDA)
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[all,dev,torch]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m rdstd.demo

test: $(STAMP)
	$(BIN)/python -m ruff check rdstd tests bench
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/python -m ruff check rdstd tests bench
	$(BIN)/python -m ruff format --check rdstd tests bench

typecheck: $(STAMP)
	$(BIN)/python -m mypy

bench: $(STAMP)
	$(BIN)/python bench/store_read.py
	$(BIN)/python bench/store_write.py
	$(BIN)/python bench/convert_rss.py

schemas: $(STAMP)
	$(BIN)/python -m rdstd.schema.jsonschema schemas

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist demo-out
