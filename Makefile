# The two commands of README.md:
#   make run   installs Ferry in .venv and opens it on the local sandbox
#   make test  installs Ferry with its test tools in .venv and runs every check
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install install-test bench screenshots bundle stress

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'

run: install
	$(BIN)/ferry sandbox --open

test: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy desktop_app
	tools/ensure-system-packages
	QT_QPA_PLATFORM=offscreen $(BIN)/pytest

# The window under Xvfb: 20 rounds of folder -> upload -> clear -> quit (about 6 min).
stress: install-test
	tools/ensure-system-packages
	FERRY_STRESS_ROUNDS=20 QT_QPA_PLATFORM=offscreen $(BIN)/pytest -q tests/gui/test_stress.py

bench: install-test
	$(BIN)/python bench/run.py

screenshots: install-test
	QT_QPA_PLATFORM=offscreen $(BIN)/python tools/screenshots.py

bundle:
	packaging/build
