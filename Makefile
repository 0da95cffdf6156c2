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
	$(BIN)/python -m pip install --quiet -e ".[all,dev,torch,ray]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m rdstd.demo

test: $(STAMP)
	$(BIN)/python -m ruff check rdstd tests bench
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -n 2 -q -m "not browser"
	$(BIN)/python -m pytest -q -m browser

lint: $(STAMP)
	$(BIN)/python -m ruff check rdstd tests bench
	$(BIN)/python -m ruff format --check rdstd tests bench

typecheck: $(STAMP)
	$(BIN)/python -m mypy

bench: $(STAMP)  # each prints its table and writes bench/results/<name>.json; several minutes in all
	for b in store_read store_write convert_rss checksum_cost rlds_convert lerobot_convert hdf5_convert \
		rosbag_convert validate_default loader merge view batch_scale convert_throughput export_speed; do \
		$(BIN)/python -m bench.$$b || exit 1; done

schemas: $(STAMP)
	$(BIN)/python -m rdstd.schema.jsonschema schemas
	$(BIN)/python -m rdstd.validate.model schemas

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist demo-out
