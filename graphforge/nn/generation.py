"""In-graph autoregressive generation: the whole decoding loop is one ``gf.while_loop`` in the
graph, so ``generate(prompt)`` runs as one JAX computation and exports to one ONNX file (a ``Loop``).

:func:`generate` is model-agnostic: the model supplies ``step(token, state) -> (logits, state)``,
where ``state`` is any pytree of tensors carried through the loop (an LSTM's ``(h, c)``, a key/value
cache, a token buffer). Decoding is greedy (argmax) or samples with a ``temperature`` (optionally
from the ``top_k`` most likely tokens only), and stops after ``max_new_tokens`` or once every
sequence of the batch has produced ``eos_id``. Sampling is Gumbel-max with ``gf.random_uniform``
noise from a uint32 key (default: the graph's ``rng`` input), so JAX and onnxruntime draw the
same tokens for the same key."""
from __future__ import annotations

import numpy as np

from .. import ops
from ..errors import ShapeError
from ..trace.builder import current_builder
from ..trace.tensor import Tensor

__all__ = ["generate"]


def _check_logits(logits, who: str):
    if not isinstance(logits, Tensor) or logits.ndim != 2 or not logits.dtype.startswith(("float", "bfloat")):
        raise ShapeError(f"{who}: logits must be a float (batch, vocab) tensor, got "
                         f"{getattr(logits, 'type', type(logits).__name__)}")


def _choose(logits, temperature: float, top_k: int | None, key):
    """The next tokens (int64 (batch,)): argmax, or a sample of softmax(logits / temperature)
    restricted to the ``top_k`` largest logits (ties at the k-th value are kept)."""
    if temperature == 0.0:
        return ops.argmax(logits, -1)
    scaled = logits * (1.0 / temperature)
    if top_k is not None and top_k < logits.shape[-1]:
        rest = scaled
        for _ in range(top_k - 1):  # drop the largest k-1 values; the max of the rest is the k-th
            rest = ops.where(rest >= ops.max(rest, -1, keepdims=True), -float("inf"), rest)
        kth = ops.max(rest, -1, keepdims=True)
        scaled = ops.where(scaled >= kth, scaled, -float("inf"))
    u = ops.random_uniform(key, scaled, scaled.dtype)                     # in (0, 1): finite logs
    return ops.argmax(scaled - ops.log(-ops.log(u)), -1)                  # Gumbel-max = a categorical draw


def generate(step, logits, state, max_new_tokens: int, *, eos_id: int | None = None, temperature: float = 0.0,
             top_k: int | None = None, key=None):
    """Autoregressive decoding inside the graph.

    ``logits`` (batch, vocab) predict the first new token (e.g. the last position of the prompt);
    ``step(tokens, state)`` takes the int64 (batch,) tokens just chosen and returns the logits of
    the next position and the new state (same types as given). Returns ``(tokens, count)``:
    ``tokens`` int64 (batch, max_new_tokens) and ``count`` the int64 scalar number of steps run.
    With ``eos_id`` a sequence that produced it repeats ``eos_id`` and the loop ends when all have
    (unfilled positions hold ``eos_id``); without it unfilled positions are 0.

    ``temperature`` 0 is greedy; above 0 tokens are sampled from ``softmax(logits / temperature)``,
    among the ``top_k`` largest logits when given. ``key`` (uint32 scalar tensor or int) seeds the
    draws; None takes a key from the graph's ``rng`` input. Step ``i`` uses ``key + i``."""
    _check_logits(logits, "generate")
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ShapeError(f"generate: temperature must be a number >= 0, got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise ShapeError(f"generate: top_k must be an int >= 1, got {top_k!r}")
    temperature = float(temperature)
    if temperature > 0:
        if key is None:
            builder = current_builder()
            key = Tensor(builder.rng_key(), builder)
        elif not isinstance(key, Tensor):
            key = ops.constant(np.uint32(key))
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 1:
        raise ShapeError(f"generate: max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    from ..ops.control_flow import while_loop

    n, batch = max_new_tokens, logits.shape[0]
    fill = 0 if eos_id is None else int(eos_id)
    out0 = ops.full((batch, n), fill, "int64")
    done0 = ops.full((batch,), False, "bool")
    positions = ops.unsqueeze(ops.arange(n), [0])                          # (1, n)

    def cond(carry):
        i, _, _, _, done = carry
        if eos_id is None:  # no sequence can end early: the count alone decides
            return ops.less(i, n)
        remaining = ops.sum(ops.cast(ops.logical_not(done), "int64"))
        return ops.logical_and(ops.less(i, n), ops.greater(remaining, 0))

    def body(carry):
        i, lg, st, out, done = carry
        step_key = None if temperature == 0.0 else key + ops.cast(i, "uint32")
        tok = _choose(lg, temperature, top_k, step_key)
        if eos_id is not None:
            tok = ops.where(done, fill, tok)
            done = ops.logical_or(done, ops.equal(tok, fill))
        out = ops.where(ops.equal(positions, i), ops.unsqueeze(tok, [1]), out)
        new_lg, new_st = step(tok, st)
        _check_logits(new_lg, "generate: step")
        if tuple(new_lg.shape) != tuple(lg.shape) or new_lg.dtype != lg.dtype:
            raise ShapeError(f"generate: step returned logits {new_lg.type}, the loop carries {lg.type}")
        return i + 1, new_lg, new_st, out, done

    count, _, _, tokens, _ = while_loop(cond, body, (ops.constant(0, "int64"), logits, state, out0, done0),
                                        max_iterations=n)
    return tokens, count
