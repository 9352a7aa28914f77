# calab: the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
CARGO  ?= cargo
RUST_MANIFEST := --manifest-path rust/Cargo.toml
EXTRAS ?= dev,loaders

.PHONY: install build demo test test-rust test-py lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Installs calab (builds the Rust extension in release mode) and its test tools into .venv.
install: $(PY)
	$(PIP) install -q -e ".[$(EXTRAS)]"

# Rebuild only the Rust extension after editing rust/ (faster than a full install).
build: $(PY)
	$(VENV)/bin/maturin develop --release -q

demo: install
	$(PY) examples/demo.py

lint: install
	$(CARGO) fmt $(RUST_MANIFEST) --check
	$(CARGO) clippy $(RUST_MANIFEST) --all-targets -q -- -D warnings
	$(VENV)/bin/ruff check src tests examples bench
	$(VENV)/bin/ruff format --check src tests examples bench
	$(VENV)/bin/mypy

test-rust:
	$(CARGO) test $(RUST_MANIFEST) -q --release

test-py: install
	$(PY) -m pytest -q

test: lint test-rust test-py

bench: install
	$(PY) bench/solver.py

clean:
	rm -rf $(VENV) rust/target src/calab/_solver*.so .pytest_cache .hypothesis
