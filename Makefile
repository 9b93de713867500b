# Billing portal — developer and CI entry points.  `make help` lists the targets.
#
# Everything runs from the project venv (.venv, Python 3.11), which is built from the
# hash-pinned lock file requirements.lock.  CI (.ci/run) calls `make test`.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
LOCK := requirements.lock
# Rebuilt whenever the lock or the project metadata changes; otherwise `make install` is a no-op.
STAMP := $(VENV)/.install-stamp

EMULATOR_PORT ?= 12111
PORT ?= 8000
CHROMIUM := /usr/bin/chromium
AXE := tests/browser/node_modules/axe-core/axe.min.js
ARTIFACTS := artifacts
JUNIT := $(ARTIFACTS)/junit.xml
PYTEST_ARGS ?=
BENCH_ARGS ?=
PORTAL_BENCH_ARGS ?=

.PHONY: help venv install lock browser-deps lint format test emulator demo bench clean distclean

help:
	@echo "make install       create $(VENV) (Python 3.11) and install $(LOCK) + the project (editable)"
	@echo "make browser-deps  apt-get install chromium if $(CHROMIUM) is missing (root); npm ci axe-core for the tests"
	@echo "make lint          ruff check + mypy (strict) on stripe_emulator, billing and portal"
	@echo "make format        ruff format + ruff check --fix"
	@echo "make test          install, browser-deps, lint, then the whole pytest suite; fails on any skip/xfail"
	@echo "make emulator      run the Stripe emulator on 127.0.0.1:$(EMULATOR_PORT) (EMULATOR_PORT=...)"
	@echo "make demo          the portal with demo customers on http://127.0.0.1:$(PORT) (PORT=..., EMULATOR_PORT=...)"
	@echo "make bench         emulator benchmark -> bench/results/latest.json, then the portal benchmark"
	@echo "                   (PostgreSQL: DATABASE_URL, default .../portal_bench) -> bench/results/portal-latest.json;"
	@echo "                   then the extensions' due-date job's Stripe write rate -> bench/results/extensions-latest.json;"
	@echo "                   then the pre-dunning scan at 10k/100k/1M subscriptions (its own portal_predunning_bench"
	@echo "                   database) -> bench/results/predunning-latest.json;"
	@echo "                   BENCH_ARGS / PORTAL_BENCH_ARGS pass options; never part of make test"
	@echo "make lock          re-resolve $(LOCK) from pyproject.toml (uv, hashes)"
	@echo "make clean         remove caches, artifacts and build files (keeps $(VENV))"
	@echo "make distclean     clean + remove $(VENV)"

# --------------------------------------------------------------------------- environment

$(PY):
	$(PYTHON) -m venv $(VENV)

venv: $(PY)

# Install exactly the locked, hash-checked distributions (no resolver, no unpinned downloads),
# then the project itself in editable mode.  The build backend (setuptools) is in the lock, so the
# editable install runs without build isolation and needs nothing that is not pinned.
$(STAMP): $(LOCK) pyproject.toml | $(PY)
	@$(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "$(VENV) is not Python 3.11: make distclean")'
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation --editable .
	$(PY) -m pip check
	@touch $@

install: $(STAMP)

# Universal (any OS/arch) resolution for Python 3.11 with sha256 hashes of every distribution.
# Only needs the venv's interpreter and uv (taken at the version pinned in the current lock), not a
# full install, so it works right after pyproject.toml gained a dependency.
lock: | $(PY)
	@[ -x $(BIN)/uv ] || $(PY) -m pip install --quiet "$$(grep -oE '^uv==[^ ]+' $(LOCK))"
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --custom-compile-command "make lock" --output-file $(LOCK)

# Tests drive Debian's chromium through Playwright; Playwright's own browser downloads are not used.
browser-deps:
	@if [ -x $(CHROMIUM) ]; then \
		echo "browser-deps: $$($(CHROMIUM) --version 2>/dev/null || echo $(CHROMIUM))"; \
	elif [ "$$(id -u)" -ne 0 ]; then \
		echo "browser-deps: $(CHROMIUM) is missing; run 'make browser-deps' as root (apt-get install chromium)" >&2; \
		exit 1; \
	else \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update && apt-get install -y chromium; \
	fi
	@# axe-core, for the accessibility checks the browser tests inject into each page: from npm,
	@# exactly as tests/browser/package-lock.json pins it (integrity-checked), never from a CDN.
	@if [ ! -f $(AXE) ] || [ tests/browser/package-lock.json -nt $(AXE) ]; then \
		npm ci --prefix tests/browser --no-audit --no-fund --ignore-scripts --silent && touch $(AXE); \
	fi

