"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` and their cells, on ``gf.scan``.

Parameter names, shapes, initialisation and gate order are PyTorch's, so a ``torch.nn.LSTM`` state
dict loads by name and gives the same outputs:

* cells: ``weight_ih`` (G·H, input), ``weight_hh`` (G·H, H), ``bias_ih``, ``bias_hh`` (G·H,);
* layers: the same per layer ``k`` and direction, ``weight_ih_l{k}`` / ``weight_ih_l{k}_reverse``…;
* gate order: LSTM ``i, f, g, o``; GRU ``r, z, n`` with ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``;
* all weights ~ U(-1/sqrt(H), 1/sqrt(H)).

A layer is time-major (seq, batch, features) unless ``batch_first``; a 2-D input is one unbatched
sequence. The input projection of every step is one matmul over the whole sequence before the loop;
only ``h @ W_hh^T`` runs inside the ``gf.scan`` body, whose length is the (symbolic) sequence length.
``lengths`` (int, (batch,)) makes a layer padding-aware like ``pack_padded_sequence``: past a
sequence's length its state stops changing and its outputs are zero, and the reverse direction starts
at the sequence's last real step. ``unroll=True`` traces a Python loop over a static length instead
of a scan (no control flow in the graph)."""
from __future__ import annotations

import math

from .. import ops
from ..errors import DTypeError, ShapeError, TraceError
from ..trace.builder import active_builder
from ..trace.tensor import Tensor
from . import init as _init
from .module import Module, _adopt
from .parameter import Parameter
from .regularization import Dropout

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU"]

_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def _uniform(hidden_size: int):
    bound = 1.0 / math.sqrt(hidden_size)
    return _init.uniform(-bound, bound)


def _linear(x, w, b):
    return ops.linear(x, w, b)


def _step(mode: str, xw, state, w_hh, b_hh, w_hr=None):
    """One time step from the precomputed input projection ``xw`` (batch, G·H): the new state
    (``h``, or ``(h, c)`` for an LSTM; ``w_hr`` (P, H) projects an LSTM's ``h`` to P features)."""
    if mode == "lstm":
        h, c = state
        gates = xw + _linear(h, w_hh, b_hh)
        i, f, g, o = ops.split(gates, 4, -1)
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        h = ops.sigmoid(o) * ops.tanh(c)
        return (h if w_hr is None else _linear(h, w_hr, None)), c
    if mode == "gru":
        xr, xz, xn = ops.split(xw, 3, -1)
        hr, hz, hn = ops.split(_linear(state, w_hh, b_hh), 3, -1)
        r, z = ops.sigmoid(xr + hr), ops.sigmoid(xz + hz)
        n = ops.tanh(xn + r * hn)
        return n + z * (state - n)
    pre = xw + _linear(state, w_hh, b_hh)
    return ops.tanh(pre) if mode == "rnn_tanh" else ops.relu(pre)


def _check_input(who: str, x, size: int, batch_first: bool):
    if not isinstance(x, Tensor):
        raise ShapeError(f"{who}: the input must be a Tensor, got {type(x).__name__}")
    if x.ndim not in (2, 3) or x.shape[-1] != size:
        want = "(batch, seq" if batch_first else "(seq, batch"
        raise ShapeError(f"{who}(input_size={size}) expects {want}, {size}) or unbatched (seq, {size}) input, "
                         f"got {x.type}")


class _CellBase(Module):
    mode = ""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype: str = "float32"):
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ShapeError(f"{type(self).__name__}: input_size and hidden_size must be >= 1, got "
                             f"{input_size}, {hidden_size}")
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        g = _GATES[self.mode] * hidden_size
        init = _uniform(hidden_size)
        self.weight_ih = Parameter((g, input_size), dtype, init=init)
        self.weight_hh = Parameter((g, hidden_size), dtype, init=init)
        self.bias_ih = Parameter((g,), dtype, init=init) if bias else None
        self.bias_hh = Parameter((g,), dtype, init=init) if bias else None

    def _prepare(self, x):
        name = type(self).__name__
        if not isinstance(x, Tensor) or x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ShapeError(f"{name}(input_size={self.input_size}) expects (batch, {self.input_size}) or "
                             f"({self.input_size},) input, got {getattr(x, 'type', type(x).__name__)}")
        batched = x.ndim == 2
        return (x if batched else ops.unsqueeze(x, [0])), batched

    def _state(self, s, x, batched):
        if s is None:
            return ops.zeros((x.shape[0], self.hidden_size), x.dtype)
        want = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        if tuple(s.shape) != tuple(want):
            raise ShapeError(f"{type(self).__name__}: the hidden state must be {list(want)}, got {s.type}")
        return s if batched else ops.unsqueeze(s, [0])

    def forward(self, x, hx=None):
        """One step of a single-state cell (RNN, GRU: ``self.mode``); LSTMCell carries ``(h, c)``."""
        x, batched = self._prepare(x)
        h = _step(self.mode, _linear(x, self.weight_ih, self.bias_ih), self._state(hx, x, batched),
                  self.weight_hh, self.bias_hh)
        return h if batched else ops.squeeze(h, [0])

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"


