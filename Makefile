# zhongtai — two commands from a fresh clone: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements/lock.txt pyproject.toml | sha256sum | cut -c1-12)
ASSETS := src/zhongtai/static/vendor/htmx.min.js src/zhongtai/static/vendor/echarts.min.js
ZT_DATA_DIR ?= ./var
export ZT_DATA_DIR

.PHONY: demo test lint install assets serve worker lock clean bench-http

install: $(STAMP) $(ASSETS)

$(STAMP): requirements/lock.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

$(ASSETS) &: node_modules/.package-lock.json
	@mkdir -p src/zhongtai/static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js src/zhongtai/static/vendor/htmx.min.js
	cp node_modules/echarts/dist/echarts.min.js src/zhongtai/static/vendor/echarts.min.js

demo: install
	$(BIN)/zhongtai demo
	$(BIN)/zhongtai serve

serve: install
	$(BIN)/zhongtai serve

worker: install
	$(BIN)/zhongtai worker

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff check --preview --select PLC2701 src  # no module imports another's _private names
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports  # the layers of docs/architecture.md (contracts in pyproject.toml)
	$(BIN)/python scripts/audit_lock.py requirements/lock.txt --ignore requirements/audit-ignore.txt  # known vulnerabilities of the pins (PyPI's data)
	ZT_DATA_DIR=$$(mktemp -d) $(BIN)/zhongtai migrate && ZT_DATA_DIR=$$(mktemp -d) sh -c '$(BIN)/zhongtai migrate >/dev/null && $(BIN)/zhongtai migrate --check'

bench-http: install
	$(BIN)/zhongtai bench http

# Regenerate the lock file after changing dependencies in pyproject.toml.
lock:
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements/lock.txt

clean:
	rm -rf $(VENV) node_modules src/zhongtai/static/vendor .pytest_cache .mypy_cache .ruff_cache
