"""Random *valid* graphs from the op registry's own type rules (NNSmith-style).

Every op, its attributes and its input types come from the registry: an op is tried on values
already in the graph (reusing them with the sample's attributes, or broadcasting for elementwise
ops) and the op's type rule decides whether it fits; otherwise its conformance sample's input
types are used as fresh leaves. The generator keeps the concrete float64 value of every value it
creates (computed with the op's NumPy reference), so it can choose inputs that keep every result
finite and well conditioned: ``log``/``sqrt`` only see values >= 0.1, discontinuous ops
(comparisons, ``sign``, ``argmax``, float->int casts) only see values that are bit-identical in
float32 and float64 ("exact"), and ties are kept away from ``max``/``maximum``/``relu``.

Two graphs are built side by side from the same choices: the graph under test (float32, with the
samples' other dtypes) and its float64 twin, the reference oracle. All choices go through a
``Chooser``, so the same generator runs from a seed (``RandomChooser``) or under hypothesis
(``DataChooser``), which shrinks failing graphs.
"""
from __future__ import annotations

import abc
import random
from dataclasses import dataclass, field

import numpy as np

from graphforge import dtypes as _dt
from graphforge.errors import GraphforgeError
from graphforge.ir.dims import collect_requirements, dim_symbols, resolve_shape
from graphforge.ir.graph import Graph, Value
from graphforge.ir.types import TensorType
from graphforge.ops.registry import all_ops, check_attrs, get_op, infer_types
from graphforge.ops.samples import _fill
from graphforge.trace.builder import Builder

from .regions import REGION_OPS, try_region_op

__all__ = ["Chooser", "RandomChooser", "DataChooser", "FuzzCase", "generate", "FUZZ_OPS", "EXCLUDED",
           "registry_ops", "drawable"]

# Ops whose result jumps when an input moves by one ulp: they only read "exact" values.
DISCONTINUOUS = {"sign", "equal", "not_equal", "greater", "greater_equal", "less", "less_equal",
                 "argmax", "argmin", "floor", "ceil", "round", "mod", "isnan", "isinf"}
# Ops whose result is bit-identical in float32 and float64 when their inputs are.
EXACT_PRESERVING = {"reshape", "transpose", "slice", "concat", "gather", "squeeze", "unsqueeze", "flatten",
                    "broadcast_to", "pad", "split", "neg", "abs", "relu", "sign", "max", "min", "maximum",
                    "minimum", "where", "clip", "max_pool2d", "embedding", "constant", "arange", "dim_size",
                    "one_hot", "argmax", "argmin", "floor", "ceil", "round", "bitwise_and", "bitwise_or",
                    "bitwise_xor", "bitwise_not", "bit_shift"} | DISCONTINUOUS
# Gradients are only defined away from kinks; these ops need their inputs kept away from them.
KINKED = {"relu", "abs", "leaky_relu", "maximum", "minimum", "max", "min", "max_pool2d", "clip"}
MAX_ABS = 100.0          # pool values stay this small, so float32 rounding stays far below the oracle's tolerance
SMALL_ARG = {"exp": 8.0, "sin": 20.0, "cos": 20.0, "softplus": 20.0, "pow": 3.0, "sinh": 8.0, "cosh": 8.0}


class Chooser(abc.ABC):
    """Where every random decision comes from (a seed or a hypothesis ``data`` object)."""

    @abc.abstractmethod
    def int(self, lo: int, hi: int) -> int:
        """A number in ``[lo, hi]`` (both ends included)."""

    def choice(self, seq):
        seq = list(seq)
        return seq[self.int(0, len(seq) - 1)]

    def coin(self, percent: int) -> bool:
        return self.int(0, 99) < percent


class RandomChooser(Chooser):
    def __init__(self, seed: int):
        self._rng = random.Random(seed)

    def int(self, lo, hi):
        return self._rng.randint(lo, hi)


class DataChooser(Chooser):
    """Draws through hypothesis so failing graphs shrink to few nodes and simple choices."""

    def __init__(self, data):
        from hypothesis import strategies as st

        self._data = data
        self._st = st

    def int(self, lo, hi):
        return self._data.draw(self._st.integers(lo, hi))


