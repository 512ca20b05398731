# bertedu: two commands do everything on a fresh machine (Python 3.10+, no GPU needed).
#   make course   set up, then run every chapter headless in quick mode
#   make test     set up, then run the unit tests and every notebook under nbval; checks the
#                 student edition too (tests/test_student_edition.py)
#   make student-edition   write the notebooks without solutions to build/student/
#   make test-student      ... and run all of that edition under nbval (stubs say "not implemented yet")
# All create the virtual environment .venv on first use (and again when pyproject.toml changes).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU machines: a plain `torch` requirement pulls a multi-GB CUDA build, so we install a
# pinned release first. GPU users: `make setup TORCH_SPEC=torch` keeps pip's CUDA default.
TORCH_SPEC ?= torch==2.13.0
# Linux laptops without a GPU: PyPI's Linux torch wheel bundles CUDA (several GB). Set this to
# PyTorch's CPU wheel index (README, "Classroom set-up") to install the CPU build instead:
#   make setup TORCH_INDEX_URL=<PyTorch's CPU wheel index>
# Empty (the default): pip's usual sources, as CI uses them.
TORCH_INDEX_URL ?=
TORCH_PIP_ARGS := $(if $(strip $(TORCH_INDEX_URL)),--index-url $(TORCH_INDEX_URL),)
PYTEST_ARGS ?=
STUDENT_DIR ?= build/student

.PHONY: setup course test lab doctor student-edition test-student clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
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

student-edition: setup
	$(BIN)/bertedu student-edition $(STUDENT_DIR)

test-student: student-edition
	BERTEDU_QUICK=1 $(BIN)/python -m pytest -p no:cacheprovider $(STUDENT_DIR)

clean:
	rm -rf build .pytest_cache
