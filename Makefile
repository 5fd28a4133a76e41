# advscale: `make demo` and `make test` each build .venv from scratch when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch/torchvision pair that imports on the development machines; override for your platform,
# e.g. `make test TORCH_SPEC="torch torchvision"`.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed-stamp
# CIFAR-10 location: $ADVSCALE_DATA, else ../shared/data when present (else download).
export ADVSCALE_DATA ?= $(if $(wildcard ../shared/data/cifar-10-python.tar.gz),$(abspath ../shared/data),)
DEMO := demo

.PHONY: demo test lint bench clean venv
venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps robustbench==1.1.1  # the oracle extra's package (pins timm)
	touch $@

test: $(STAMP)
	$(BIN)/ruff check advscale tests benchmarks
	$(BIN)/pytest -q

# The main job: examples/quickstart, a small scaling study (train grid, attacks, FLOPs, fits,
# predictions, report) on the CPU; the report lands in report/report.html.
demo: $(STAMP)
	$(MAKE) -C examples/quickstart -j2 ADVSCALE=$(abspath $(BIN))/advscale \
		PYTHON=$(abspath $(BIN))/python ADVSCALE_DATA=$(ADVSCALE_DATA) \
		OUT=$(abspath $(DEMO)) REPORT=$(abspath report)

# Benchmarks print one JSON line each (ratios against a baseline run alongside); some take long.
BENCH ?= benchmarks/reader_throughput.py
bench: $(STAMP)
	for b in $(BENCH); do echo "== $$b" >&2; $(BIN)/python $$b || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check advscale tests benchmarks

clean:
	rm -rf $(DEMO) report
