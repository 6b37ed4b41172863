"""Row selection before a row-wise product: ``linear(gather(T, idx), W, b)`` →
``gather(linear(T, W, b), idx)`` (also ``embedding`` for ``gather`` and ``matmul(·, W)`` for ``linear``).

Why it is sound: ``gather(T, idx, axis=0)`` of a 2-D table picks whole rows, and ``linear``/``matmul``
by a 2-D weight transform each row on its own (an elementwise activation too), so transforming
every row first and picking afterwards gives the same rows.

Why it pays — only when the table product is computed less often than the rows it replaces: the
rule fires when ``T``, ``W`` (and ``b``) do not change while the gather's block runs (parameters,
constants, or a loop's consts), ``T`` has a static number of rows ``R``, and ``R`` is at most the
rows transformed before: ``numel(idx)`` (symbolic dims count as 1) times the loop's trip bound
(``while_loop``'s ``max_iterations``, a static ``scan`` length; 1 at the top level). The typical
case is an embedding followed by a recurrent layer's input projection in a decoding loop: after
``hoist`` the product ``T @ Wᵀ + b`` runs once before the loop (and onnxruntime folds it at session
creation, its inputs being initializers), and each step is one ``Gather`` of a pre-multiplied row."""
from __future__ import annotations

from graphforge import ops

from ..pattern import Op, Rule, Var, attr_of

__all__ = ["RULES"]

LOOP_OPS = ("scan", "while_loop")


def _invariant(value, block) -> bool:
    """Whether ``value`` holds the same data every time ``block`` runs."""
    if value.kind in ("param", "const"):
        return True
    if value.producer is not None and value.producer.op == "constant":
        return True
    owner = block.owner
    if value.kind == "arg" and owner is not None and owner.op in LOOP_OPS:
        consts = block.arguments[:owner.attrs.get("num_consts", 0)]
        return any(a is value for a in consts)
    return False


def _trips(block) -> int | None:
    """How many times ``block`` runs per run of its parent (1 at the top level; None: unknown)."""
    owner = block.owner
    if owner is None:
        return 1
    if owner.op == "while_loop":
        n = owner.attrs.get("max_iterations", -1)
        return n if isinstance(n, int) and n > 0 else None
    if owner.op == "scan":
        n = owner.attrs.get("length")
        return n if isinstance(n, int) and n > 0 else None
    return None


def _pays(m) -> bool:
    g = m["g"]
    if g.op == "gather" and g.attrs.get("axis", 0) not in (0, -2):
        return False
    table, idx = g.inputs
    rows = table.type.shape[0]
    if not isinstance(rows, int) or table.type.dtype != m.root.outputs[0].type.dtype:
        return False
    block = m.root.block
    operands = [table] + list(m.root.inputs[1:])
    if g.block is not block or not all(_invariant(v, block) for v in operands):
        return False
    trips = _trips(block)
    if trips is None:
        return False
    picked = 1
    for d in idx.type.shape:
        picked *= d if isinstance(d, int) else 1
    return rows <= picked * trips


def _build(m, rw):
    g, root = m["g"], m.root
    table = rw.t(g.inputs[0])
    if root.op == "matmul":
        new_table = ops.matmul(table, rw.t(root.inputs[1]))
    else:
        bias = rw.t(root.inputs[2]) if len(root.inputs) == 3 else None
        new_table = ops.linear(table, rw.t(root.inputs[1]), bias, transpose_b=attr_of(root, "transpose_b"),
                               activation=attr_of(root, "activation"))
    idx = rw.t(g.inputs[1])
    return ops.embedding(new_table, idx) if g.op == "embedding" else ops.gather(new_table, idx, axis=0)


_PICK = Op(("gather", "embedding"), Var("t", rank=2), Var("idx"), name="g")
_PATTERNS = [Op("linear", _PICK, Var("w", rank=2)), Op("linear", _PICK, Var("w", rank=2), Var("b")),
             Op("matmul", _PICK, Var("w", rank=2))]

RULES = [Rule("gather_then_linear", _PATTERNS, _build, check=_pays, internal_uses_only=False, provenance="root",
              doc=__doc__)]
