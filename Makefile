# qat-tui developer commands. `make run` and `make test` work on a fresh clone (see README.md).
PYTHON ?= python3
VENV   ?= .venv
# torch/torchvision releases that this machine keeps on disk (a plain `torch` downloads several GB).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# Where the real CIFAR-10 archive is kept (shared/data next to the clone); set SHARED_DATA=/path/to/shared/data
# for a clone elsewhere. Exported: the tests on real CIFAR-10 read it too.
SHARED_DATA ?= $(firstword $(wildcard ../shared/data /work/shared/data) ../shared/data)
export SHARED_DATA
PIP := $(VENV)/bin/pip --disable-pip-version-check

# Horizon's XJ3/J5 dockers: Python 3.8 + torch 1.10.2 + torchvision 0.11.3 (all on PyPI for cp38).
# The core, the horizon backend (on its test double) and the wizard are tested there too.
PYTHON38 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.8*/bin/python3.8) $(shell command -v python3.8 2>/dev/null))
VENV38 ?= .venv38
PIP38 := $(VENV38)/bin/pip --disable-pip-version-check

.PHONY: setup setup38 data run test test-py311 test-py38 test-fast bench clean po mo

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_SPEC)
	$(PIP) install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

# torch first, then torchvision without dependencies: pip's resolver was seen spinning for more than ten
# minutes when asked for the three together.
$(VENV38)/.installed: pyproject.toml
	@test -n "$(PYTHON38)" || { echo "no python3.8 found (pyenv install 3.8, or set PYTHON38=...)"; exit 1; }
	$(PYTHON38) -m venv $(VENV38)
	$(PIP38) install -q --upgrade pip
	$(PIP38) install -q torch==1.10.2
	$(PIP38) install -q --no-deps torchvision==0.11.3
	$(PIP38) install -q pillow 'numpy<2'
	$(PIP38) install -q -e '.[test]'
	touch $@

setup38: $(VENV38)/.installed

# Real CIFAR-10 in both layouts (cifar-10-batches-py and an ImageFolder tree) from ../shared/data.
data/cifar-10-batches-py/batches.meta: | $(VENV)/.installed
	@test -f $(SHARED_DATA)/make_cifar10.py || { echo "CIFAR-10 not found: $(SHARED_DATA)/make_cifar10.py is absent; run make SHARED_DATA=/path/to/shared/data"; exit 1; }
	$(VENV)/bin/python $(SHARED_DATA)/make_cifar10.py data --format both

data: data/cifar-10-batches-py/batches.meta

# The main job: the wizard, starting from the quick preset on data/ (run directory runs/mobilenetv2).
run: setup data
	$(VENV)/bin/qat-tui --preset quick

# Everything CI runs: Python 3.11 with the torch backend, then Horizon's Python 3.8 + torch 1.10
# environment (tests that need the torch backend skip there, saying why).
test: test-py311 test-py38

test-py311: setup
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest -q

test-py38: setup38
	$(VENV38)/bin/lint-imports
	$(VENV38)/bin/python -m pytest -q -p no:cacheprovider

test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "not slow"

bench: setup data
	$(VENV)/bin/python benchmarks/quick_preset.py --fresh

clean:
	rm -rf $(VENV) $(VENV38) runs .pytest_cache

# Translations (core/i18n.py): `make po` extracts every _()/N_()/ngettext() string of core/ and qat_tui/ and
# adds the new ones to the zh catalog (untranslated); translate them in core/locale/zh/LC_MESSAGES/qat_tui.po,
# then `make mo` compiles the .mo that qat-tui reads (committed: Horizon's dockers have no Babel).
# tests/test_i18n.py fails while a string has no zh translation or the .mo is older than the .po.
POT := build/qat_tui.pot
po: setup
	@mkdir -p build
	$(VENV)/bin/pybabel -q extract -F babel.cfg --no-location --sort-output --no-wrap --project qat-tui --version 0.1.0 -o $(POT) core qat_tui
	$(VENV)/bin/pybabel -q update -i $(POT) -d core/locale -D qat_tui -l zh --no-fuzzy-matching --ignore-obsolete --no-wrap

mo: setup
	$(VENV)/bin/pybabel compile -d core/locale -D qat_tui -l zh --statistics