@dataclass
class Entry:
    v32: Value
    v64: Value
    concrete: np.ndarray  # float64 (or the exact integer/bool) value
    exact: bool
    leaf: bool
    domain: object = "any"
    depth: int = 0


@dataclass
class FuzzCase:
    """A generated graph, its float64 twin, concrete inputs and what the oracles need."""

    graph: Graph
    graph64: Graph
    inputs: list          # arrays for graph.inputs, in order
    inputs64: list
    env: dict
    loss_index: int | None = None   # output 0 is a scalar float loss when not None
    ops: list = field(default_factory=list)
    loss_weights: list = field(default_factory=list)  # inputs that only weight the loss terms


def _widen(dtype: str) -> str:
    return "float64" if _dt.is_float(dtype) else dtype


def _widen_attrs(attrs: dict) -> dict:
    out = {}
    for key, value in attrs.items():
        if isinstance(value, str) and value in ("float32", "float16", "bfloat16"):
            value = "float64"
        elif isinstance(value, np.ndarray) and value.dtype.kind == "f":
            value = value.astype(np.float64)
        out[key] = value
    return out


# Registry ops the generator deliberately does not draw, each with its reason. Every other op of the
# registry is drawn (its conformance samples give input types, attributes and domains); the coverage
# test (tests/fuzz/test_coverage.py) fails when a registry op is neither drawable nor listed here, so
# an op added by any branch either joins the fuzzer or says why not.
EXCLUDED: dict[str, str] = {
    "bitcast": "reads a float's bits as an integer: the float64 twin has other bits, so there is no oracle",
}
EXCLUDED.update({op: "quantized op: its float64 twin cannot exist (float32/half scales only) and rounding to "
                     "integers at half-steps makes float32 and float64 graphs disagree by design; the op-table "
                     "tests check it on every back end"
                 for op in ("quantize_linear", "dequantize_linear", "dynamic_quantize_linear", "matmul_integer",
                            "conv_integer", "qlinear_matmul", "qlinear_conv")})
# Data-dependent result lengths (ops/data_dependent.py): the jitted and op-by-op JAX oracles lower with
# jax.jit's static shapes, which refuse them by design; tests/ops/test_selection_ops.py and the op table
# run them on every back end.
EXCLUDED.update({op: "data-dependent result length, refused under jax.jit by design"
                 for op in ("nonzero", "compress", "unique", "non_max_suppression")})
# String tensors (ops/strings.py): the fuzzer's oracles are the JAX back end and a float64 twin, and XLA
# has no string type; the op table runs them on the reference and onnxruntime back ends.
EXCLUDED.update({op: "string tensors: no JAX lowering (XLA has no string type) and no float64 twin"
                 for op in ("string_normalizer", "string_concat", "string_split", "regex_full_match")})


def registry_ops() -> list[str]:
    """Every op name in the registry (the fuzzer's universe)."""
    return sorted(all_ops())


_NARROW_FLOATS = ("float16", "bfloat16") + _dt.FLOAT8_DTYPES


def _usable_ops() -> dict:
    ops = {}
    for name in registry_ops():
        if name in EXCLUDED:
            continue
        # float16/bfloat16/float8 samples are left out: the float64 twin cannot mirror their rounding
        samples = [s for s in get_op(name).samples
                   if not any(t.dtype in _NARROW_FLOATS for t in s.inputs)
                   and not any(isinstance(v, str) and v in _NARROW_FLOATS for v in s.attrs.values())
                   # string casts: XLA has no string type (the JAX oracle refuses them, typed)
                   and not any(t.dtype == "string" for t in s.inputs) and s.attrs.get("dtype") != "string"]
        if samples:
            ops[name] = samples
    return ops


FUZZ_OPS = _usable_ops()


