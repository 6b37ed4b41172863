"""Back ends: the NumPy reference interpreter, JAX/XLA and ONNX/onnxruntime.

Each back end is imported only when used, so ``import graphforge`` loads no jax or onnx module."""
__all__: list[str] = []
