# graphforge — every target creates .venv and installs what it needs on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev

.PHONY: install test test-slow demo bench gpu-check fuzz conformance clean docs

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=77" wheel
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

test-slow: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder -m slow

demo: $(STAMP)
	$(PY) examples/mlp.py

# bench: PyTorch (the local torch==2.13.0 wheel) and onnxscript come from the optional `bench`
# extra, installed only here — never a dependency of graphforge itself.
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) benchmarks/run.py $(BENCH_ARGS)

# gpu-check: one short prepared GPU run (train steps fp32/bf16 vs torch CUDA, ORT CUDA vs torch.onnx,
# peak memory) writing benchmarks/gpu_results/gpu_check.{json,md}; needs a CUDA jaxlib and a CUDA torch
# in the venv. On a machine without a GPU it says so and exits 0. Capped at 5 minutes.
gpu-check: $(BENCH_STAMP)
	timeout 300 $(PY) benchmarks/gpu_check.py $(GPU_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache site

# conformance: two processes share the cases; XLA compiles at LLVM -O0 as in the test suite (values
# within onnx's tolerances are what is checked; measured: the same 1812 cases pass, 112 s vs 388 s).
# A caller's XLA_FLAGS wins.
conformance: $(STAMP)
	XLA_FLAGS="$${XLA_FLAGS:---xla_backend_optimization_level=0}" $(PY) -m tests.conformance.run --per-op --check --jobs 2

# 10,000 random graphs through every back end's oracles, then 50 SIGKILLs of a checkpointing run
fuzz: $(STAMP)
	$(PY) tests/fuzz/run.py --graphs 10000 --jax-every 20 --kill-runs 50

# docs: the API reference and guides (MkDocs + mkdocstrings, the `docs` extra) built offline into
# site/, warnings as errors
DOCS_STAMP := $(VENV)/.installed-docs
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict
