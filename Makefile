# qat-tui developer commands. `make run` and `make test` work on a fresh clone (see README.md).
PYTHON ?= python3
VENV   ?= .venv
# torch/torchvision releases that this machine keeps on disk (a plain `torch` downloads several GB).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
SHARED_DATA ?= ../shared/data
PIP := $(VENV)/bin/pip --disable-pip-version-check

.PHONY: setup data run test test-fast clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_SPEC)
	$(PIP) install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# Real CIFAR-10 in both layouts (cifar-10-batches-py and an ImageFolder tree) from ../shared/data.
data/cifar-10-batches-py/batches.meta: | $(VENV)/.installed
	$(VENV)/bin/python $(SHARED_DATA)/make_cifar10.py data --format both

data: data/cifar-10-batches-py/batches.meta

# The main job: the wizard, starting from the quick preset on data/ (run directory runs/mobilenetv2).
run: setup data
	$(VENV)/bin/qat-tui --preset quick

test: setup
	$(VENV)/bin/python -m pytest -q

test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache
