# The README's two commands: `make demo` and `make test`. Both create the virtualenv first.
# Every install takes the versions pinned in constraints.txt; `make lock` writes that file.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
# The resolver `make lock` runs, in a virtualenv of its own (build/lock).
UV_VERSION := 0.13.9

.PHONY: demo test lint bench lock clean

demo: $(VENV)/.installed
	$(BIN)/kore-connector demo

test: lint
	$(BIN)/pytest -n 3

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(VENV)/.installed
	$(PIP) -e '.[dev,bench]'
	$(BIN)/python benchmarks/bench_sync.py --profile

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[dev]'
	touch $@

# constraints.txt pins every dependency of pyproject.toml, extras included, for Python 3.11+ on
# Linux x86_64. After a change to pyproject.toml's dependencies: `make lock` (pins that still
# fit are kept); `make lock UPGRADE=1` moves every pin to the newest release that fits.
lock:
	$(PYTHON) -m venv build/lock
	build/lock/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	build/lock/bin/uv pip compile --quiet pyproject.toml --all-extras --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --custom-compile-command 'make lock' \
		$(if $(UPGRADE),--upgrade) --output-file constraints.txt

clean:
	rm -rf $(VENV) demo-output build *.egg-info .pytest_cache .mypy_cache .ruff_cache
