# One command each for a newcomer on a fresh Debian machine: `make demo`, `make test`.
VENV   := .venv
PYTHON := $(VENV)/bin/python
PY3    ?= python3

.PHONY: demo test venv web system-deps lint clean

demo: venv web
	$(VENV)/bin/relay demo

test: system-deps venv web
	$(PYTHON) -m pytest

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@$(PY3) -m venv $(VENV) || { echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv)" >&2; exit 1; }
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[test]'
	touch $@

web: web/node_modules/.installed
web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# the same checks tests/test_lint.py runs inside `make test`
lint: venv
	$(PYTHON) -m ruff check relay web tests bench
	$(PYTHON) -m mypy

system-deps:
	@scripts/system-deps.sh

clean:
	rm -rf $(VENV) web/node_modules
