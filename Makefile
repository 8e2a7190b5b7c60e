# Every target sets up what it needs: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
# torch is pinned here (the build this project is tested with); pyproject.toml declares a range
TORCH  := torch==2.13.0
OUT    := demo_out

.PHONY: install test demo bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	@mkdir -p $(OUT)
	@echo "== fit: learn the density of sample_data/sensors.csv"
	$(BIN)/flowcli fit sample_data/sensors.csv -o $(OUT)/sensors.flow --seed 0
	@echo "== sample: 2,000 synthetic readings"
	$(BIN)/flowcli sample $(OUT)/sensors.flow -n 2000 --seed 1 -o $(OUT)/synthetic.parquet
	@echo "== score: log-likelihood of 20 new readings"
	$(BIN)/flowcli score $(OUT)/sensors.flow sample_data/sensors_new.csv -o $(OUT)/scored.csv
	@echo "== summary"
	@$(BIN)/python sample_data/summary.py sample_data/sensors.csv $(OUT)/synthetic.parquet $(OUT)/scored.csv

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check flowcli tests benchmarks sample_data

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
