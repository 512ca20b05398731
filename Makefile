# bertedu: two commands do everything on a fresh machine (Python 3.10+, no GPU needed).
#   make course   set up, then run every chapter headless in quick mode
#   make test     set up, then run the unit tests and every notebook under nbval
# Both create the virtual environment .venv on first use (and again when pyproject.toml changes).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU machines: a plain `torch` requirement pulls a multi-GB CUDA build, so we install a
# pinned release first. GPU users: `make setup TORCH_SPEC=torch` keeps pip's CUDA default.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: setup course test lab doctor clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

course: setup
	$(BIN)/bertedu course --quick

test: setup
	BERTEDU_QUICK=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lab: setup
	$(BIN)/jupyter lab notebooks/

doctor: setup
	$(BIN)/bertedu doctor

clean:
	rm -rf build .pytest_cache
