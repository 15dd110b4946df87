# E2E-HIM experiment suite. Every target creates the environment in .venv/ when it is missing.
# `make train ARGS="trainer.max_epochs=2"` passes Hydra overrides through.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_STAMP := $(VENV)/.demo-installed-stamp
ARGS   ?=

# The machine's pip configuration offers a CPU-only torch wheel from a local folder that PyPI's torchvision
# cannot load with; an empty find-links list makes torch and torchvision resolve together from PyPI.
export PIP_FIND_LINKS :=

.PHONY: setup setup-demo train eval predict demo test test-fast lint format bench complexity clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip freeze --exclude-editable > $(VENV)/installed-versions.txt
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the package with its dev tools

# the web demo's extra (Gradio); its tests (tests/app/test_demo_app.py) need it, so .ci/run installs it
$(DEMO_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,demo]"
	$(BIN)/python -m pip freeze --exclude-editable > $(VENV)/installed-versions.txt
	# pymatting's foreground estimation (the demo's and predict's composites) compiles its numba kernels on
	# first use (about 10 s): once, here, for the demo and the tests; `make train` does not wait for it
	$(BIN)/python -c "from e2e_him.predictor.composites import foreground_ml; foreground_ml()"
	touch $(DEMO_STAMP)

setup-demo: $(DEMO_STAMP)  ## also install the web demo's extra (pip install -e ".[dev,demo]")

train: setup  ## train the default (quickstart) experiment on CPU
	$(BIN)/python -m e2e_him.train $(ARGS)

eval: setup  ## make eval ARGS="ckpt_path=... data=..."
	$(BIN)/python -m e2e_him.eval $(ARGS)

predict: setup  ## make predict ARGS="ckpt_path=... input=... output=..."
	$(BIN)/python -m e2e_him.predict $(ARGS)

demo: setup-demo  ## make demo ARGS="ckpt_path=...": the web demo on http://127.0.0.1:7860 (docs/demo.md)
	$(BIN)/python -m e2e_him.demo $(ARGS)

test: setup  ## the whole test suite, slow end-to-end tests included
	$(BIN)/python -m pytest -q $(ARGS)

test-fast: setup  ## the test suite without the slow end-to-end tests
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

lint: setup  ## ruff lint + format check
	$(BIN)/ruff check src tests scripts notebooks
	$(BIN)/ruff format --check src tests scripts notebooks

format: setup
	$(BIN)/ruff check --fix src tests scripts notebooks
	$(BIN)/ruff format src tests scripts notebooks

bench: setup  ## data-pipeline throughput and training-step timing (docs/benchmarks.md)
	$(BIN)/python scripts/bench_data.py $(ARGS)
	$(BIN)/python scripts/bench_step.py $(ARGS)

complexity: setup  ## parameters and GMACs at 640x640 (docs/architecture.md)
	$(BIN)/python scripts/complexity.py $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
