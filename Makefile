# The two Quickstart commands: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mlcheck-installed
# torch is pinned: pip resolves torch==2.13.0 to the CPU build on local disk here;
# a bare `torch` would pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
JOBS   ?= 2

.PHONY: demo test lint docs dist ci lock clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m pytest examples --mlcheck -p no:randomly -q

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) tests
	$(BIN)/mlcheck-lint .

lint: $(STAMP)
	$(BIN)/mlcheck-lint .

# The documentation site (mkdocs, in a venv of its own), as CI builds it.
DOCS_VENV ?= .venv-docs
docs:
	$(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/python -m pip install -q -r requirements/docs.txt -e .
	$(DOCS_VENV)/bin/mkdocs build --strict

# sdist + wheel, twine check, and a smoke test of the installed wheel in a fresh venv.
dist:
	scripts/check-dist

# Everything CI runs: make test, scripts/check-dist, then the tox matrix in parallel.
ci:
	.ci/run

# Re-lock requirements/*.txt from requirements/*.in (pip-tools).
lock:
	scripts/lock-requirements

clean:
	rm -rf $(VENV) .pytest_cache .mlcheck-lint-cache site dist build
