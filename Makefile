# The README's commands. Everything a fresh machine needs is installed from here: a C compiler
# (Debian's gcc, for the firmware reference and the device simulator), a virtual environment with
# the Python packages of requirements-dev.txt, and the extension built in release mode by maturin.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEPS := $(VENV)/.deps-installed
CC_OK := $(VENV)/.cc-ok
EXT := $(VENV)/.ext-built
RUST_SOURCES := $(shell find rust -name '*.rs' -o -name Cargo.toml) Cargo.toml pyproject.toml
PY_SOURCES := $(shell find python -name '*.py' -o -name '*.pyi')

export CARGO_TERM_COLOR := never

.PHONY: run test test-rust test-python bench soak fuzz lint build wheel clean

run: $(EXT)
	$(BIN)/qitcore run

test: test-rust test-python

test-rust:
	cargo test --workspace --exclude qitcore-py

test-python: $(EXT) $(CC_OK)
	$(BIN)/python -m pytest tests -q --durations=20

# 1 GiB through the pseudo-terminal with sequence checking (minutes; not part of make test).
soak: $(EXT) $(CC_OK)
	$(BIN)/python -m pytest soak -q -s -p no:cacheprovider

# Every property and fuzz test with two hundred times the examples of make test (tens of minutes).
fuzz: $(EXT) $(CC_OK)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests -q -p no:cacheprovider -k "fuzz or property or hostile"
	PROPTEST_CASES=2000 cargo test --workspace --exclude qitcore-py

bench: $(EXT)
	$(BIN)/python -m pytest benches -o python_files='bench_*.py' -p no:cacheprovider \
		--benchmark-only --benchmark-columns=median,iqr,rounds \
		--benchmark-sort=name -q

lint: $(DEPS)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(BIN)/ruff check python tests benches soak
	$(BIN)/ruff format --check python tests benches soak
	$(BIN)/python -m mypy python/qitcore
	$(BIN)/python -m mypy.stubtest qitcore._core

build: $(EXT)

# What pip installs: one abi3 wheel (CPython >= 3.11) and the sdist, into target/wheels.
wheel: $(DEPS)
	$(BIN)/maturin build --release -i $(BIN)/python --out target/wheels  # the interpreter of make build: cargo reuses its build
	$(BIN)/maturin sdist --out target/wheels

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(DEPS): requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

# gcc builds the C reference firmware in the tests; install it where the machine lacks it.
$(CC_OK): | $(BIN)/python
	command -v gcc >/dev/null || { apt-get update -qq && apt-get install -y -qq gcc; }
	touch $@

$(EXT): $(DEPS) $(RUST_SOURCES) $(PY_SOURCES)
	rm -f python/qitcore/_core.cpython-*.so  # built before the abi3 one, it would be imported first
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(BIN)):$$PATH $(BIN)/maturin develop --release --quiet
	touch $@

clean:
	rm -rf $(VENV) target