def drawable(op: str, tries: int = 20, seed: int = 0) -> bool:
    """Whether the generator can place ``op`` into a graph (tried on fresh generators)."""
    if op not in FUZZ_OPS:
        return False
    for k in range(tries):
        gen = _Gen(RandomChooser(seed + k), max_nodes=8)
        gen.pool.append(gen.leaf(TensorType(("batch", 4), "float32"), "any"))
        if gen.try_op(op):
            return True
    return False


def _domain_ok(op: str, domain, entry: Entry, discontinuous: bool) -> bool:
    """Whether a computed value may stand in for a leaf of ``domain`` as input of ``op``."""
    x = entry.concrete
    if discontinuous and not entry.exact:
        return False
    if isinstance(domain, np.ndarray) or domain in ("bool", "permutation"):
        return False
    if isinstance(domain, str) and domain.startswith("int:"):
        return False
    if x.dtype.kind == "b":
        return domain in ("any", None)
    if x.dtype.kind in "iu":
        return domain in ("any", None) and (x.size == 0 or np.abs(x).max() < 1000)
    if x.size == 0:
        return True
    ax = np.abs(x)
    if not np.all(np.isfinite(x)) or ax.max() > MAX_ABS:
        return False
    if op in SMALL_ARG and ax.max() > SMALL_ARG[op]:
        return False
    if domain == "positive":
        return x.min() >= 0.1
    if domain == "unit":
        return ax.max() <= 0.9
    if domain == "nonzero":
        return ax.min() >= (1e-3 if op in KINKED else 0.1)
    if domain == "distinct":
        flat = np.sort(x.ravel())
        return flat.size < 2 or np.diff(flat).min() >= 1e-3
    if isinstance(domain, str) and domain.startswith("unclipped:"):
        lo, hi = (float(t) if t else None for t in domain.split(":")[1:3])
        d = np.full(x.shape, np.inf)
        if lo is not None:
            d = np.minimum(d, np.abs(x - lo))
        if hi is not None:
            d = np.minimum(d, np.abs(x - hi))
        return d.min() >= 0.05
    if op in KINKED:  # an "any" input to a kinked op (clip with the default domain, ...)
        return ax.min() >= 1e-3
    return True


class _Gen:
    def __init__(self, chooser: Chooser, max_nodes: int):
        self.c = chooser
        self.max_nodes = max_nodes
        self.g32 = Graph("fuzz")
        self.g64 = Graph("fuzz64")
        self.b32 = Builder(self.g32, capture_locations=False, scope="fuzz")
        self.b64 = Builder(self.g64, capture_locations=False, scope="fuzz")
        self.env = {"batch": chooser.choice([2, 2, 3]), "seq": 3}
        self.pool: list[Entry] = []
        self.inputs32: list[np.ndarray] = []
        self.inputs64: list[np.ndarray] = []
        self.rng = np.random.default_rng(chooser.int(0, 2**31 - 1))
        self.n_leaves = 0
        self.ops: list[str] = []
        self.loss_weights: list[str] = []
        self.no_grad = False  # a sample marked grad=False was drawn: its op's gradient is not defined there

    # ---- leaves ---------------------------------------------------------------------------------
    def leaf(self, ttype: TensorType, domain) -> Entry:
        shape = resolve_shape(ttype.shape, self.env)
        arr = _fill(shape, ttype.dtype, domain if domain is not None else "any", self.rng)
        arr = np.asarray(arr, dtype=_dt.to_numpy_dtype(ttype.dtype))
        name = f"x{self.n_leaves}"
        self.n_leaves += 1
        t64 = TensorType(ttype.shape, _widen(ttype.dtype))
        arr64 = arr.astype(_dt.to_numpy_dtype(t64.dtype)) if _dt.is_float(ttype.dtype) else arr
        # A static float leaf becomes a trainable param half of the time (weights, gf.grad wrt params).
        as_param = _dt.is_float(ttype.dtype) and not dim_symbols_of(ttype) and self.c.coin(40)
        if as_param:
            v32 = self.g32.add_param(f"p{name}", ttype, arr, "param")
            v64 = self.g64.add_param(f"p{name}", t64, arr64, "param")
        else:
            v32 = self.g32.add_input(name, ttype)
            v64 = self.g64.add_input(name, t64)
            self.inputs32.append(arr)
            self.inputs64.append(arr64)
        entry = Entry(v32, v64, arr64.astype(np.float64) if _dt.is_float(ttype.dtype) else arr, True, True, domain)
        return entry

    # ---- nodes ----------------------------------------------------------------------------------
    def sample_fits_env(self, sample) -> bool:
        return all(self.env.get(k, v) == v for k, v in sample.bind.items())

    def try_op(self, op: str) -> bool:
        if op in REGION_OPS:  # control flow: random bodies (tests/fuzz/regions.py)
            return try_region_op(self, op)
        samples = [s for s in FUZZ_OPS[op] if self.sample_fits_env(s)]
        if not samples:
            return False
        sample = self.c.choice(samples)
        self.no_grad = self.no_grad or not sample.grad
        opdef = get_op(op)
        for key, val in sample.bind.items():
            self.env.setdefault(key, val)
        domains = list(sample.domain) if sample.domain is not None else ["any"] * len(sample.inputs)
        n = len(sample.inputs)
        chosen: list[Entry | None] = [None] * n
        out_dtype = sample.attrs.get("dtype")
        discontinuous = op in DISCONTINUOUS or (op == "cast" and isinstance(out_dtype, str)
                                                and not _dt.is_float(out_dtype))
        # Reuse pool values: each slot tries a few candidates of its dtype (the type rule decides).
        # Elementwise ops take any rank (their other operands broadcast against the first).
        for i in range(n):
            if not self.pool or not self.c.coin(85):
                continue
            want = sample.inputs[i]
            any_rank = opdef.elementwise and (i == 0 or chosen[0] is not None)
            cands = [e for e in self.pool if e.v32.type.dtype == want.dtype
                     and (any_rank or len(e.v32.type.shape) == len(want.shape))]
            if not cands:
                continue
            for _ in range(3):
                # favour recent values, so graphs grow deep rather than wide
                e = cands[max(self.c.int(0, len(cands) - 1), self.c.int(0, len(cands) - 1))]
                if _domain_ok(op, domains[i], e, discontinuous) and e not in chosen:
                    chosen[i] = e
                    break
        attrs = dict(sample.attrs)
        picked = self._fill_and_check(op, opdef, sample, domains, chosen, attrs)
        if picked is None:
            return False
        entries, outs64 = picked
        v32s = self.b32.emit(op, [e.v32 for e in entries], attrs)
        v64s = self.b64.emit(op, [e.v64 for e in entries], _widen_attrs(check_attrs(opdef, attrs)))
        exact_in = all(e.exact for e in entries)
        for a, b, val in zip(v32s, v64s, outs64):
            exact = exact_in and (op in EXACT_PRESERVING or not _dt.is_float(a.type.dtype))
            if not _dt.is_float(a.type.dtype) and not exact_in:
                continue  # (cannot happen: discontinuous ops read exact values only) keep it out anyway
            self.pool.append(Entry(a, b, val, exact, False, depth=1 + max((e.depth for e in entries), default=0)))
        self.ops.append(op)
        return True

    def _fill_and_check(self, op, opdef, sample, domains, chosen, attrs):
        """Fill unchosen slots with leaves, check the type rule and the concrete result; on failure
        retry with fewer reused operands, then with the sample's own types (fresh leaves everywhere)."""
        reused = [i for i, c in enumerate(chosen) if c is not None]
        plans = [chosen]
        if len(reused) > 1:  # several reused operands rarely fit together: keep just the first
            plans.append([c if i == reused[0] else None for i, c in enumerate(chosen)])
        if reused:
            plans.append([None] * len(chosen))
        for attempt, chosen in enumerate(plans):
            last = attempt == len(plans) - 1
            types = [c.v32.type if c is not None else t for c, t in zip(chosen, sample.inputs)]
            try:
                checked = check_attrs(opdef, attrs)
                with collect_requirements() as reqs:
                    infer_types(opdef, types, checked)
                # a type rule's guard (slice [0:6] of a `batch` axis needs 6 <= batch) must hold for
                # the sizes this graph is run at, else the graph is not one the fuzzer can run
                if not all(req.holds(self.env) for req in reqs):
                    continue
                # a size attribute naming a symbol no operand carries (pads=[.., seq-1] on a (batch, 5)
                # operand) could not be bound when the graph runs
                if not _attr_symbols(opdef, checked) <= {x for t in types for d in t.shape for x in dim_symbols(d)}:
                    continue
            except GraphforgeError:
                continue
            if op in ("maximum", "minimum") and all(c is not None for c in chosen):
                a, b = (c.concrete for c in chosen)
                try:
                    if np.abs(np.subtract(a, b)).min() < 1e-3:
                        continue
                except ValueError:
                    continue
            leaf_types = list(sample.inputs)
            if opdef.elementwise and not last and chosen[0] is not None:
                # broadcasting partners of the first operand: some dims 1, maybe fewer leading dims
                base = chosen[0].v32.type.shape
                for i in range(1, len(chosen)):
                    if chosen[i] is None:
                        shape = [1 if self.c.coin(25) else d for d in base][self.c.int(0, len(base)) // 3:]
                        leaf_types[i] = TensorType(tuple(shape), sample.inputs[i].dtype)
                types = [c.v32.type if c is not None else t for c, t in zip(chosen, leaf_types)]
                try:
                    infer_types(opdef, types, checked)
                except GraphforgeError:
                    continue
            domains = _index_domains(op, chosen, domains, checked, self.env)
            entries = [c if c is not None else self.leaf(t, d) for c, t, d in zip(chosen, leaf_types, domains)]
            args = [e.concrete for e in entries]
            attrs64 = check_attrs(opdef, _widen_attrs(check_attrs(opdef, attrs)))
            args64 = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in args]
            try:
                with np.errstate(all="ignore"):
                    outs = [np.asarray(o) for o in opdef.reference(args64, attrs64, self.env)]
            except Exception:  # noqa: BLE001 - e.g. a reused gather operand shorter than the sample's indices
                if not last:
                    continue
                raise
            ok = all(o.dtype.kind not in "fc" or (np.all(np.isfinite(o)) and (o.size == 0 or np.abs(o).max() <= 1e4))
                     for o in outs)
            if not ok:
                continue
            return entries, outs
        return None

    def pick_op(self) -> str:
        names = sorted(FUZZ_OPS)
        # Favour ops that can reuse what is already there: each op is equally likely, a fresh pick
        # is taken when the op's samples do not fit this graph's symbol bindings.
        return self.c.choice(names)


