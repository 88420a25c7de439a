# The README's two commands: `make demo` (main job on the built-in synthetic data) and `make test`.
# Each creates .venv and installs the project on first use; later runs reuse it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/demo
NAME ?= model_step
ARGS ?=
# Test processes (pytest-xdist): many tests wait on single-threaded work (subprocess start-up, tracing), so two
# processes keep two cores busy. Each holds a TensorFlow runtime (~1-2 GB): raise it only with the memory.
TEST_WORKERS ?= 2
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

.PHONY: setup test demo bench clean

setup: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=70" wheel
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=25 tests

demo: $(STAMP)
	$(PY) -m maskrnn_tf.demo --run_dir=$(RUN_DIR)

bench: $(STAMP)  # make bench NAME=model_step ARGS="--repeats 3"
	$(PY) -m bench $(NAME) $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
