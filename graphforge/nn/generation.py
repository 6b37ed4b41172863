"""In-graph autoregressive generation: the whole decoding loop is one ``gf.scan`` (a fixed number of
tokens; its stacked ``y`` is the tokens) or, with an end token, one ``gf.while_loop`` in the graph,
so ``generate(prompt)`` runs as one JAX computation and exports to one ONNX file (a ``Loop``).

:func:`generate` is model-agnostic: the model supplies ``step(token, state) -> (logits, state)``,
where ``state`` is any pytree of tensors carried through the loop (an LSTM's ``(h, c)``, a key/value
cache, a token buffer). Decoding is greedy (argmax) or samples with a ``temperature`` (optionally
from the ``top_k`` most likely tokens only), and stops after ``max_new_tokens`` or once every
sequence of the batch has produced ``eos_id``. Sampling is Gumbel-max with ``gf.random_uniform``
noise from a uint32 key (default: the graph's ``rng`` input), so JAX and onnxruntime draw the
same tokens for the same key.

:func:`generate_cached` is :func:`generate` for a Transformer stack with a key/value cache
(``graphforge/nn/kv_cache.py``): the prompt runs once (``prefill``), then every loop step runs only
the new token (``step``), attending over the cached keys and values."""
from __future__ import annotations

import numpy as np

from .. import ops
from ..errors import ShapeError
from ..trace.builder import current_builder
from ..trace.tensor import Tensor

__all__ = ["generate", "generate_cached"]


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


def _checked_step(step, tok, st, lg):
    new_lg, new_st = step(tok, st)
    _check_logits(new_lg, "generate: step")
    if tuple(new_lg.shape) != tuple(lg.shape) or new_lg.dtype != lg.dtype:
        raise ShapeError(f"generate: step returned logits {new_lg.type}, the loop carries {lg.type}")
    return new_lg, new_st


def _generate_counted(step, logits, state, n: int, temperature: float, top_k, key):
    """:func:`generate` without an end token: exactly ``n`` steps, so a ``gf.scan`` whose ``y`` is the
    token. Why not the ``while_loop``: its per-step bookkeeping — writing the token into a
    (batch, n) buffer (``Equal``/``Reshape``/``Where`` per step), the step counter and its ``Less``,
    the unchanged ``done`` flags (an ``Identity``) — is all unneeded when the count alone decides; the
    scan's stacked ``y`` (ONNX ``Loop`` scan output) holds the tokens, and the counter is carried only
    when sampling needs it for the step's key."""
    from ..ops.control_flow import scan

    sampling = temperature > 0.0

    def body(carry, _):
        i, lg, st = carry if sampling else (None, *carry)
        tok = _choose(lg, temperature, top_k, key + ops.cast(i, "uint32") if sampling else None)
        new_lg, new_st = _checked_step(step, tok, st, lg)
        return ((i + 1, new_lg, new_st) if sampling else (new_lg, new_st)), tok

    init = (ops.constant(0, "int64"), logits, state) if sampling else (logits, state)
    _, toks = scan(body, init, None, length=n)                            # (n, batch)
    return ops.transpose(toks, [1, 0]), ops.constant(n, "int64")


