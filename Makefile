# Entry points (see README): `make course`, `make test`, `make slides`.
# All create ./.venv on first use and install everything into it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch is pinned here (not in pyproject) so that CPU-only machines can take a
# local CPU wheel; pyproject only asks for torch>=2.1.
TORCH  ?= torch==2.13.0
# Jupyter refuses to start as root without --allow-root (containers, CI machines).
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
SLIDES ?= slides

.PHONY: course test unit nbval lint install browser slides exercises clean

# jupyterlab-rise pulls in jupyterlab-mathjax3, a JupyterLab 3 extension that Lab 4 flags as
# incompatible; Lab 4 (and RISE's page) render math with their own MathJax, so it is removed.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test,slides]"
	$(PY) -m pip uninstall --quiet --yes jupyterlab-mathjax3 2>/dev/null || true
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(VENV)/.installed

# Chromium for tests/test_browser.py (Playwright drives it; `playwright install` is never used).
# Installed from Debian's packages when missing and we are root; otherwise the test says what to do.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium (apt-get) for the browser test"; \
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "chromium is not installed: the browser test will skip (fail under CI=true);" \
		     "install it with: sudo apt-get install chromium"; \
	fi

# Opens JupyterLab on the chapters in the default mode: fast sizes on a CPU (DIFFNOTES_FULL=1 for
# the full ones; a CUDA GPU selects them too). Slides: see README, "Presenting".
course: install
	$(VENV)/bin/jupyter lab $(ALLOW_ROOT) notebooks/

# Two pytest workers (pytest-xdist), one notebook per worker at a time (--dist loadfile keeps a
# notebook's cells on one kernel): on a 2-core CI machine the suite takes about 60 % of the serial
# time. OMP_WAIT_POLICY=PASSIVE stops torch's idle threads spinning while the other worker computes.
# PYTEST_WORKERS=0 runs everything in one process. The notebooks run with the network in float32
# (see `nbval` below), then ruff checks the code.
PYTEST_WORKERS ?= 2
test: install browser
	$(NBVAL) tests notebooks $(PYTEST_ARGS)
	$(VENV)/bin/ruff check diffnotes tests scripts

# The fast lane: unit tests only (no notebooks, no browser, no mutation runs).
unit: install
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest tests -p no:cacheprovider -n $(PYTEST_WORKERS) \
		--ignore tests/test_browser.py --ignore tests/test_mutations.py $(PYTEST_ARGS)

# The committed outputs must not depend on the CPU: bf16 autocast rounds differently on an AMD EPYC
# (AVX-512 BF16) and an Intel Xeon (AMX). Chapters are executed as `make course` runs them (bf16 where
# the CPU has it); nbval then runs them with the network in float32 (DIFFNOTES_BF16=0), so every
# output that depends on bf16 numerics fails here, on any CPU, before it can fail on another one.
# `make nbval NB=notebooks/08_guidance.ipynb` validates one chapter the same way.
NBVAL := DIFFNOTES_BF16=0 DIFFNOTES_FAST=1 OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest --nbval --nbval-current-env \
	--nbval-sanitize-with notebooks/nbval_sanitize.cfg -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile
NB ?= notebooks
nbval: install
	$(NBVAL) $(NB)

# The linter alone (pyproject.toml, [tool.ruff]); `make test` runs it after the tests.
lint: install
	$(VENV)/bin/ruff check diffnotes tests scripts

# Student copies of the lessons in exercises/: each solution replaced by a stub with its hint.
exercises: install
	$(PY) scripts/exercises/make_copies.py --out exercises

# One offline reveal.js deck per chapter in $(SLIDES)/ (hand out the whole folder).
slides: install
	$(PY) scripts/slides/build_decks.py --out $(SLIDES)

clean:
	rm -rf $(VENV)
