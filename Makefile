# Two commands for a fresh clone: `make run` and `make test`. Each bootstraps .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test worker lint bench bench-feed clean demo client

# genstudio, then the example adapters with their tests (issue #23: MEDIA_STORAGE=s3,
# GPU_PROVIDERS=...,fal; the suite runs their tests and an e2e test over them)
$(STAMP): pyproject.toml examples/s3_storage/pyproject.toml examples/fal_gpu/pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "genstudio needs Python 3.11+"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q -e 'examples/s3_storage[test]' -e 'examples/fal_gpu[test]'
	@touch $(STAMP)

## the service: API + in-process worker on the embedded default (http://127.0.0.1:8000, or PORT)
run: $(STAMP)
	$(BIN)/genstudio serve

## the product in one command: a user, credits, an image, an edit and a video job, the
## results' URLs, the ledger and the balance (uses `make run` if it is up, else starts one)
demo: $(STAMP)
	$(BIN)/genstudio demo $(DEMO_ARGS)

## a Taskiq worker (needs REDIS_URL)
worker: $(STAMP)
	$(BIN)/genstudio worker

## the benchmark: submission vs pgbench, and jobs through the worker (machine Postgres + Redis db 11);
## installs wrk and pgbench with apt-get when missing, or stops saying what to install
bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## the feed benchmark (issue #17): 1M posts, 100k users, ~5M likes; GET /v1/feed vs pgbench on
## the same SQL, and the feed's plans (a Seq Scan on posts or likes fails the run); ~4 minutes
bench-feed: $(STAMP)
	$(BIN)/python -m bench.feed $(BENCH_ARGS)

## the typed client for the app (clients/typescript, issue #20): regenerate src/schema.d.ts
## from the API's OpenAPI document, then type-check the client and its example (needs npm)
client: $(STAMP)
	cd clients/typescript && { test -d node_modules || npm ci --no-audit --no-fund; }
	$(BIN)/genstudio openapi --output clients/typescript/openapi.json
	cd clients/typescript && npm run --silent generate && npm run --silent check

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict
	$(BIN)/lint-imports

## the whole suite: lint, types, dependency rule, then pytest
## TEST_WORKERS: pytest-xdist workers (2: this machine's cores); 0 runs the suite in one process
TEST_WORKERS ?= 2

test: lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
