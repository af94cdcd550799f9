# The two commands: `make demo` and `make test`. Each creates .venv if missing and installs from the
# pins (requirements.lock) before running. CI runs `make test` (see .ci/run).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint format bench lock install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) requirements.lock pyproject.toml
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/iamwarden demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check bot handlers tests bench
	$(VENV)/bin/ruff format --check bot handlers tests bench

format: $(STAMP)
	$(VENV)/bin/ruff format bot handlers tests bench
	$(VENV)/bin/ruff check --fix bot handlers tests bench

bench: $(STAMP)
	$(PY) -m bench

# Re-pin after changing dependencies in pyproject.toml (needs the package registry).
lock: $(PY)
	$(PY) -m pip install --quiet pip-tools
	$(VENV)/bin/pip-compile --quiet --extra dev --strip-extras --allow-unsafe --output-file requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) .iamwarden .pytest_cache
