# LambdaLab: `make demo` sets up and runs the engine demo; `make test` runs every test.
VENV := .venv
PY := $(VENV)/bin/python
SYSTEM_PYTHON := /usr/bin/python3

.PHONY: demo setup system venv test test-fast bench check lint fmt clean

demo: setup
	$(PY) -m sandbox check || true
	$(PY) -m sandbox invoke docs/examples/hello.py --count 3 --event '{"name": "lab"}'
	$(PY) -m sandbox invoke docs/examples/hello.py --count 4 --concurrency 2

setup: system venv

# Debian packages the engine needs (run as root, or with sudo available).
system:
	@missing=""; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	$(SYSTEM_PYTHON) -c "import ensurepip, venv" 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing; \
	fi

# The venv is built from Debian's python3: jails run that same interpreter from /usr.
venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(SYSTEM_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

test: venv
	$(PY) -m pytest

test-fast: venv
	$(PY) -m pytest -m "not slow"

bench: venv
	$(PY) bench/engine.py

check: venv
	$(PY) -m sandbox check

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache
