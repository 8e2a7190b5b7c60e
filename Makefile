# Every target sets up what it needs: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
# torch is pinned here (the build this project is tested with); pyproject.toml declares a range
TORCH  := torch==2.13.0
OUT    := demo_out

.PHONY: install test demo bench lint clean chromium

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP) chromium
	$(BIN)/python -m pytest -q

# the report's browser test drives the system Chromium; installed from Debian where we may
chromium:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null \
	  || (apt-get install -y -qq chromium >/dev/null 2>&1 \
	      || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)) \
	  || echo "no Chromium: the report's browser test will be skipped"

demo: $(STAMP)
	@mkdir -p $(OUT)
	@echo "== fit: learn the density of sample_data/transactions.csv (6,006 card payments)"
	$(BIN)/flowcli fit sample_data/transactions.csv -o $(OUT)/transactions.flow --seed 0 \
	  --exclude id --positive amount --bounds refunded=0:1 --missing model
	@echo "== sample: 5,000 synthetic payments"
	$(BIN)/flowcli sample $(OUT)/transactions.flow -n 5000 --seed 1 -o $(OUT)/synthetic.parquet
	@echo "== score: flag the least likely 0.2 % of payments"
	$(BIN)/flowcli score $(OUT)/transactions.flow sample_data/transactions.csv \
	  --percentile --threshold 0.002 -o $(OUT)/scored.csv
	@echo "== report: how good the model and its synthetic payments are"
	$(BIN)/flowcli report $(OUT)/transactions.flow --data sample_data/transactions.csv \
	  --synthetic $(OUT)/synthetic.parquet -o $(OUT)/report.html
	@echo "== summary"
	@$(BIN)/python sample_data/summary.py sample_data/transactions.csv \
	  $(OUT)/synthetic.parquet $(OUT)/scored.csv

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check flowcli tests benchmarks sample_data

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
