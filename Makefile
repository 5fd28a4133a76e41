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
CIFAR := $(if $(ADVSCALE_DATA),$(ADVSCALE_DATA)/cifar-10-python.tar.gz,cifar10)
DEMO := demo

.PHONY: demo test lint bench clean venv
venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

test: $(STAMP)
	$(BIN)/ruff check advscale tests benchmarks
	$(BIN)/pytest -q

demo: $(STAMP) $(DEMO)/train.h5 $(DEMO)/test.h5
	$(BIN)/advscale data info $(DEMO)/train.h5 $(DEMO)/test.h5 > $(DEMO)/data-info.jsonl
	@echo "demo: wrote $(DEMO)/train.h5 and $(DEMO)/test.h5 (records in $(DEMO)/data-info.jsonl)"

$(DEMO)/train.h5: | $(STAMP)
	mkdir -p $(DEMO)
	$(BIN)/advscale data import $(CIFAR) --split train -o $@ > $(DEMO)/train.info.jsonl

$(DEMO)/test.h5: | $(STAMP)
	mkdir -p $(DEMO)
	$(BIN)/advscale data import $(CIFAR) --split test -o $@ > $(DEMO)/test.info.jsonl

bench: $(STAMP)
	$(BIN)/python benchmarks/reader_throughput.py

lint: $(STAMP)
	$(BIN)/ruff check advscale tests benchmarks

clean:
	rm -rf $(DEMO)
