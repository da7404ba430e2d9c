# Everything a fresh machine needs: `make demo` and `make test` set up the virtual
# environment themselves (Python >= 3.10 and pip are the only prerequisites).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev

.PHONY: install system-deps demo test test-matrix lint bench bench-quick soak clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# PgBouncer for tests/deploy/test_pgbouncer.py (Debian's package; the binary lives in /usr/sbin).
# The PgBouncer tests fail, never skip, without it.
# MariaDB for the MySQL tests (Debian's mariadb-server; .ci/run starts it when it is down).
# The MySQL tests fail, never skip, without a server (tests/mysql_server.py).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@command -v pgbouncer >/dev/null 2>&1 || test -x /usr/sbin/pgbouncer || \
		$(SUDO) apt-get install -y pgbouncer || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y pgbouncer; }
	@command -v mariadbd >/dev/null 2>&1 || test -x /usr/sbin/mariadbd || \
		$(SUDO) apt-get install -y mariadb-server mariadb-client || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y mariadb-server mariadb-client; }

# The documentation site (docs/, mkdocs.yml) into site/; --strict fails on any warning
# (a broken link or anchor, a page missing from the navigation).
.PHONY: docs
docs: install
	$(VENV)/bin/mkdocs build --strict --quiet

demo: install
	$(PY) examples/demo.py

test: install system-deps docs
	$(PY) -m pytest

# The whole suite once per combination of ci/matrix.txt (oldest and newest supported
# versions), each in its own .venv-matrix/<name>, reused while its pins are unchanged.
# MATRIX=name... runs some of them; docs/development.md has the table.
MATRIX ?=
test-matrix: system-deps
	$(PYTHON) ci/matrix.py $(MATRIX)

lint: install
	$(VENV)/bin/ruff check checkpointer alembic tests examples benchmarks ci
	$(VENV)/bin/ruff format --check checkpointer alembic tests examples benchmarks ci
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict examples ci

bench: install
	$(PY) -m benchmarks
	$(PY) -m benchmarks --backend mysql

bench-quick: install
	$(PY) -m benchmarks --quick
	$(PY) -m benchmarks --backend mysql --quick

# Faults under load (not in CI): the agent-step workload at concurrency 16 on a private
# PostgreSQL (never the shared one) with backends killed every 30 s and a restart every
# 5 minutes; `make soak MINUTES=3` for a short run. Exits non-zero if a target is missed.
MINUTES ?= 20
soak: install
	$(PY) -m benchmarks.soak --minutes $(MINUTES) --json soak-report.json

clean:
	rm -rf $(VENV) .venv-matrix build dist .pytest_cache .mypy_cache .ruff_cache demo-state soak-report.json
