# Two entry points (see README): `make course` and `make test`.
# Both create ./.venv on first use and install everything into it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch is pinned here (not in pyproject) so that CPU-only machines can take a
# local CPU wheel; pyproject only asks for torch>=2.1.
TORCH  ?= torch==2.13.0

.PHONY: course test unit nbval install clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

install: $(VENV)/.installed

course: install
	$(VENV)/bin/jupyter lab notebooks/

test: install
	DIFFNOTES_FAST=1 $(PY) -m pytest tests notebooks --nbval --nbval-current-env \
		--nbval-sanitize-with notebooks/nbval_sanitize.cfg -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf $(VENV)
