# The two commands: `make run` and `make test`. Both set everything up first.
# `make bench` compares this server with Synapse (bench/README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG := data/homeserver.yaml
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
JS_DIR := tests/interop/js
JS_STAMP := $(JS_DIR)/node_modules/.installed
# Synapse for `make bench`, in its own virtualenv; the version is pinned, and so
# is prometheus-client (newer ones break this Synapse's import).
SYNAPSE_VENV := .venv-synapse
SYNAPSE_VERSION := 1.142.0
SYNAPSE_STAMP := $(SYNAPSE_VENV)/.installed-$(SYNAPSE_VERSION)
# Debian's slapd for the LDAP tests (tests/ldap start their own throw-away
# directory from it); installed by `make test` when run as root on Debian,
# otherwise those tests are skipped with a message saying so.
SLAPD := /usr/sbin/slapd
# Debian's nginx for the worker deployment tests (tests/cluster/test_worker_routes.py
# put two workers behind the config `homeserver worker-routes --nginx` writes);
# installed like slapd, those tests skip with a message saying so without it.
NGINX := /usr/sbin/nginx
# pytest-xdist workers for `make test`: the tests mostly wait on servers,
# PostgreSQL and Node, so two workers fill a 2-core machine's idle time
# (three measured no faster: 15:30 either way).
TEST_WORKERS ?= 2

.PHONY: run test lint bench clean drills setup

run: $(STAMP) $(CONFIG)
	$(PY) -m homeserver run --config $(CONFIG)

# Everything `make test` needs installed, without running it (.ci/run sets up
# once, then runs the tests and the drills side by side).
setup: $(STAMP) $(JS_STAMP) $(SLAPD) $(NGINX)

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n $(TEST_WORKERS)

# The fault drills (tests/drills): a fuzzer over the spec's client-server API,
# kill -9 and a PostgreSQL restart under load, a Synapse peer down for minutes.
drills: $(STAMP)
	$(PY) -m pytest tests/drills -m drills -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Our server and a real Synapse, same load, same PostgreSQL, side by side.
bench: $(STAMP) $(SYNAPSE_STAMP)
	$(PY) bench/compare.py

# Costs against size (rooms, members, connections, federation), with Synapse,
# plotted: bench/scale.py (bench/README.md). About 30 minutes. Options
# through SCALE_ARGS, e.g. `make bench-scale SCALE_ARGS=--profile`.
SCALE_ARGS ?=
.PHONY: bench-scale
bench-scale: $(STAMP) $(SYNAPSE_STAMP) $(BENCH_STAMP)
	$(PY) bench/scale.py $(SCALE_ARGS)

# The send load and the sync wake-up against a deployment of six workers behind
# nginx, beside one process (bench/deployment.py, bench/README.md). A few
# minutes; options through DEPLOYMENT_ARGS, e.g. DEPLOYMENT_ARGS=--quick.
DEPLOYMENT_ARGS ?=
.PHONY: bench-deployment
bench-deployment: $(STAMP) $(NGINX)
	PYTHONPATH=$(CURDIR) $(PY) bench/deployment.py $(DEPLOYMENT_ARGS)

$(BENCH_STAMP): pyproject.toml | $(STAMP)
	$(VENV)/bin/pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $(STAMP)

# matrix-js-sdk for the client interoperability tests.
$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --no-audit --no-fund
	touch $(JS_STAMP)

$(SLAPD):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends slapd ldap-utils \
		|| { apt-get update -q && apt-get install -y -q --no-install-recommends slapd ldap-utils; }; \
	else \
		echo "slapd is not installed: the LDAP tests will be skipped (apt-get install slapd ldap-utils)"; \
	fi

$(NGINX):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends nginx-light \
		|| { apt-get update -q && apt-get install -y -q --no-install-recommends nginx-light; } \
		|| apt-get install -y -q --no-install-recommends nginx; \
	else \
		echo "nginx is not installed: the nginx deployment test will be skipped (apt-get install nginx-light)"; \
	fi

$(SYNAPSE_STAMP):
	$(PYTHON) -m venv $(SYNAPSE_VENV)
	$(SYNAPSE_VENV)/bin/pip install --quiet 'matrix-synapse[postgres]==$(SYNAPSE_VERSION)' \
		'prometheus-client==0.23.1'
	touch $(SYNAPSE_STAMP)

# A local server for one person: registration is open, since it listens on localhost only.
$(CONFIG): | $(STAMP)
	$(PY) -m homeserver generate-config --config $(CONFIG) --open-registration

clean:
	rm -rf $(VENV) $(SYNAPSE_VENV) $(JS_DIR)/node_modules *.egg-info .pytest_cache .ruff_cache
