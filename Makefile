# `make test` and `make demo` set everything up from nothing: a virtualenv in .venv, the CPU build
# of torch, pardecode and its test dependencies, and the Fashion-MNIST data (Debian package).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install data test demo bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the CPU wheel (a plain `torch` would pull a multi-GB CUDA build)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

data: $(FASHION)

$(FASHION):
	$(SUDO) apt-get update -qq
	$(SUDO) apt-get install -y -qq dataset-fashion-mnist

test: install data
	$(BIN)/python -m pytest

demo: install data
	$(BIN)/pardecode generate --prompt "a sneaker" --strategy sjd --batch 8 --seed 0 --out grid.png

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
