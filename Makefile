# MLOps Bridge — entry points. Every target sets itself up (make setup) first.
#   make course   execute every lesson headless into build/ (then release, grade and report the assignments)
#   make test     make lint, then the test suite (< 10 min on 2 cores)
#   make lint     ruff's lint rules (code, notebooks) and format (Python files), actionlint over the CI workflows
#   make test-full  everything, including the slow browser / PostgreSQL / full-notebook tests
#   make lab      open the course in JupyterLab
#   make bench    speed measurements, printed as ratios measured side by side (make bench-hub: the class hub)
#   make hub      the class on one machine: JupyterHub, accounts from deploy/roster.csv (as root; docs/deploy.md)

PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.installed
LAB_PORT ?= 8888
HUB_PORT ?= 8000
HUB_ROSTER ?= deploy/roster.csv
HUB_STATE ?= /srv/mlops-bridge
HUB_MEM_LIMIT ?= 2G
HUB_IDLE_TIMEOUT ?= 3600
PROXY  := deploy/node_modules/.bin/configurable-http-proxy
PYTEST_ARGS ?=
GRADE_FLAGS ?=

# nbgrader needs the venv's bin folder on PATH (alembic), and so do the mlflow commands the lessons start.
export PATH := $(BIN):$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup hub-deps course lint test test-full lab hub bench bench-hub clean help

help:
	@sed -n '1,9p' Makefile

setup: $(STAMP)

# Idempotent: re-runs only when the lock, the project metadata or this recipe changed.
$(STAMP): requirements.lock pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.5"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
# Bytecode for every installed package, once: PYTHONDONTWRITEBYTECODE (set here and on many machines) would
# otherwise make every Python process -- each sandboxed grading kernel included -- recompile what it imports.
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib/python*/site-packages >/dev/null
	touch $(STAMP)

# Quiet (no command echo): a progress bar and one line per lesson, then what each assessment step reports.
course: setup
	@$(BIN)/python -m mlops_helpers.notebooks notebooks --out build/notebooks \
		-p tracking_uri sqlite:///$(CURDIR)/build/mlflow.db
# Assessments, in a throwaway course copy (build/course): release, grade example submissions, report
# (build/report/<assignment>/). The examples are the course's own (trusted) code: graded in the sandbox when
# bubblewrap can run here, unsandboxed otherwise. Grading real submissions never falls back like this.
	@$(BIN)/python -m autograder.examples copy build/course
	@sandbox=; if ! $(BIN)/python -m autograder.sandbox --check 2>/dev/null; then sandbox=--no-sandbox; \
		echo "bubblewrap not available: grading the course's own example submissions unsandboxed (trusted code)"; fi; \
	set -e; for a in $$($(BIN)/python -m autograder.examples list); do \
		$(BIN)/python -m autograder release $$a --course-dir build/course --force; \
		$(BIN)/python -m autograder.examples submit $$a --course-dir build/course; \
		$(BIN)/python -m autograder grade $$a --course-dir build/course $$sandbox $(GRADE_FLAGS); \
		$(BIN)/python -m autograder feedback $$a --course-dir build/course; \
		$(BIN)/python -m autograder report $$a --course-dir build/course --out build/report/$$a; \
	done

# actionlint checks the CI workflows (.github/workflows). Its wheels exist for Linux x86-64 only: elsewhere the
# workflows are not linted here (CI lints them); under CI a missing actionlint is an error.
# ruff format --check: every Python file but those pyproject.toml's [tool.ruff.format] excludes (and says why).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@if [ -x $(BIN)/actionlint ]; then echo "$(BIN)/actionlint .github/workflows/*.yml"; \
		$(BIN)/actionlint .github/workflows/*.yml; \
	elif [ "$$CI" = true ]; then echo "actionlint is not installed in $(VENV) (CI=true): cannot lint the workflows"; exit 1; \
	else echo "actionlint has no wheel for this platform: .github/workflows not linted here (CI lints them)"; fi

test: setup lint
	$(BIN)/python -m pytest -m "not full" $(PYTEST_ARGS)

test-full: setup hub-deps
	$(BIN)/python -m pytest -m "full" $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]  # 5: no full tests selected

lab: setup
	$(BIN)/jupyter lab --ip 127.0.0.1 --port $(LAB_PORT) --notebook-dir $(CURDIR)

# JupyterHub's proxy (configurable-http-proxy, npm), pinned by deploy/package-lock.json, installed into deploy/.
hub-deps: $(PROXY)

$(PROXY): deploy/package.json deploy/package-lock.json
	cd deploy && npm ci --no-audit --no-fund --loglevel=error
	touch $(PROXY)

hub: setup hub-deps
	$(BIN)/python -m deploy.hub --roster $(HUB_ROSTER) --state $(HUB_STATE) --port $(HUB_PORT) \
		--mem-limit $(HUB_MEM_LIMIT) --idle-timeout $(HUB_IDLE_TIMEOUT)

bench: setup
	$(BIN)/python -m benchmarks

# The class on one machine, measured (as root): HUB_BENCH_SIZE students spawned at once, each running lesson 01 on
# the shared tracking server (10 at a time), then all submitting at once; spawn time, memory per idle and per busy
# student, CPU per lesson, submit-to-feedback latency -> build/hub/.
HUB_BENCH_SIZE ?= 30
bench-hub: setup hub-deps
	MLOPS_HUB_CLASS_SIZE=$(HUB_BENCH_SIZE) $(BIN)/python -m pytest tests/hub/test_class_hub.py -m full -q -s \
		-p no:cacheprovider -k "class_runs"

clean:
	rm -rf build release submitted autograded feedback gradebook.db .autograder mlflow.db mlruns notebooks/mlflow.db notebooks/mlruns
