# The README's two commands are `make demo` and `make test`; both set the machine up first.
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest

.PHONY: setup lint test test-unit demo bench bench-quick soak clean

setup:
	@scripts/setup.sh

# The checkers, configured in pyproject.toml; `make test` runs them first, so CI does.
lint: setup
	$(VENV)/bin/ruff check lb tests
	$(VENV)/bin/mypy lb

test: setup lint
	$(PYTEST) -q tests

test-unit: setup
	$(PYTEST) -q tests/unit

demo: setup
	$(PY) -m lb.demo

bench: setup
	$(PY) -m lb.bench

bench-quick: setup
	$(PY) -m lb.bench --quick

# Not part of `make test`: 10 minutes of churn, edits, flaps and daemon kills (docs/soak.md).
soak: setup
	$(PY) -m lb.soak $(SOAK_ARGS)

clean:
	rm -rf .venv .pytest_cache .hypothesis .ruff_cache .mypy_cache
