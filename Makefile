# calab: the two commands a new user needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
CARGO  ?= cargo
RUST_MANIFEST := --manifest-path rust/Cargo.toml
EXTRAS ?= dev,loaders,dask,widget,nwb
DIST   ?= dist

.PHONY: install build demo test test-rust test-py test-js lint bench clean js e2e-deps dist

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Installs calab (builds the Rust extension in release mode) and its test tools into .venv.
# `calab` on PyPI is another project (the CaLab package) with the same import name; it, or this
# package installed under its former distribution name `calab`, is removed from .venv first.
install: $(PY) js
	$(PIP) uninstall -q -y calab 2>/dev/null || true
	$(PIP) install -q -e ".[$(EXTRAS)]"

# Builds the tuning UI bundle (src/calab/static/widget.js + .css) from js/.
js:
	cd js && npm ci && npm run build

# Debian's Chromium for the browser tests (never a downloaded browser).
e2e-deps:
	@test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium) || \
		echo "e2e-deps: could not install chromium; the e2e tests will skip"

# Rebuild only the Rust extension after editing rust/ (faster than a full install).
build: $(PY)
	$(VENV)/bin/maturin develop --release -q -m rust/Cargo.toml

# The demo needs calab and numpy only: no UI bundle, loaders or test tools (`make install` adds
# them). The Rust extension is compiled here in release mode, with cargo's progress shown
# (about a minute the first time).
demo: $(PY)
	$(PIP) install --progress-bar on "maturin>=1.9.3,<2"
	$(VENV)/bin/maturin develop --release -m rust/Cargo.toml
	$(PY) examples/demo.py

lint: install
	$(CARGO) fmt $(RUST_MANIFEST) --check
	$(CARGO) clippy $(RUST_MANIFEST) --all-targets -q -- -D warnings
	PYO3_PYTHON=$(abspath $(PY)) $(CARGO) clippy $(RUST_MANIFEST) --all-targets --all-features -q -- -D warnings
	$(VENV)/bin/ruff check src tests examples bench js/build_backend.py
	$(VENV)/bin/ruff format --check src tests examples bench js/build_backend.py
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest calab._solver

test-rust:
	$(CARGO) test $(RUST_MANIFEST) -q --release

test-py: install
	$(PY) -m pytest -q

# The UI's TypeScript: eslint (typescript-eslint) and the vitest unit tests of its pure modules.
test-js: js
	cd js && npm run lint && npm test

test: e2e-deps lint test-rust test-js test-py

# Release files into $(DIST)/: an abi3 wheel that runs on glibc >= 2.17 (manylinux2014: zig, from
# the ziglang package, links against the old glibc) and the sdist (with the UI bundle and sources).
dist: $(PY) js
	$(PIP) install -q "maturin>=1.9.3,<2" "ziglang>=0.13"
	rm -f $(DIST)/cadeconv-*.whl $(DIST)/cadeconv-*.tar.gz
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/maturin build --release --strip --zig \
		--compatibility manylinux2014 --interpreter $(PY) --out $(DIST)
	$(VENV)/bin/maturin sdist -m rust/Cargo.toml --out $(DIST)

bench: install
	$(PY) bench/solver.py

clean:
	rm -rf $(VENV) rust/target src/calab/_solver*.so .pytest_cache .hypothesis dist
