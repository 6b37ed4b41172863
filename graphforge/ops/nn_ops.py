"""Neural-network ops: convolution, pooling, normalisation, dropout, embedding, attention.

(Filled in by the nn-ops work; the registry entries live here.)"""
from __future__ import annotations

__all__: list[str] = []