def _attr_symbols(opdef, attrs) -> set:
    """The symbols in the op's dim-valued attributes (slice bounds, pad amounts, split sizes)."""
    out = set()
    for key, spec in opdef.attrs.items():
        if spec.kind not in ("dim", "dims") or attrs.get(key) is None:
            continue
        value = attrs[key]
        for item in (value if isinstance(value, (list, tuple)) else [value]):
            out |= dim_symbols(item) if isinstance(item, str) else set()
    return out


_INDEXED = {"gather": (0, 1), "scatter_add": (0, 1), "embedding": (0, 1)}  # op -> (data slot, index slot)


def _index_domains(op, chosen, domains, attrs, env):
    """Index leaves must be in range for the data actually chosen (a reused operand may be shorter
    along the indexed axis than the sample's): out-of-range indices are undefined behaviour."""
    if op not in _INDEXED or chosen[_INDEXED[op][0]] is None:
        return domains
    data_slot, idx_slot = _INDEXED[op]
    dom = domains[idx_slot]
    if not (isinstance(dom, str) and dom.startswith("int:")):
        return domains
    data = chosen[data_slot].v32.type
    axis = 0 if op == "embedding" else attrs["axis"] % len(data.shape)
    n = resolve_shape((data.shape[axis],), env)[0]
    lo = int(dom.split(":")[1])
    out = list(domains)
    out[idx_slot] = f"int:{-n if lo < 0 else 0}:{n}"
    return out


def dim_symbols_of(ttype: TensorType) -> set:
    out = set()
    for d in ttype.shape:
        out |= dim_symbols(d)
    return out


