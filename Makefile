# MagNet for OpenMMLab — developer entry points.
#   make test   create/update .venv, install everything, run the test suite
#   make demo   the main job on the embedded default (generated dataset)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.magnet-installed
REQS := requirements.txt $(wildcard requirements/*.txt)
PYTEST_ARGS ?= -m "not slow"

.PHONY: install install-browser test test-all lint demo clean-venv

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version'
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) $(REQS)
	$(PY) -m pip install --upgrade pip 'setuptools<81' wheel
	# torch first and pinned, so nothing later can pull a CUDA build
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -r requirements/nodeps.txt
	touch $(STAMP)

install: $(STAMP)

# The web demo's browser test (pytest marker "browser") drives Debian's
# chromium: installed when missing (apt, with sudo when not root). Without
# apt or the right to use it, this says so and those tests skip.
CHROMIUM := /usr/bin/chromium
install-browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "install-browser: no apt-get; the browser tests will skip" \
	       "(install chromium as $(CHROMIUM))"; \
	else \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  { $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y --no-install-recommends chromium; } || \
	  echo "install-browser: could not install chromium; the browser" \
	       "tests will skip (apt-get install chromium)"; \
	fi

test: install install-browser
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest tests $(PYTEST_ARGS)

test-all: PYTEST_ARGS :=
test-all: test

# The main job: generate the referring dataset (if absent), train the CPU
# config, evaluate val/testA/testB, write prediction overlays (PNG).
demo: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) tools/main_job.py $(DEMO_ARGS)

lint: install
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
