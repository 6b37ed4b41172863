"""Embedding: a lookup table of ``num_embeddings`` vectors of size ``embedding_dim``."""
from __future__ import annotations

import numpy as np

from .. import ops
from . import init as _init
from .module import Module
from .parameter import Parameter

__all__ = ["Embedding"]


def _normal_with_padding(padding_idx):
    base = _init.normal(1.0)

    def init(shape, rng, dtype="float32"):
        table = np.array(base(shape, rng, dtype))
        if padding_idx is not None:
            table[padding_idx] = 0
        return table
    return init


class Embedding(Module):
    """``weight[indices]`` with weight (num_embeddings, embedding_dim) ~ N(0, 1) (PyTorch's init);
    the ``padding_idx`` row starts at zero.

    Args:
        num_embeddings: the vocabulary size.
        embedding_dim: the size of each vector.
        padding_idx: None, or an index whose row starts at zero.
        dtype: the parameters' dtype.

    Example:
        ```python
        emb = nn.Embedding(1000, 64)      # int64 (batch, seq) -> (batch, seq, 64)
        ```
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 dtype: str = "float32"):
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.weight = Parameter((num_embeddings, embedding_dim), dtype, init=_normal_with_padding(padding_idx))

    def forward(self, indices):
        return ops.embedding(self.weight, indices)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
