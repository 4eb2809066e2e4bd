# `make test` and `make demo` set everything up from nothing: a virtualenv in .venv, the CPU build
# of torch, pardecode and its test dependencies, and the Fashion-MNIST data (Debian package).
# `make test-lowest` runs the tests again against the lowest dependency versions pyproject.toml allows
# (the optional vqgan/big extras are left out there: their tests skip without them).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOWEST := .venv-lowest
FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# the CPU wheel (a plain `torch` would pull a multi-GB CUDA build)
TORCH := torch==2.13.0
EXTRAS := test,bench,vqgan,big,metrics
LOWEST_EXTRAS := test,bench

.PHONY: install data test test-lowest lint demo bench clean gpu-check

install: $(VENV)/.installed

# set-up output goes to a log, so the demo prints pardecode's own lines only
define setup_venv
	@echo "pardecode: installing into $(1) (log: $(1)/install.log)"
	@[ -x $(1)/bin/python ] || $(PYTHON) -m venv $(1)
	@( $(1)/bin/pip install --upgrade pip && $(1)/bin/pip install $(TORCH) \
	   && $(1)/bin/pip install $(2) -e '.[$(3)]' ) > $(1)/install.log 2>&1 \
	   || { tail -30 $(1)/install.log; exit 1; }
	@touch $(1)/.installed
endef

$(VENV)/.installed: pyproject.toml
	$(call setup_venv,$(VENV),,$(EXTRAS))

$(LOWEST)/.installed: pyproject.toml .ci/lowest.txt
	$(call setup_venv,$(LOWEST),-c .ci/lowest.txt,$(LOWEST_EXTRAS))

data: $(FASHION)

$(FASHION):
	@echo "pardecode: installing the Fashion-MNIST data (Debian package dataset-fashion-mnist)"
	@$(SUDO) apt-get update -qq >/dev/null
	@$(SUDO) apt-get install -y -qq dataset-fashion-mnist >/dev/null

test: install data
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test-lowest: $(LOWEST)/.installed data
	$(LOWEST)/bin/python -m pytest

demo: install data
	@$(BIN)/pardecode race --prompt "a sneaker" --batch 4 --rounds 3 --seed 0 --out grid.png

# the GPU check (docs/gpu.md): under 10 minutes on one CUDA GPU; GPU_PYTHON: a Python whose torch is a CUDA build
GPU_PYTHON ?= $(BIN)/python
gpu-check:
	$(GPU_PYTHON) perf/gpu_check.py --out runs/gpu-check

clean:
	rm -rf $(VENV) $(LOWEST) .pytest_cache .hypothesis
