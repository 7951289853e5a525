# Handover: `make run` starts the whole stack on embedded defaults; `make test` runs the whole suite
# against a throwaway PostgreSQL and Redis. Both install what is missing first.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TEST_STAMP := $(VENV)/.installed-test-stamp

.PHONY: install system-deps run test lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU wheel on these machines; an unpinned torch would pull several GB of CUDA packages.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

# The tests' model server (llama.cpp, compiled once): only `make test` waits for it.
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,test-server]"
	touch $@

install: $(STAMP)

system-deps:
	scripts/system-deps.sh

run: install
	$(BIN)/python manage.py runstack

test: $(TEST_STAMP) system-deps
	$(BIN)/lint-imports  # the layers and engines of docs/ARCHITECTURE.md; a new upward import fails here
	scripts/with-test-services.sh $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) var
