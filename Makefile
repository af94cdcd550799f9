# The two commands: `make demo` and `make test`. Each creates .venv if missing and installs from the
# pins before running: requirements-dev.lock (runtime + the demo's moto + test tools). The Docker
# image installs requirements.lock, the runtime set alone. CI runs `make test` (see .ci/run).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements-dev.lock
STAMP := $(VENV)/.installed-$(shell cat $(LOCK) pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint format bench lock install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) $(LOCK) pyproject.toml
	$(PY) -m pip install --quiet --disable-pip-version-check -r $(LOCK)
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/iamwarden demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check bot handlers iamwarden sandbox tests bench
	$(VENV)/bin/ruff format --check bot handlers iamwarden sandbox tests bench
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format bot handlers iamwarden sandbox tests bench
	$(VENV)/bin/ruff check --fix bot handlers iamwarden sandbox tests bench

bench: $(STAMP)
	$(PY) -m bench

# Re-pin after changing dependencies in pyproject.toml (needs the package registry): the runtime
# set (the image) and the dev set (make test / make demo), compiled from the same pyproject.
PIN := --quiet --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links
lock: $(PY)
	$(PY) -m pip install --quiet pip-tools
	$(VENV)/bin/pip-compile $(PIN) --output-file requirements.lock pyproject.toml
	$(VENV)/bin/pip-compile $(PIN) --extra dev --output-file requirements-dev.lock pyproject.toml
	printf '\n# Build backend, installed into the venv so the editable install needs no isolated build.\nsetuptools==80.9.0\n' >> requirements-dev.lock

clean:
	rm -rf $(VENV) .iamwarden .pytest_cache
