# The two commands: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG := data/homeserver.yaml
STAMP := $(VENV)/.installed

.PHONY: run test lint clean

run: $(STAMP) $(CONFIG)
	$(PY) -m homeserver run --config $(CONFIG)

test: $(STAMP)
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

# A local server for one person: registration is open, since it listens on localhost only.
$(CONFIG): | $(STAMP)
	$(PY) -m homeserver generate-config --config $(CONFIG) --open-registration

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
