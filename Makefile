# The two commands of the quick start: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 1416

.PHONY: run test lint install bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,deploy-test]'
	@touch $(STAMP)

# Serves ./pipelines (the default directory), seeded with the bundled examples on first run, so
# what you deploy at runtime lands there and never in the repository's examples.
run: $(STAMP)
	@test -d pipelines || cp -r examples/pipelines pipelines
	$(BIN)/hayhooks run --host $(HOST) --port $(PORT)

# The whole suite: lint, format check and type check first (seconds), then pytest.
test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache build dist
