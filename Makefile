# LambdaLab: `make run` sets up and starts the lab; `make test` runs every test; `make demo` the engine alone.
VENV := .venv
PY := $(VENV)/bin/python
SYSTEM_PYTHON := /usr/bin/python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run demo setup system browser venv redis migrate test test-fast bench check lint fmt clean

# The whole lab: web and worker (see Procfile), Redis if none answers, SQLite by default.
run: setup redis migrate
	$(PY) manage.py runlab

migrate: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0

demo: setup
	$(PY) -m sandbox check || true
	$(PY) -m sandbox invoke docs/examples/hello.py --count 3 --event '{"name": "lab"}'
	$(PY) -m sandbox invoke docs/examples/hello.py --count 4 --concurrency 2

setup: system venv

# Debian packages: bubblewrap (the jail), libseccomp2 (its syscall filter), redis-server,
# python3-venv (the venv and the jails share Debian's interpreter), btrfs-progs (mkfs.btrfs for
# the scratch disk that holds every /tmp). Installed only when missing.
system:
	@missing=""; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	PATH="$$PATH:/usr/sbin:/sbin" command -v mkfs.btrfs >/dev/null || missing="$$missing btrfs-progs"; \
	/sbin/ldconfig -p | grep -q libseccomp.so.2 || missing="$$missing libseccomp2"; \
	$(SYSTEM_PYTHON) -c "import ensurepip, venv" 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(SYSTEM_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

# Redis on 127.0.0.1:6379, started (without persistence) only if nothing answers there.
redis:
	@if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then \
	  echo "starting redis-server on 127.0.0.1:6379"; \
	  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
	    --dir /tmp --logfile /tmp/lambdalab-redis.log; \
	  for i in $$(seq 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done; \
	fi

# Debian's Chromium for the browser tests (Playwright drives it; it cannot download one here).
browser:
	@test -x /usr/bin/chromium || { echo "installing: chromium"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: setup browser redis
	$(PY) -m pytest

test-fast: setup browser redis
	$(PY) -m pytest -m "not slow"

bench: setup redis
	$(PY) bench/engine.py
	$(PY) bench/lab.py

check: setup
	$(PY) -m sandbox check

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache
