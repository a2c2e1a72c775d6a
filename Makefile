# The two commands: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG := data/homeserver.yaml
STAMP := $(VENV)/.installed
JS_DIR := tests/interop/js
JS_STAMP := $(JS_DIR)/node_modules/.installed

.PHONY: run test lint clean

run: $(STAMP) $(CONFIG)
	$(PY) -m homeserver run --config $(CONFIG)

test: $(STAMP) $(JS_STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

# matrix-js-sdk for the client interoperability tests.
$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --no-audit --no-fund
	touch $(JS_STAMP)

# A local server for one person: registration is open, since it listens on localhost only.
$(CONFIG): | $(STAMP)
	$(PY) -m homeserver generate-config --config $(CONFIG) --open-registration

clean:
	rm -rf $(VENV) $(JS_DIR)/node_modules *.egg-info .pytest_cache .ruff_cache
