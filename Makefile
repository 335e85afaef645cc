# Two commands do all set-up on a fresh machine:
#   make demo   the audit, the signals and a staged rotation against the offline sandbox
#   make test   the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SOURCES := setup.py c7n_apigw_certs.pth $(shell find c7n_apigw_certs -name '*.py' -o -name '*.j2')

.PHONY: demo test bench lint install clean

# A real (not editable) install: only it lays the .pth hook in site-packages (docs/aws-behaviour.md, fact 18).
$(BIN)/.installed: $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	rm -rf build  # setuptools' build/lib keeps modules since moved or deleted: they would ship
	$(BIN)/python -m pip install --quiet --disable-pip-version-check ".[sandbox,test]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/c7n-apigw-certs demo

# One pytest-xdist worker per core, and one more: a worker often waits (a command's process, nginx,
# the one test of real pacing), and the spare keeps the cores busy (2 cores: 3 workers 252 s,
# 2 workers 275-312 s). Each has its own sandbox server, temporary directories and HOME
# (tests/conftest.py). `make test TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: install
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal tests

bench: install
	$(BIN)/python benchmarks/run.py --rotate
	$(BIN)/python benchmarks/audit.py

lint: install
	$(BIN)/ruff check c7n_apigw_certs tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info out
