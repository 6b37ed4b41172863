"""graphforge's benchmark suite (``make bench`` runs ``benchmarks/run.py``); see docs/benchmarks.md.

The modules are scripts (``python benchmarks/bench_train_step.py``) that also import as
``benchmarks.<name>`` so the runner and the smoke test share their code."""
__all__: list[str] = []
