# The two entry points of the README. Each sets up everything it needs (a virtualenv in
# .venv with the package and its test tools), so they work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test

demo: $(VENV)/.installed
	$(BIN)/mlops demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest

# The build tools go in first and the package builds without isolation: an isolated build would
# install JupyterLab a second time just to run jlpm. `jupyter-builder develop` links the built
# JupyterLab extension, so a `jlpm build` in labextension/ shows up on reload.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet hatchling editables hatch-jupyter-builder 'jupyterlab>=4.2,<5'
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pip install --quiet --no-build-isolation -e '.[test]'
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/jupyter-builder develop --overwrite . > /dev/null
	touch $@
