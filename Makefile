# The two commands of the README: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: demo test system-deps lint bench

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test,dev]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/docexchange serve --demo --port $(PORT)

system-deps:
	@scripts/system-deps.sh

test: $(VENV)/.installed system-deps
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check service tests bench
	$(VENV)/bin/mypy service

bench: $(VENV)/.installed
	$(PY) bench/bench_core.py