def generate(chooser: Chooser, *, min_nodes: int = 3, max_nodes: int = 40, with_loss: bool = True) -> FuzzCase:
    """One random valid graph (3..40 nodes) with concrete inputs and its float64 twin."""
    gen = _Gen(chooser, max_nodes)
    target = chooser.int(min_nodes, max_nodes)
    # Seed the pool with a batch-shaped float input so later ops have something to chew on.
    gen.pool.append(gen.leaf(TensorType(("batch", 4), "float32"), "any"))
    attempts = 0
    while len(gen.g32.nodes) < target and attempts < target * 6:
        attempts += 1
        gen.try_op(gen.pick_op())
    produced = [e for e in gen.pool if not e.leaf]
    if not produced:  # only possible when every attempt was refused: one guaranteed op
        gen.try_op("tanh")
        produced = [e for e in gen.pool if not e.leaf]
    # Outputs: the sinks (values nobody reads) plus a random extra, at most four.
    sinks = [e for e in produced if not e.v32.uses]
    # the deepest sinks: the values that exercise the longest chains of ops
    outs = sorted(sinks, key=lambda e: e.depth)[-3:] if sinks else [produced[-1]]
    if chooser.coin(30):
        extra = chooser.choice(produced)
        if extra not in outs:
            outs.append(extra)
    loss_index = None
    values32 = [e.v32 for e in outs]
    values64 = [e.v64 for e in outs]
    names = [f"out{i}" for i in range(len(outs))]
    if with_loss and not gen.no_grad:  # (grad=False samples, e.g. symbolic conv sizes: no gradient oracle)
        loss = _add_loss(gen, outs)
        if loss is not None:
            values32.insert(0, loss[0])
            values64.insert(0, loss[1])
            names.insert(0, "loss")
            loss_index = 0
    gen.g32.set_outputs(values32, names)
    gen.g64.set_outputs(values64, names)
    gen.g32.verify()
    gen.g64.verify()
    return FuzzCase(gen.g32, gen.g64, gen.inputs32, gen.inputs64, dict(gen.env), loss_index, ops=gen.ops,
                    loss_weights=gen.loss_weights)


def _add_loss(gen: _Gen, outs: list[Entry]):
    """``sum_j sum(out_j * w_j)`` over float outputs (``w_j`` random inputs): a scalar whose
    gradient reaches every float path; None when no output is float."""
    terms32, terms64 = [], []
    for e in outs:
        if not _dt.is_float(e.v32.type.dtype) or e.v32.type.dtype != "float32":
            continue
        # The weights are inputs, not params: gf.grad(wrt="params") must not differentiate them.
        shape = resolve_shape(e.v32.type.shape, gen.env)
        w = _force_input(gen, e.v32.type, gen.rng.standard_normal(shape))
        for b, terms, ev, wv in ((gen.b32, terms32, e.v32, w.v32), (gen.b64, terms64, e.v64, w.v64)):
            prod = b.emit1("mul", [ev, wv])
            axes = list(range(len(ev.type.shape)))
            terms.append(b.emit1("sum", [prod], {"axes": axes}) if axes else prod)
    if not terms32:
        return None
    total32, total64 = terms32[0], terms64[0]
    for t32, t64 in zip(terms32[1:], terms64[1:]):
        total32 = gen.b32.emit1("add", [total32, t32])
        total64 = gen.b64.emit1("add", [total64, t64])
    return total32, total64


def _force_input(gen: _Gen, ttype: TensorType, concrete64: np.ndarray) -> Entry:
    name = f"x{gen.n_leaves}"
    gen.n_leaves += 1
    arr = concrete64.astype(_dt.to_numpy_dtype(ttype.dtype))
    v32 = gen.g32.add_input(name, ttype)
    v64 = gen.g64.add_input(name, TensorType(ttype.shape, "float64"))
    gen.inputs32.append(arr)
    gen.inputs64.append(arr.astype(np.float64))
    gen.loss_weights.append(name)
    return Entry(v32, v64, arr.astype(np.float64), True, True)