# --------------------------------------------------------------------------- quality

# Both tools always run, so one report shows every problem; the target fails if either does.
lint: $(STAMP)
	@rc=0; \
	echo "+ ruff check ."; $(BIN)/ruff check . || rc=1; \
	echo "+ mypy stripe_emulator billing portal"; $(BIN)/mypy stripe_emulator billing portal || rc=1; \
	exit $$rc

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# --------------------------------------------------------------------------- tests

# "No test may be skipped": pytest exits 0 when tests are skipped or xfailed, so exit status alone
# cannot enforce it, and grepping the terminal summary is fragile (wording, -q, plugins).  Instead
# pytest writes a JUnit XML report and CHECK_NO_SKIPS fails the build if any <testcase> carries a
# <skipped> element: pytest.skip/skipif/importorskip and xfail all land there.  XPASS cannot
# slip through either, because pyproject sets xfail_strict = true (an XPASS is a failure).  The
# check also refuses an empty report, so a suite that collected nothing cannot pass.
define CHECK_NO_SKIPS
import sys
import xml.etree.ElementTree as ET

cases = list(ET.parse(sys.argv[1]).getroot().iter("testcase"))
skipped = [(c, s) for c in cases for s in c.findall("skipped")]
for case, s in skipped:
    name = case.get("classname", "") + "::" + case.get("name", "")
    print(f"NOT RUN: {name}: {s.get('type', '')} {s.get('message', '')}", file=sys.stderr)
if not cases:
    sys.exit("test: the JUnit report lists no test cases")
if skipped:
    sys.exit(f"test: {len(skipped)} of {len(cases)} tests were skipped or xfailed; every test must run and pass")
print(f"test: all {len(cases)} tests ran; none skipped")
endef
export CHECK_NO_SKIPS

test: $(STAMP) browser-deps lint
	@mkdir -p $(ARTIFACTS)
	@rm -f $(JUNIT)
	$(BIN)/pytest --junitxml=$(JUNIT) $(PYTEST_ARGS)
	@$(PY) -c "$$CHECK_NO_SKIPS" $(JUNIT)

# --------------------------------------------------------------------------- run

emulator: $(STAMP)
	$(PY) -m stripe_emulator --host 127.0.0.1 --port $(EMULATOR_PORT)

# The portal against its own emulator (started and stopped by the command), on a SQLite database
# recreated each run (var/demo.sqlite3), Celery tasks in-process (no REDIS_URL), emails written to
# var/mailbox and text messages to var/sms, both shown at /dev/mailbox/; no quiet hours, so the
# seeded failed payments' messages are in the mailbox whatever the hour.  Settings read at import
# are fixed here; the command sets the emulator's address and the webhook secret itself.
demo: $(STAMP)
	@mkdir -p var
	env -u REDIS_URL -u CELERY_BROKER_URL -u DJANGO_SETTINGS_MODULE CELERY_TASK_ALWAYS_EAGER=1 \
		DJANGO_DEBUG=1 DJANGO_HTTPS=0 PYTHONUNBUFFERED=1 \
		DATABASE_URL=sqlite:///$(CURDIR)/var/demo.sqlite3 \
		DJANGO_EMAIL_BACKEND=django.core.mail.backends.filebased.EmailBackend \
		DJANGO_EMAIL_FILE_PATH=$(CURDIR)/var/mailbox \
		BILLING_SMS_BACKEND=billing.sms.FileSmsBackend \
		BILLING_SMS_FILE_PATH=$(CURDIR)/var/sms \
		BILLING_POLICY='{"quiet_hours": {"start_hour": 0, "end_hour": 0}}' \
		$(PY) manage.py demo --port $(PORT) --emulator-port $(EMULATOR_PORT)

bench: $(STAMP)
	$(PY) bench/emulator_bench.py $(BENCH_ARGS)
	$(PY) bench/portal_bench.py $(PORTAL_BENCH_ARGS)
	$(PY) bench/extensions_bench.py $(EXTENSIONS_BENCH_ARGS)
	$(PY) bench/predunning_bench.py $(PREDUNNING_BENCH_ARGS)

# --------------------------------------------------------------------------- housekeeping

clean:
	rm -rf $(ARTIFACTS) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