class RNNCell(_CellBase):
    """``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`` (or ``relu``); ``forward(x, h=None) -> h'``.

    Args:
        input_size: the features of ``x``.
        hidden_size: the features of the hidden state ``h``.
        bias: whether the cell has ``bias_ih`` and ``bias_hh``.
        nonlinearity: ``"tanh"`` or ``"relu"``.
        dtype: the parameters' dtype.

    Raises:
        ShapeError: a size < 1 or an unknown ``nonlinearity``; when called, ``x`` is not (batch, input_size) or (input_size,),
            or the given state has the wrong shape.

    Example:
        ```python
        g = gf.trace(nn.RNNCell(3, 4), gf.TensorSpec(("batch", 3)))
        (h,) = gf.run(g, {"x": np.ones((2, 3), np.float32)}, backend="reference")  # h.shape == (2, 4)
        ```
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 dtype: str = "float32"):
        if nonlinearity not in ("tanh", "relu"):
            raise ShapeError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        object.__setattr__(self, "mode", f"rnn_{nonlinearity}")  # before Module.__init__: sizes depend on it
        super().__init__(input_size, hidden_size, bias, dtype)


class GRUCell(_CellBase):
    """PyTorch's GRU cell (gates ``r, z, n``); ``forward(x, h=None) -> h'``.

    Args:
        input_size: the features of ``x``.
        hidden_size: the features of the hidden state ``h``.
        bias: whether the cell has ``bias_ih`` and ``bias_hh``.
        dtype: the parameters' dtype.

    Raises:
        ShapeError: a size < 1; when called, ``x`` is not (batch, input_size) or (input_size,),
            or the given state has the wrong shape.

    Example:
        ```python
        g = gf.trace(nn.GRUCell(3, 4), gf.TensorSpec(("batch", 3)))
        (h,) = gf.run(g, {"x": np.ones((2, 3), np.float32)}, backend="reference")  # h.shape == (2, 4)
        ```
    """
    mode = "gru"


class LSTMCell(_CellBase):
    """PyTorch's LSTM cell (gates ``i, f, g, o``); ``forward(x, (h, c)=None) -> (h', c')``.

    Args:
        input_size: the features of ``x``.
        hidden_size: the features of the hidden state ``h``.
        bias: whether the cell has ``bias_ih`` and ``bias_hh``.
        dtype: the parameters' dtype.

    Raises:
        ShapeError: a size < 1; when called, ``x`` is not (batch, input_size) or (input_size,),
            or the given state has the wrong shape.

    Example:
        ```python
        g = gf.trace(nn.LSTMCell(3, 4), gf.TensorSpec(("batch", 3)))
        h, c = gf.run(g, {"x": np.ones((2, 3), np.float32)}, backend="reference")  # both (2, 4)
        ```
    """
    mode = "lstm"

    def forward(self, x, hx=None):
        x, batched = self._prepare(x)
        h0, c0 = (None, None) if hx is None else hx
        state = (self._state(h0, x, batched), self._state(c0, x, batched))
        h, c = _step("lstm", _linear(x, self.weight_ih, self.bias_ih), state, self.weight_hh, self.bias_hh)
        return (h, c) if batched else (ops.squeeze(h, [0]), ops.squeeze(c, [0]))


def _scan(step, init, xs, reverse: bool, unroll: bool, recurrence: str = ""):
    """``gf.scan(step, init, xs, reverse=reverse)``, or the same loop unrolled at trace time.
    ``recurrence`` (a layer's mode) tags the scan node: its body is that layer's step, so the ONNX
    export may emit the native LSTM/GRU/RNN op (``runtimes/onnx/recurrent.py``)."""
    if not unroll:
        from ..ops.control_flow import scan

        carry, ys = scan(step, init, xs, reverse=reverse)
        if recurrence:
            ys.value.producer.attrs["recurrence"] = recurrence
        return carry, ys
    length = xs[0].shape[0]
    if not isinstance(length, int):
        raise ShapeError(f"unroll=True needs a static sequence length, got {length!r}",
                         hint="trace with a fixed length, or leave unroll=False to loop with gf.scan")
    carry, ys = init, [None] * length
    for t in (reversed(range(length)) if reverse else range(length)):
        carry, ys[t] = step(carry, tuple(ops.squeeze(ops.slice(x, [t], [t + 1], [0]), [0]) for x in xs))
    return carry, ops.stack(ys, 0)


class _RNNBase(Module):
    mode = ""
    proj_size = 0  # LSTM only: h is projected to this many features (PyTorch's proj_size)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 unroll: bool = False, dtype: str = "float32"):
        super().__init__()
        name = type(self).__name__
        if input_size < 1 or hidden_size < 1 or num_layers < 1:
            raise ShapeError(f"{name}: input_size, hidden_size and num_layers must be >= 1, got "
                             f"{input_size}, {hidden_size}, {num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.bidirectional, self.unroll = bias, batch_first, bidirectional, unroll
        self.num_directions = 2 if bidirectional else 1
        self.inter_dropout = Dropout(dropout)   # between layers, not after the last (PyTorch)
        self.dropout = float(dropout)
        g, init = _GATES[self.mode] * hidden_size, _uniform(hidden_size)
        out = self.out_size
        for k in range(num_layers):
            size = input_size if k == 0 else out * self.num_directions
            for sfx in self._suffixes(k):
                setattr(self, f"weight_ih{sfx}", Parameter((g, size), dtype, init=init))
                setattr(self, f"weight_hh{sfx}", Parameter((g, out), dtype, init=init))
                if bias:
                    setattr(self, f"bias_ih{sfx}", Parameter((g,), dtype, init=init))
                    setattr(self, f"bias_hh{sfx}", Parameter((g,), dtype, init=init))
                if self.proj_size:
                    setattr(self, f"weight_hr{sfx}", Parameter((self.proj_size, hidden_size), dtype, init=init))

    @property
    def out_size(self) -> int:
        """The features of ``h`` and of each direction's output: ``proj_size`` if set, else ``hidden_size``."""
        return self.proj_size or self.hidden_size

    def _suffixes(self, k: int):
        return [f"_l{k}"] + ([f"_l{k}_reverse"] if self.bidirectional else [])

    def _weights(self, sfx: str):
        get = lambda n: getattr(self, f"{n}{sfx}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr")

    # -- states ------------------------------------------------------------------------------------
    def _initial(self, hx, batch, dtype, batched: bool, what: str, size: int | None = None):
        """``hx`` as a list over layer×direction of (batch, size) tensors (zeros when None); ``size``
        defaults to ``hidden_size`` (an LSTM's h with ``proj_size`` passes that)."""
        n = self.num_layers * self.num_directions
        size = size or self.hidden_size
        if hx is None:
            zero = ops.zeros((batch, size), dtype)
            return [zero] * n
        want = (n, batch, size) if batched else (n, size)
        if not isinstance(hx, Tensor) or tuple(hx.shape) != tuple(want):
            label = "proj_size" if size != self.hidden_size else "hidden_size"
            raise ShapeError(f"{type(self).__name__}: the initial {what} must be {list(want)} "
                             f"(num_layers*num_directions, batch, {label}), got {getattr(hx, 'type', hx)}")
        if hx.dtype != dtype:
            raise DTypeError(f"{type(self).__name__}: the initial {what} is {hx.dtype}, the input {dtype}")
        if not batched:
            hx = ops.unsqueeze(hx, [1])
        return [ops.squeeze(t, [0]) for t in ops.split(hx, n, 0)]

    def _mask(self, lengths, seq, batch, dtype):
        """(seq, batch, 1) bool: step t of sequence b is real (t < lengths[b])."""
        if not isinstance(lengths, Tensor) or lengths.ndim != 1 or not lengths.dtype.startswith(("int", "uint")):
            raise ShapeError(f"{type(self).__name__}: lengths must be an integer (batch,) tensor, got "
                             f"{getattr(lengths, 'type', type(lengths).__name__)}")
        steps = ops.unsqueeze(ops.arange(seq), [1, 2])                          # (seq, 1, 1)
        return ops.less(steps, ops.unsqueeze(ops.cast(lengths, "int64"), [0, 2]))  # (seq, batch, 1)

    # -- one layer, one direction ------------------------------------------------------------------
    def _direction(self, x, state, sfx: str, reverse: bool, mask):
        w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(sfx)
        xw = _linear(x, w_ih, b_ih)                                             # (seq, batch, G·H): one matmul
        mode = self.mode

        def body(carry, xs):
            new = _step(mode, xs[0], carry, w_hh, b_hh, w_hr)
            if mask is not None:  # padding: keep the state, emit zeros
                m = xs[1]
                new = tuple(ops.where(m, a, b) for a, b in zip(new, carry)) if mode == "lstm" \
                    else ops.where(m, new, carry)
            h = new[0] if mode == "lstm" else new
            return new, (h if mask is None else ops.where(xs[1], h, 0.0))

        xs = (xw,) if mask is None else (xw, mask)
        # (ONNX's LSTM has no projection: a projected layer keeps the Scan)
        return _scan(body, state, xs, reverse, self.unroll, "" if w_hr is not None else mode)

    def forward(self, x, hx=None, lengths=None):
        name = type(self).__name__
        _check_input(name, x, self.input_size, self.batch_first)
        batched = x.ndim == 3
        if not batched:
            x = ops.unsqueeze(x, [1])
        elif self.batch_first:
            x = ops.transpose(x, [1, 0, 2])
        seq, batch = x.shape[0], x.shape[1]
        if self.mode == "lstm":
            h0, c0 = (None, None) if hx is None else hx
            states = list(zip(self._initial(h0, batch, x.dtype, batched, "hidden state h_0", self.out_size),
                              self._initial(c0, batch, x.dtype, batched, "cell state c_0")))
        else:
            states = self._initial(hx, batch, x.dtype, batched, "hidden state h_0")
        mask = None if lengths is None else self._mask(lengths, seq, batch, x.dtype)
        finals, out = [], x
        for k in range(self.num_layers):
            if k > 0:
                out = self.inter_dropout(out)
            outs = []
            for d, sfx in enumerate(self._suffixes(k)):
                final, ys = self._direction(out, states[k * self.num_directions + d], sfx, d == 1, mask)
                finals.append(final)
                outs.append(ys)
            out = outs[0] if len(outs) == 1 else ops.concat(outs, -1)
        if batched and self.batch_first:
            out = ops.transpose(out, [1, 0, 2])
        elif not batched:
            out = ops.squeeze(out, [1])
        axis = 0
        pack = (lambda ts: ops.stack(ts, axis)) if batched else (lambda ts: ops.concat(ts, axis))
        if self.mode == "lstm":
            return out, (pack([f[0] for f in finals]), pack([f[1] for f in finals]))
        return out, pack(finals)

    def step(self, x, hx):
        """One time step of every layer, without a loop: ``x`` (batch, input_size) and the state
        (``h`` (num_layers, batch, H), or ``(h, c)`` for an LSTM) -> (top layer's output (batch, H),
        new state). For decoding token by token inside ``gf.while_loop`` (unidirectional layers only).
        ``h`` (and ``c``) may also be a list of per-layer (batch, H) tensors; the new state then comes
        back as lists too — a decoding loop that carries them so needs no per-step split and stack."""
        # entered like __call__, so parameters get this module's names and nodes its scope
        builder = active_builder()
        if builder is None:
            raise TraceError(f"{type(self).__name__}.step was called outside gf.trace")
        if self._gf_path is None:
            _adopt(builder, self)
        with builder.scope(self._gf_path):
            return self._step_all(x, hx)

    def _step_all(self, x, hx):
        name = type(self).__name__
        if self.bidirectional:
            raise ShapeError(f"{name}.step: a bidirectional layer reads the whole sequence; it cannot step",
                             hint="decode with a unidirectional layer")
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[-1] != self.input_size:
            raise ShapeError(f"{name}.step expects (batch, {self.input_size}) input, got {getattr(x, 'type', x)}")
        batch = x.shape[0]
        per_layer = isinstance(hx[0] if self.mode == "lstm" else hx, (list, tuple))
        if self.mode == "lstm":
            h0, c0 = hx
            states = list(zip(self._layer_states(h0, batch, x.dtype, "hidden state h", self.out_size),
                              self._layer_states(c0, batch, x.dtype, "cell state c")))
        else:
            states = self._layer_states(hx, batch, x.dtype, "hidden state h")
        finals, out = [], x
        for k in range(self.num_layers):
            if k > 0:
                out = self.inter_dropout(out)
            w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(f"_l{k}")
            new = _step(self.mode, _linear(out, w_ih, b_ih), states[k], w_hh, b_hh, w_hr)
            finals.append(new)
            out = new[0] if self.mode == "lstm" else new
        pack = list if per_layer else (lambda ts: ops.stack(list(ts), 0))
        if self.mode == "lstm":
            return out, (pack(f[0] for f in finals), pack(f[1] for f in finals))
        return out, pack(finals)

    def _layer_states(self, hx, batch, dtype, what: str, size: int | None = None):
        """A step's state per layer: ``hx`` stacked (num_layers, batch, size) or a list of (batch, size)."""
        if not isinstance(hx, (list, tuple)):
            return self._initial(hx, batch, dtype, True, what, size)
        size = size or self.hidden_size
        want = (batch, size)
        if len(hx) != self.num_layers or not all(isinstance(t, Tensor) and tuple(t.shape) == tuple(want)
                                                 and t.dtype == dtype for t in hx):
            got = [getattr(t, "type", type(t).__name__) for t in hx]
            raise ShapeError(f"{type(self).__name__}.step: the {what} as a list must hold {self.num_layers} "
                             f"{dtype} {list(want)} tensors (one per layer), got {got}")
        return list(hx)

    def extra_repr(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in (("num_layers", self.num_layers), ("batch_first", self.batch_first),
                                                  ("dropout", self.dropout), ("bidirectional", self.bidirectional),
                                                  ("proj_size", self.proj_size))
                        if v not in (1, False, 0.0, 0))
        return f"{self.input_size}, {self.hidden_size}{extra}"


class RNN(_RNNBase):
    """Elman RNN (``nonlinearity`` ``tanh`` or ``relu``): ``forward(x, h_0=None, lengths=None) ->
    (output, h_n)``; output (seq, batch, D·H), h_n (D·num_layers, batch, H).

    Args:
        input_size: the features of ``x``.
        hidden_size: the features of the hidden state of each layer and direction.
        num_layers: stacked layers; layer k > 0 reads layer k-1's output.
        nonlinearity: ``"tanh"`` or ``"relu"``.
        bias: whether every layer has ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
        batch_first: ``x`` and the output are (batch, seq, features); False (default): (seq, batch, features).
        dropout: dropout probability on the output of every layer but the last (training only).
        bidirectional: also run each layer from the end; outputs concatenate both directions (D = 2).
        unroll: trace a Python loop over a static sequence length instead of a ``gf.scan``.
        dtype: the parameters' dtype.

    Raises:
        ShapeError: a size < 1 or an unknown ``nonlinearity``; when called, ``x`` is not (…, input_size) of rank 2 or 3,
            or an initial state or ``lengths`` has the wrong shape.
        DTypeError: when called, an initial state's dtype differs from the input's.

    Example:
        ```python
        g = gf.trace(nn.RNN(3, 4, batch_first=True), gf.TensorSpec((2, "seq", 3)))
        out, h_n = gf.run(g, {"x": np.ones((2, 5, 3), np.float32)}, backend="reference")  # (2, 5, 4), (1, 2, 4)
        ```
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 unroll: bool = False, dtype: str = "float32"):
        if nonlinearity not in ("tanh", "relu"):
            raise ShapeError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        object.__setattr__(self, "mode", f"rnn_{nonlinearity}")  # before Module.__init__: sizes depend on it
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, unroll, dtype)


class GRU(_RNNBase):
    """PyTorch's GRU: ``forward(x, h_0=None, lengths=None) -> (output, h_n)``.

    Args:
        input_size: the features of ``x``.
        hidden_size: the features of the hidden state of each layer and direction.
        num_layers: stacked layers; layer k > 0 reads layer k-1's output.
        bias: whether every layer has ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
        batch_first: ``x`` and the output are (batch, seq, features); False (default): (seq, batch, features).
        dropout: dropout probability on the output of every layer but the last (training only).
        bidirectional: also run each layer from the end; outputs concatenate both directions (D = 2).
        unroll: trace a Python loop over a static sequence length instead of a ``gf.scan``.
        dtype: the parameters' dtype.

    Raises:
        ShapeError: a size < 1; when called, ``x`` is not (…, input_size) of rank 2 or 3,
            or an initial state or ``lengths`` has the wrong shape.
        DTypeError: when called, an initial state's dtype differs from the input's.

    Example:
        ```python
        g = gf.trace(nn.GRU(3, 4, num_layers=2), gf.TensorSpec(("seq", 2, 3)))
        out, h_n = gf.run(g, {"x": np.ones((5, 2, 3), np.float32)}, backend="reference")  # (5, 2, 4), (2, 2, 4)
        ```
    """
    mode = "gru"


class LSTM(_RNNBase):
    """PyTorch's LSTM: ``forward(x, (h_0, c_0)=None, lengths=None) -> (output, (h_n, c_n))``.

    ``proj_size`` > 0 (< ``hidden_size``) is PyTorch's LSTM with projections: ``h_t = W_hr (o_t *
    tanh(c_t))`` with ``weight_hr_l{k}`` (proj_size, hidden_size); ``weight_hh`` is (4·H, proj_size),
    the output and ``h_n`` have ``proj_size`` features per direction, ``c_n`` keeps ``hidden_size``.

    Args:
        input_size: the features of ``x``.
        hidden_size: the features of the hidden state of each layer and direction.
        num_layers: stacked layers; layer k > 0 reads layer k-1's output.
        bias: whether every layer has ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
        batch_first: ``x`` and the output are (batch, seq, features); False (default): (seq, batch, features).
        dropout: dropout probability on the output of every layer but the last (training only).
        bidirectional: also run each layer from the end; outputs concatenate both directions (D = 2).
        proj_size: project ``h`` to this many features (0: no projection).
        unroll: trace a Python loop over a static sequence length instead of a ``gf.scan``.
        dtype: the parameters' dtype.

    Raises:
        ShapeError: a size < 1, or ``proj_size`` negative or not below ``hidden_size``; when called, ``x`` is not (…, input_size) of rank 2 or 3,
            or an initial state or ``lengths`` has the wrong shape.
        DTypeError: when called, an initial state's dtype differs from the input's.

    Example:
        ```python
        lstm = nn.LSTM(3, 4, batch_first=True, bidirectional=True)
        g = gf.trace(lambda x: lstm(x)[0], gf.TensorSpec((2, "seq", 3)))   # the output; [1] is (h_n, c_n)
        (out,) = gf.run(g, {"x": np.ones((2, 5, 3), np.float32)}, backend="reference")  # out.shape == (2, 5, 8)
        ```
    """
    mode = "lstm"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, unroll: bool = False, dtype: str = "float32"):
        if not isinstance(proj_size, int) or isinstance(proj_size, bool) or proj_size < 0:
            raise ShapeError(f"LSTM: proj_size must be an int >= 0, got {proj_size!r}")
        if proj_size and proj_size >= hidden_size:
            raise ShapeError(f"LSTM: proj_size ({proj_size}) must be smaller than hidden_size ({hidden_size})",
                             hint="as in PyTorch; proj_size=0 means no projection")
        object.__setattr__(self, "proj_size", proj_size)  # before Module.__init__: sizes depend on it
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, unroll, dtype)
