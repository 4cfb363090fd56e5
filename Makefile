# The two commands a newcomer needs:
#   make demo   -> install, create the development hierarchy (once), serve on http://127.0.0.1:8000
#   make test   -> install with dev tools, run every test (SQLite always; PostgreSQL when reachable)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export MPKI_HOME ?= $(CURDIR)/var
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: demo test lint bench install install-dev system-deps clean

# SoftHSM2 (the development HSM), OpenSC's pkcs11-tool, OpenSSL and Chromium (browser tests), from Debian's
# packages when missing.
system-deps:
	@missing=""; \
	[ -e /usr/lib/softhsm/libsofthsm2.so ] || missing="$$missing softhsm2"; \
	command -v pkcs11-tool >/dev/null 2>&1 || missing="$$missing opensc"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python scripts/fetch_htmx.py

install-dev: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python scripts/fetch_htmx.py

demo: install
	@test -f "$(MPKI_HOME)/keys/keystore.json" || $(BIN)/mpki init --dev
	$(BIN)/mpki serve --host 127.0.0.1 --port 8000

test: system-deps install-dev
	@if [ -z "$$MPKI_TEST_POSTGRES_URL" ] && $(BIN)/python scripts/pg_reachable.py "$(PG_URL)"; then \
		echo "PostgreSQL reachable: tests run on SQLite and PostgreSQL"; \
		export MPKI_TEST_POSTGRES_URL="$(PG_URL)"; \
	fi; \
	$(BIN)/python -m pytest -n 2 --dist loadgroup

lint: install-dev
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: system-deps install-dev
	$(BIN)/python bench/issue.py --n 20000 --db sqlite
	$(BIN)/python bench/issue.py --n 20000 --db postgres
	$(BIN)/python bench/sign.py --n 20000
	$(BIN)/python bench/crl.py
	$(BIN)/python bench/ocsp.py --n 100000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
