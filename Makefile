# mlsnn — the two commands a user needs: `make demo` and `make test`.
# Both create .venv if missing and install what is missing (torch 2.13.0 CPU first, then the
# project with all extras, then Icarus Verilog through apt when we are root).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mlsnn-installed
JOBS   ?= 2

.PHONY: demo test setup iverilog bench regress clean

setup: $(STAMP) iverilog

$(STAMP): pyproject.toml
	@test -x $(PY) || { echo "[setup] creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "[setup] installing torch==2.13.0 (CPU) and mlsnn[all] into $(VENV)"
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all]'
	@touch $(STAMP)

iverilog:
	@if command -v iverilog >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ]; then \
		echo "[setup] installing Icarus Verilog with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog >/dev/null; \
	else \
		echo "[setup] Icarus Verilog (iverilog) is missing and we are not root:"; \
		echo "        run 'sudo apt-get install iverilog' (or put iverilog on PATH), then retry."; \
		exit 1; \
	fi

demo: setup
	$(VENV)/bin/mlsnn demo

test: setup
	$(PY) -m pytest -n $(JOBS) -q -p no:cacheprovider --durations=15

# The nightly random regression (not part of `make test`): 1,000 random networks, golden model
# vs RTL on the Amaranth simulator, on a local Dask cluster of $(JOBS) workers; failing networks
# and their reproducers in out/regress, a JUnit report in out/regress/junit.xml.
REGRESS_SEEDS ?= 0:1000
REGRESS_SIM   ?= amaranth
regress: setup
	$(VENV)/bin/mlsnn regress --seeds $(REGRESS_SEEDS) --jobs $(JOBS) --sim $(REGRESS_SIM) \
		--junit out/regress/junit.xml -o out/regress

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf out build sim_build .pytest_cache
