"""ONNX lowering of ``rotary_embedding`` (``graphforge/ops/rotary.py``): one RotaryEmbedding node at
opset 23+ for float32 (onnxruntime's kernel); older opsets and other dtypes export the decomposition."""
from __future__ import annotations

from .lower import lowers

__all__: list[str] = []


def _native(node, target) -> bool:
    return target.opset >= 23 and all(i.type.dtype in ("float32", "int64") for i in node.inputs)


@lowers("rotary_embedding", when=_native)
def _rotary(ctx, args, attrs):
    extra = {"num_heads": int(attrs["num_heads"])} if attrs["num_heads"] else {}
    return [ctx.op("RotaryEmbedding", list(args), interleaved=int(bool(attrs["interleaved"])),
                   rotary_embedding_dim=int(attrs["rotary_embedding_dim"]), **extra)]