def generate(step, logits, state, max_new_tokens: int, *, eos_id: int | None = None, temperature: float = 0.0,
             top_k: int | None = None, key=None):
    """Autoregressive decoding inside the graph.

    ``logits`` (batch, vocab) predict the first new token (e.g. the last position of the prompt);
    ``step(tokens, state)`` takes the int64 (batch,) tokens just chosen and returns the logits of
    the next position and the new state (same types as given). Returns ``(tokens, count)``:
    ``tokens`` int64 (batch, max_new_tokens) and ``count`` the int64 scalar number of steps run.
    With ``eos_id`` a sequence that produced it repeats ``eos_id`` and the loop (a ``gf.while_loop``)
    ends when all have (unfilled positions hold ``eos_id``); without it exactly ``max_new_tokens``
    steps run, as a ``gf.scan`` whose stacked ``y`` is the tokens.

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
    if eos_id is None:
        return _generate_counted(step, logits, state, n, temperature, top_k, key)
    fill = int(eos_id)  # with an end token: a while_loop that stops once every sequence has produced it
    out0 = ops.full((batch, n), fill, "int64")
    done0 = ops.full((batch,), False, "bool")
    positions = ops.unsqueeze(ops.arange(n), [0])                          # (1, n)

    def cond(carry):
        i, _, _, _, done = carry
        remaining = ops.sum(ops.cast(ops.logical_not(done), "int64"))
        return ops.logical_and(ops.less(i, n), ops.greater(remaining, 0))

    def body(carry):
        i, lg, st, out, done = carry
        step_key = None if temperature == 0.0 else key + ops.cast(i, "uint32")
        tok = ops.where(done, fill, _choose(lg, temperature, top_k, step_key))
        done = ops.logical_or(done, ops.equal(tok, fill))
        out = ops.where(ops.equal(positions, i), ops.unsqueeze(tok, [1]), out)
        new_lg, new_st = _checked_step(step, tok, st, lg)
        return i + 1, new_lg, new_st, out, done

    count, _, _, tokens, _ = while_loop(cond, body, (ops.constant(0, "int64"), logits, state, out0, done0),
                                        max_iterations=n)
    return tokens, count


def generate_cached(stack, prompt, max_new_tokens: int, *, embed, head, memory=None,
                    memory_key_padding_mask=None, eos_id: int | None = None, temperature: float = 0.0,
                    top_k: int | None = None, key=None):
    """KV-cached autoregressive decoding of a Transformer ``stack`` inside the graph.

    The prompt runs once through ``stack.prefill`` (causal), which returns each layer's key/value
    cache sized for the prompt plus ``max_new_tokens``; then :func:`generate`'s loop runs one token
    per step through ``stack.step``, carrying ``(cache, position)``. The tokens equal those of
    re-running the whole prefix every step, at one position's work per token.

    Args:
        stack: a batch-first ``nn.TransformerEncoder`` (a decoder-only LM: causal self-attention) or
            ``nn.TransformerDecoder`` (then ``memory`` is required: cross-attention reads it).
        prompt: int64 (batch, plen) tokens; ``plen`` may be symbolic.
        max_new_tokens: how many tokens to generate (an int >= 1; the loop's bound).
        embed: ``embed(tokens, offset) -> (batch, s, d_model)``: the token embedding (plus positions)
            of int64 (batch, s) ``tokens`` whose first position is ``offset`` (the int 0 for the
            prompt, an int64 scalar tensor in the loop), e.g. ``lambda t, o: pos(emb(t), offset=o)``.
        head: ``head(h) -> logits``: (batch, d_model) -> (batch, vocab), e.g. a final norm and Linear.
        memory: the encoder output (batch, src, d_model) for a ``TransformerDecoder``; None for an encoder stack.
        memory_key_padding_mask: bool (batch, src), True at padded ``memory`` positions (decoder only).
        eos_id: as in :func:`generate`: a sequence that produced it repeats it; the loop ends when all have.
        temperature: 0 is greedy; above 0 samples from ``softmax(logits / temperature)``.
        top_k: sample among the ``top_k`` largest logits only.
        key: the sampling seed (uint32 scalar tensor or int); None takes the graph's ``rng`` input.

    Returns:
        ``(tokens, count)`` as :func:`generate`: int64 (batch, max_new_tokens) and the steps run.

    Raises:
        ShapeError: ``prompt`` is not an integer (batch, plen) tensor, ``stack`` has no
            ``prefill``/``step``, a ``TransformerDecoder`` gets no ``memory``, or an argument of
            :func:`generate` is invalid.

    Example:
        ```python
        emb, head = nn.Embedding(16, 8), nn.Linear(8, 16)
        enc = nn.TransformerEncoder(num_layers=1, d_model=8, nhead=2, dim_feedforward=16, dropout=0.0)
        pos = nn.PositionalEncoding(8)
        g = gf.trace(lambda p: nn.generate_cached(enc, p, 4, embed=lambda t, o: pos(emb(t), offset=o),
                                                  head=head)[0],
                     gf.TensorSpec((1, "plen"), "int64"), training=False)
        (tokens,) = gf.run(g, {"p": np.array([[1, 2, 3]])}, backend="reference")  # tokens.shape == (1, 4)
        ```
    """
    if not isinstance(prompt, Tensor) or prompt.ndim != 2 or not prompt.dtype.startswith(("int", "uint")):
        raise ShapeError(f"generate_cached: the prompt must be an integer (batch, plen) tensor, got "
                         f"{getattr(prompt, 'type', type(prompt).__name__)}")
    if not callable(getattr(stack, "prefill", None)) or not callable(getattr(stack, "step", None)):
        raise ShapeError(f"generate_cached: {type(stack).__name__} has no prefill/step (KV-cached decoding)",
                         hint="pass an nn.TransformerEncoder or nn.TransformerDecoder")
    is_decoder = hasattr(stack, "layers") and any(hasattr(layer, "multihead_attn") for layer in stack.layers)
    if is_decoder and memory is None:
        raise ShapeError("generate_cached: a TransformerDecoder needs the memory (the encoder output)")
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 1:
        raise ShapeError(f"generate_cached: max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    prefill_kw = {} if not is_decoder else {"memory": memory, "memory_key_padding_mask": memory_key_padding_mask}
    n = prompt.shape[1]
    h, cache = stack.prefill(embed(prompt, 0), max_len=n + max_new_tokens, **prefill_kw)

    def step(tok, st):
        cache, pos = st
        h, cache = stack.step(embed(ops.unsqueeze(tok, [1]), pos), cache=cache, pos=pos, **prefill_kw)
        return head(h[:, 0]), (cache, pos + 1)

    return generate(step, head(h[:, n - 1]), (cache, ops.dim_value(n)), max_new_tokens, eos_id=eos_id,
                    temperature=temperature, top_k=top_k, key=key)
