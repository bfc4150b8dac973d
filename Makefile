# Two commands: `make run` serves the console, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# The demo integration's upstream is this console, so it follows the port.
DEV_ENV := DJANGO_DEBUG=1 DEMO_BASE_URL=http://127.0.0.1:$(PORT)/demo/v1

.PHONY: run test lint format bench install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(DEV_ENV) $(PY) manage.py migrate --noinput
	$(DEV_ENV) $(PY) manage.py bootstrap
	$(DEV_ENV) $(PY) manage.py check_alerts --schedule
	@echo "Serving the console at http://127.0.0.1:$(PORT), with one task worker (Ctrl+C stops both)"
	$(DEV_ENV) $(PY) manage.py db_worker --interval 1 & worker=$$!; \
	$(DEV_ENV) $(PY) manage.py bootstrap --test-demo & tester=$$!; \
	trap 'kill $$worker $$tester 2>/dev/null' EXIT INT TERM; \
	$(DEV_ENV) $(PY) manage.py runserver 127.0.0.1:$(PORT)

test: $(VENV)/.installed-test
	$(PY) -m pytest -n auto $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed-test
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Benchmarks print tables and write bench/results/*.json (see README "Benchmarks").
# Each table prints the load average beside its figures: run them on an idle machine.
bench: $(VENV)/.installed-test
	cd bench && ../$(PY) bench_overhead.py 500
	cd bench && ../$(PY) bench_concurrency.py
	cd bench && ../$(PY) bench_scale.py
	cd bench && ../$(PY) bench_memory.py 5 1000
	cd bench && ../$(PY) bench_postgres.py 256
	cd bench && ../$(PY) bench_gateway.py 500
	cd bench && ../$(PY) bench_failover.py 300
	cd bench && ../$(PY) bench_pages.py 300
	cd bench && ../$(PY) bench_resume.py 20
	cd bench && ../$(PY) bench_evaluation.py 1000
	cd bench && ../$(PY) bench_scrubber.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles test-artifacts
