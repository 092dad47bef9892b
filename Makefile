# The README's two commands are `make demo` and `make test`; both set the machine up first.
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest

.PHONY: setup lint test test-unit demo bench bench-quick soak clean

setup:
	@scripts/setup.sh

# The checkers, one line each, configured in pyproject.toml; `make test` runs them first, so CI does.
# lint-imports: the layers and no cycles (docs/design.md "Layers"); ruff; mypy with full hints.
lint: setup
	$(VENV)/bin/lint-imports --no-logo
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
	rm -rf .venv .pytest_cache .hypothesis .import_linter_cache .grimp_cache .ruff_cache .mypy_cache
