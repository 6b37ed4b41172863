"""Hostile and broken input: every case ends in a typed GraphforgeError whose message names the
problem, within 5 s, and leaves the directory it works in exactly as it was (nothing written,
nothing corrupted). Loaders never unpickle."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct
import textwrap
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import graphforge as gf
from graphforge import nn
from graphforge.errors import GraphforgeError

BACKENDS = ["reference", "jax", "onnxruntime"]


@dataclass
class Case:
    name: str
    act: Callable          # act(tmp_path) -> anything; must raise
    words: tuple           # the message names the problem: every one of these (case-insensitive)
    setup: Callable | None = None  # setup(tmp_path): files that exist before the snapshot
    memory: bool = False   # about memory: runs in a child process under a 4 GiB address-space limit


CASES: list[Case] = []


def case(name, words, setup=None, memory=False):
    def deco(fn):
        CASES.append(Case(name, fn, tuple(words), setup, memory))
        return fn
    return deco


# ---- helpers ------------------------------------------------------------------------------------

def _mlp_graph():
    net = nn.seq().add(nn.Linear(4, 3)).add_fn(gf.relu).add(nn.Linear(3, 2))
    return gf.trace(net, gf.TensorSpec(("batch", 4), "float32"), seed=0)


GOOD_IR = textwrap.dedent("""\
    graph g(%x: f32[2, 3]) {
      %0: f32[2, 3] = relu(%x)
      return %0
    }
""")


def _ir(body: str, header: str = "graph g(%x: f32[2, 3]) {") -> str:
    return header + "\n" + textwrap.indent(textwrap.dedent(body), "  ") + "}\n"


def _safetensors(header: dict, payload: bytes, length: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + payload


def _write(tmp, name, data: bytes):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _good_weights(tmp):
    gf.save_params({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, os.path.join(tmp, "good.safetensors"))


# ---- IR text: gf.parse ----------------------------------------------------------------------------

IR_CASES = [
    ("empty", "", ("graph",)),
    ("truncated-header", "graph g(%x: f32[2", ("line 1",)),
    ("garbage-bytes", "\x00\xff\xfe garbage", ("line 1",)),
    ("unknown-op", _ir("%0: f32[2, 3] = frobnicate(%x)\nreturn %0\n"), ("frobnicate",)),
    ("wrong-declared-type", _ir("%0: f32[3, 3] = relu(%x)\nreturn %0\n"), ("relu", "f32[3,3]")),
    ("undefined-value", _ir("%0: f32[2, 3] = relu(%y)\nreturn %0\n"), ("%y",)),
    ("redefined-value", _ir("%0: f32[2, 3] = relu(%x)\n%0: f32[2, 3] = neg(%x)\nreturn %0\n"), ("%0",)),
    ("bad-dtype", _ir("%0: f33[2, 3] = relu(%x)\nreturn %0\n"), ("f33",)),
    ("return-junk", _ir("%0: f32[2, 3] = relu(%x)\nreturn %0 as\n"), ("line",)),
    ("unterminated-string", _ir('%0: f32[2, 3] = relu(%x) @ "scope\nreturn %0\n'), ("line",)),
    ("negative-dim", "graph g(%x: f32[-3]) {\n  return %x\n}\n", ("-3",)),
    ("huge-dim", "graph g(%x: f32[99999999999999999999999]) {\n  return %x\n}\n", ("line 1",)),
    ("use-before-def", _ir("%1: f32[2, 3] = neg(%0)\n%0: f32[2, 3] = relu(%x)\nreturn %1\n"), ("%0",)),
    ("return-undefined", _ir("return %7\n"), ("%7",)),
    ("bad-attr-kind", _ir('%0: f32[2] = sum(%x) {axes="a"}\nreturn %0\n'), ("axes",)),
    ("unknown-attr", _ir("%0: f32[2, 3] = relu(%x) {bogus=1}\nreturn %0\n"), ("bogus",)),
    ("wrong-arity", _ir("%0: f32[2, 3] = add(%x)\nreturn %0\n"), ("add", "2 inputs")),
    ("megabyte-of-junk", "graph g(" + "(" * 1_000_000, ("line 1",)),
    ("trailing-garbage", GOOD_IR + "graph h(", ("line",)),
    # a dim expression's parser is recursive descent: nesting is bounded (a ParseError, not a RecursionError)
    ("dim-nested-parens", "graph g(%x: f32[" + "(" * 5000 + "a" + ")" * 5000 + "]) {\n  return %x\n}\n",
     ("line 1", "nested deeper than")),
    ("dim-nested-minus", "graph g(%x: f32[" + "-" * 5000 + "a]) {\n  return %x\n}\n", ("nested deeper than",)),
    ("dim-nested-max", "graph g(%x: f32[" + "max(" * 3000 + "a" + ",b)" * 3000 + "]) {\n  return %x\n}\n",
     ("nested deeper than",)),
    ("dim-nested-floor-in-attr", _ir("%0: i64[3] = arange() {stop=" + "floor(" * 2000 + "n" + "/2)" * 2000
                                     + "}\nreturn %0\n", header="graph g(%x: f32[n]) {"), ("line 2",)),
]

for _name, _text, _words in IR_CASES:
    case(f"parse-{_name}", _words)(lambda tmp, text=_text: gf.parse(text))


# ---- weights: gf.load_params (safetensors) ---------------------------------------------------------

W_HEADER = {"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}
W_DATA = np.arange(6, dtype=np.float32).tobytes()
WEIGHT_FILES = [
    ("empty", b"", ()),
    ("too-short-for-length", b"\x01\x02", ()),
    ("truncated-payload", _safetensors(W_HEADER, W_DATA[:10]), ()),
    ("oversized-length-prefix", _safetensors(W_HEADER, W_DATA, length=2**60), ()),
    ("length-past-eof", _safetensors(W_HEADER, W_DATA, length=4096), ()),
    ("header-not-json", struct.pack("<Q", 9) + b"not json!" + W_DATA, ()),
    ("overlapping-offsets", _safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                          "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, W_DATA), ()),
    ("offsets-past-eof", _safetensors({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 4000]}}, W_DATA), ()),
    ("unknown-dtype", _safetensors({"w": {"dtype": "F99", "shape": [2, 3], "data_offsets": [0, 24]}}, W_DATA), ()),
    ("shape-vs-bytes", _safetensors({"w": {"dtype": "F32", "shape": [100], "data_offsets": [0, 24]}}, W_DATA), ()),
    ("huge-shape", _safetensors({"w": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 24]}}, W_DATA), ()),
    ("bf16-tag-corrupt", _safetensors({"__metadata__": {"graphforge.bf16": "[not json"}, **W_HEADER}, W_DATA),
     ("graphforge.bf16",)),
]

for _name, _data, _words in WEIGHT_FILES:
    case(f"load_params-{_name}", ("weights.safetensors",) + _words,
         setup=lambda tmp, data=_data: _write(tmp, "weights.safetensors", data))(
        lambda tmp: gf.load_params(os.path.join(tmp, "weights.safetensors")))


class _Boom:
    """Unpickling this creates a file: proof that a loader unpickled."""

    def __reduce__(self):
        return (open, (os.path.join(os.environ.get("GF_PICKLE_CANARY_DIR", "/nonexistent"), "PWNED"), "w"))


def _pickle_setup(tmp):
    os.environ["GF_PICKLE_CANARY_DIR"] = str(tmp)
    _write(tmp, "weights.safetensors", pickle.dumps({"w": _Boom()}))


@case("load_params-pickle-disguised", ("weights.safetensors",), setup=_pickle_setup)
def _pickle_weights(tmp):
    return gf.load_params(os.path.join(tmp, "weights.safetensors"))


@case("load_params-missing-file", ("no such weights file",))
def _missing_weights(tmp):
    return gf.load_params(os.path.join(tmp, "nope.safetensors"))


@case("load_params-directory", ("sub",))
def _dir_weights(tmp):
    os.mkdir(os.path.join(tmp, "sub"))
    try:
        return gf.load_params(os.path.join(tmp, "sub"))
    finally:
        os.rmdir(os.path.join(tmp, "sub"))


@case("load_params-wrong-graph-names", ("does not match", "missing"), setup=_good_weights)
def _wrong_graph(tmp):
    return gf.load_params(os.path.join(tmp, "good.safetensors"), _mlp_graph())


@case("load_params-wrong-shape", ("'w'", "f32[3,2]"), setup=_good_weights)
def _wrong_shape(tmp):
    g = gf.parse("graph g(%x: f32[3, 2]) {\n  param %w: f32[3, 2]\n  %0: f32[3, 2] = add(%x, %w)\n  return %0\n}\n",
                 params={"w": np.zeros((3, 2), np.float32)})
    before = g.params["w"].copy()
    try:
        return gf.load_params(os.path.join(tmp, "good.safetensors"), g)
    finally:
        assert np.array_equal(g.params["w"], before)  # the graph is untouched


# ---- pipelines and opsets --------------------------------------------------------------------------

for _pipe, _words in [("nope", ("nope",)), ("cse,,dce", ("cse,,dce",)), ("(cse,dce", ("(cse,dce",)),
                      ("cse)*", ("cse)*",)), ("(cse)*x", ("(cse)*x",)), ("fold;cse", ("fold;cse",))]:
    case(f"optimize-{_pipe or 'empty'}", _words)(lambda tmp, p=_pipe: gf.optimize(_mlp_graph(), p))

for _opset in (3, 16, 10**6, "x"):
    case(f"to_onnx-opset-{_opset}", ("opset", str(_opset)))(lambda tmp, o=_opset: gf.to_onnx(_mlp_graph(), opset=o))


@case("save_onnx-bad-opset-writes-nothing", ("opset",))
def _save_bad(tmp):
    return gf.save_onnx(_mlp_graph(), os.path.join(tmp, "model.onnx"), opset=3)


# ---- ONNX files: gf.from_onnx -----------------------------------------------------------------------

def _onnx_bytes():
    import onnx
    return gf.to_onnx(_mlp_graph()).SerializeToString()


def _onnx_with(mutate):
    import onnx
    model = gf.to_onnx(_mlp_graph())
    mutate(model)
    return model.SerializeToString()


def _unknown_op(m):
    m.graph.node[0].op_type = "FrobnicateXYZ"


def _external_escape(m):
    import onnx
    init = m.graph.initializer[0]
    init.ClearField("raw_data")
    init.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", "../../../../etc/passwd"), ("offset", "0"), ("length", "64")):
        e = init.external_data.add()
        e.key, e.value = k, v


def _dangling_input(m):
    m.graph.node[0].input[0] = "does_not_exist"


ONNX_CASES = [
    ("garbage", lambda: b"\x08\x07garbage\xff\xff\xff", ("onnx",)),
    ("empty", lambda: b"", ("onnx",)),
    ("truncated", lambda: _onnx_bytes()[:40], ("onnx",)),
    ("unknown-op", lambda: _onnx_with(_unknown_op), ("FrobnicateXYZ",)),
    ("external-data-escapes", lambda: _onnx_with(_external_escape), ("passwd",)),
    ("dangling-input", lambda: _onnx_with(_dangling_input), ("does_not_exist",)),
]

for _name, _make, _words in ONNX_CASES:
    case(f"from_onnx-{_name}", _words, setup=lambda tmp, make=_make: _write(tmp, "model.onnx", make()))(
        lambda tmp: gf.from_onnx(os.path.join(tmp, "model.onnx")))


@case("from_onnx-missing-file", ("missing.onnx",))
def _missing_onnx(tmp):
    return gf.from_onnx(os.path.join(tmp, "missing.onnx"))


# ---- ONNX files that ask for terabytes, lie about their data, or contradict themselves (issue 20) ----
# The memory cases run under a 4 GiB RLIMIT_AS: an import that tried to build the array would die
# with MemoryError instead of the typed LoadError.

from . import hostile_onnx as H  # noqa: E402

GIB6 = 6 << 30


def _model_setup(make, name="model.onnx"):
    return lambda tmp: _write(tmp, name, make())


def _import(tmp, **kw):
    return gf.from_onnx(os.path.join(tmp, "model.onnx"), **kw)


for _name, (_make, _words) in H.BUDGET_BOMBS.items():
    case(f"import-budget-{_name}", _words, setup=_model_setup(_make), memory=True)(_import)
    # unchecked and unfolded: the importer's own guards, not onnx.checker, must stop it
    case(f"import-budget-{_name}-unchecked", _words[:1], setup=_model_setup(_make), memory=True)(
        lambda tmp: _import(tmp, check=False, fold=False))

for _name, (_make, _words) in H.MUTATIONS.items():
    case(f"from_onnx-mutated-{_name}", _words, setup=_model_setup(_make))(_import)


def _with_env(value, fn):
    old = os.environ.get("GRAPHFORGE_MAX_CONSTANT_BYTES")
    os.environ["GRAPHFORGE_MAX_CONSTANT_BYTES"] = value
    try:
        return fn()
    finally:
        if old is None:
            del os.environ["GRAPHFORGE_MAX_CONSTANT_BYTES"]
        else:
            os.environ["GRAPHFORGE_MAX_CONSTANT_BYTES"] = old


case("import-budget-env-small", ("eye", "16.0 KiB", "1.0 KiB", "GRAPHFORGE_MAX_CONSTANT_BYTES"),
     setup=_model_setup(H.tiny_eyelike))(lambda tmp: _with_env("1k", lambda: _import(tmp)))
case("import-budget-env-malformed", ("GRAPHFORGE_MAX_CONSTANT_BYTES", "lots"),
     setup=_model_setup(H.tiny_eyelike))(lambda tmp: _with_env("lots", lambda: _import(tmp)))
case("import-budget-argument-small", ("eye", "100 bytes", "max_constant_bytes"),
     setup=_model_setup(H.tiny_eyelike))(lambda tmp: _import(tmp, max_constant_bytes=100))
case("import-budget-argument-negative", ("max_constant_bytes", "-5"),
     setup=_model_setup(H.tiny_eyelike))(lambda tmp: _import(tmp, max_constant_bytes=-5))

for _version in (999, 29, 10_000):
    case(f"from_onnx-opset-{_version}", (f"opset {_version}", "1..", "supported"),
         setup=_model_setup(lambda v=_version: H.opset_model(v)))(_import)


def _external_setup(file_size, **entries):
    def setup(tmp):
        H.write_sparse(os.path.join(tmp, "w.bin"), file_size)
        _write(tmp, "model.onnx", H.external_model(**entries))
    return setup


EXTERNAL_CASES = [  # (name, file size, external_data entries, words)
    ("length-6gib", GIB6, {"length": GIB6}, ("'w'", "length 6442450944", "48 bytes")),
    ("length-short", GIB6, {"length": 10}, ("'w'", "length 10", "48 bytes")),
    ("length-not-int", 64, {"length": "lots"}, ("'w'",)),
    ("offset-past-end", 64, {"offset": 4096}, ("'w'", "offset 4096")),
    ("offset-negative", 64, {"offset": -8}, ("'w'", "-8")),
    ("file-too-small", 20, {}, ("'w'", "exceeds", "20 bytes")),
    ("tensor-4tib-in-6gib-file", GIB6, {"dims": (1 << 20, 1 << 20)}, ("'w'", "exceeds")),
    ("offset-leaves-too-little", GIB6, {"offset": GIB6 - 8}, ("'w'", "exceeds")),
    ("absolute-location", 64, {"location": "/etc/passwd"}, ("/etc/passwd", "relative")),
    ("missing-file", 64, {"location": "nope.bin"}, ("nope.bin", "not found")),
    ("string-tensor", 64, {"dtype": H.TensorProto.STRING}, ("'w'", "string")),
]
for _name, _size, _entries, _words in EXTERNAL_CASES:
    case(f"from_onnx-external-{_name}", _words, setup=_external_setup(_size, **_entries), memory=True)(_import)

case("from_onnx-external-from-bytes", ("'w'", "path"))(lambda tmp: gf.from_onnx(H.external_model()))

for _n in (65, 1000, 100_000):
    case(f"parse-attr-nested-{_n}", ("nested deeper than 64",))(
        lambda tmp, n=_n: gf.parse(_ir("%0: f32[2, 3] = reshape(%x) {shape=" + "[" * n + "2" + "]" * n
                                        + "}\nreturn %0\n")))
case("parse-tensor-literal-nested-1000", ("nested deeper than 64",))(
    lambda tmp: gf.parse(_ir("%0: f32[1] = constant() {value=tensor<f32[1]>" + "[" * 1000 + "1" + "]" * 1000
                             + "}\nreturn %0\n", header="graph g() {")))


def _cli(argv_of):
    """Run the CLI in-process; its exit status and stderr become a _CliFailed for the checks."""
    def act(tmp):
        import contextlib
        import io

        from graphforge.cli import main

        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv_of(tmp))
        raise _CliFailed(code, err.getvalue())
    return act


CLI_FILES = [  # (name, setup, words): each must give exit status 2 and one line, no traceback
    ("opset-999", _model_setup(lambda: H.opset_model(999)), ("opset 999",)),
    ("eyelike-4tib", _model_setup(H.BUDGET_BOMBS["eyelike"][0]), ("bomb", "TiB", "budget")),
    ("trilu-1tib", _model_setup(H.BUDGET_BOMBS["trilu"][0]), ("bomb", "TiB", "budget")),
    ("external-length-6gib", _external_setup(GIB6, length=GIB6), ("'w'", "48 bytes")),
    ("garbage", lambda tmp: _write(tmp, "model.onnx", b"\x08\x07garbage\xff"), ("onnx",)),
]
for _name, _setup, _words in CLI_FILES:
    case(f"cli-optimize-{_name}", ("exit status 2",) + _words, setup=_setup, memory=True)(
        _cli(lambda tmp: ["optimize", os.path.join(tmp, "model.onnx"), "-o", os.path.join(tmp, "out.onnx")]))
    case(f"cli-show-{_name}", ("exit status 2",) + _words, setup=_setup, memory=True)(
        _cli(lambda tmp: ["show", os.path.join(tmp, "model.onnx")]))
case("cli-show-nested-ir", ("exit status 2", "nested deeper than 64"),
     setup=lambda tmp: _write(tmp, "g.gf", _ir("%0: f32[2, 3] = reshape(%x) {shape=" + "[" * 1000 + "2"
                                                + "]" * 1000 + "}\nreturn %0\n").encode()))(
    _cli(lambda tmp: ["show", os.path.join(tmp, "g.gf")]))
case("cli-optimize-bad-dim", ("exit status 2", "--dim"), setup=_model_setup(lambda: H.opset_model(21)))(
    _cli(lambda tmp: ["optimize", os.path.join(tmp, "model.onnx"), "-o", os.path.join(tmp, "out.onnx"),
                      "--dim", "batch=many"]))


# ---- run-time inputs on every back end --------------------------------------------------------------

X = np.zeros((2, 4), np.float32)
RUN_CASES = [
    ("wrong-rank", lambda: {"x": np.zeros((2, 4, 1), np.float32)}, ("'x'", "rank")),
    ("wrong-static-dim", lambda: {"x": np.zeros((2, 5), np.float32)}, ("'x'", "axis 1")),
    ("int-into-float", lambda: {"x": np.zeros((2, 4), np.int64)}, ("'x'", "int64")),
    ("missing-input", lambda: {}, ("missing", "'x'")),
    ("unexpected-input", lambda: {"x": X, "y": X}, ("unexpected", "'y'")),
    ("not-array-like", lambda: {"x": object()}, ("'x'",)),
    ("string-array", lambda: {"x": np.array([["a"] * 4] * 2)}, ("'x'",)),
]


def _graph_two_inputs():
    return gf.trace(lambda x, y: x + y, gf.TensorSpec(("batch", 4)), gf.TensorSpec(("batch", 4)))


for _backend in BACKENDS:
    for _name, _inputs, _words in RUN_CASES:
        case(f"run-{_backend}-{_name}", _words)(
            lambda tmp, b=_backend, inputs=_inputs: gf.run(_mlp_graph(), inputs(), backend=b))
    case(f"run-{_backend}-inconsistent-batch", ("batch", "already bound to 2"))(
        lambda tmp, b=_backend: gf.run(_graph_two_inputs(), {"x": X, "y": np.zeros((3, 4), np.float32)}, backend=b))
    case(f"run-{_backend}-param-override-shape", ("param", "shape"))(
        lambda tmp, b=_backend: gf.run(_mlp_graph(), {"x": X}, backend=b,
                                       params={"0.weight": np.zeros((9, 9), np.float32)}))

case("run-unknown-backend", ("tensorflow",))(lambda tmp: gf.run(_mlp_graph(), {"x": X}, backend="tensorflow"))


# ---- checkpoints ------------------------------------------------------------------------------------

def _trainer(hidden=3, lr=1e-2, opt="adam"):
    import optax
    net = nn.seq().add(nn.Linear(4, hidden)).add_fn(gf.relu).add(nn.Linear(hidden, 2))
    return gf.Trainer(net, loss_fn=nn.functional.cross_entropy, optimizer=getattr(optax, opt)(lr),
                      inputs=gf.TensorSpec(("batch", 4)), targets=gf.TensorSpec(("batch",), "int64"), progress=False)


def _saved_checkpoint(tmp):
    t = _trainer()
    t.train_step(np.ones((4, 4), np.float32), np.zeros(4, np.int64))
    t.save_checkpoint(os.path.join(tmp, "ckpt"))


@case("checkpoint-wrong-model", ("does not match this model",), setup=_saved_checkpoint)
def _ckpt_wrong_model(tmp):
    return _trainer(hidden=5).load_checkpoint(os.path.join(tmp, "ckpt"))


@case("checkpoint-wrong-optimizer", ("different optimizer",), setup=_saved_checkpoint)
def _ckpt_wrong_opt(tmp):
    return _trainer(opt="sgd").load_checkpoint(os.path.join(tmp, "ckpt"))


@case("checkpoint-empty-dir", ("no checkpoint",))
def _ckpt_empty(tmp):
    from graphforge.train.checkpoint import read_checkpoint
    return read_checkpoint(str(tmp))


def _corrupt_ckpt(what):
    def setup(tmp):
        _saved_checkpoint(tmp)
        root = os.path.join(tmp, "ckpt")
        path = os.path.join(root, sorted(os.listdir(root))[-1], what)
        with open(path, "r+b") as f:
            f.truncate(max(0, os.path.getsize(path) // 2))
    return setup


@case("checkpoint-truncated-meta", ("meta.json",), setup=_corrupt_ckpt("meta.json"))
def _ckpt_meta(tmp):
    return _trainer().load_checkpoint(os.path.join(tmp, "ckpt"))


@case("checkpoint-truncated-params", ("params.safetensors",), setup=_corrupt_ckpt("params.safetensors"))
def _ckpt_params(tmp):
    return _trainer().load_checkpoint(os.path.join(tmp, "ckpt"))


# ---- the train CLI with model files that raise ------------------------------------------------------

TRAIN_HEAD = """\
import numpy as np, optax, graphforge as gf
from graphforge import nn
model = nn.seq().add(nn.Linear(4, 2))
inputs = gf.TensorSpec(("batch", 4))
targets = gf.TensorSpec(("batch",), "int64")
loss = nn.functional.cross_entropy
optimizer = optax.sgd(0.1)
def data():
    return np.ones((8, 4), np.float32), np.zeros(8, np.int64)
"""
TRAIN_FILES = [
    ("raises-at-import", TRAIN_HEAD + "1 / 0\n", ("ZeroDivisionError", "train.py:10")),
    ("syntax-error", TRAIN_HEAD + "def broken(:\n", ("SyntaxError", "train.py:10")),
    ("no-loss", TRAIN_HEAD + "del loss\n", ("loss",)),
    ("data-raises", TRAIN_HEAD + "def data():\n    raise RuntimeError('no dataset here')\n",
     ("no dataset here", "train.py:11")),
    ("make-model-raises", TRAIN_HEAD.replace("model = ", "_m = ") + "def make_model():\n    raise ValueError('bad width')\n",
     ("bad width", "train.py:11")),
    ("loss-raises", TRAIN_HEAD + "def loss(p, t):\n    raise KeyError('labels')\n", ("labels", "train.py:11")),
    ("sys-exit", TRAIN_HEAD + "import sys\nsys.exit(3)\n", ("sys.exit",)),
    ("wrong-data-shape", TRAIN_HEAD + "def data():\n    return np.ones((8, 5), np.float32), np.zeros(8, np.int64)\n",
     ("(8, 5)",)),
]


def _cli_train(tmp):
    import contextlib
    import io

    from graphforge.cli import main

    path = os.path.join(tmp, "train.py")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["train", path, "--quiet", "--checkpoint-dir", os.path.join(tmp, "ckpts")])
    # The CLI turns the typed error into exit status 2 and one message: re-raise it for the checks.
    raise _CliFailed(code, err.getvalue())


class _CliFailed(GraphforgeError):
    def __init__(self, code, text):
        super().__init__(f"exit status {code}: {text}")
        self.code = code


for _name, _src, _words in TRAIN_FILES:
    case(f"cli-train-{_name}", ("exit status 2",) + _words,
         setup=lambda tmp, src=_src: _write(tmp, "train.py", src.encode()))(_cli_train)


# ---- the checks -------------------------------------------------------------------------------------

def _snapshot(root) -> dict:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            st = os.stat(p)
            if st.st_size > 64 << 20:  # the sparse multi-GiB weight files: size and mtime, not a 6 GiB read
                out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
                continue
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
        for d in dirs:
            out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = "dir"
    return out


def test_corpus_is_large_enough():
    assert len(CASES) >= 145  # 95 before issue 20, + at least 40 from its classes
    assert sum(c.memory for c in CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


def run_case(c: Case, root: str) -> dict:
    """Run one case in ``root``: what it raised, how long it took, whether files changed."""
    if c.setup is not None:
        c.setup(root)
    before = _snapshot(root)
    start = time.monotonic()
    try:
        c.act(root)
        out = {"type": None, "typed": False, "message": "no error raised"}
    except BaseException as exc:  # noqa: BLE001 - MemoryError and RecursionError are what we look for
        out = {"type": type(exc).__name__, "typed": isinstance(exc, GraphforgeError), "message": str(exc),
               "code": getattr(exc, "code", None) if isinstance(exc, _CliFailed) else None}
    out["elapsed"] = time.monotonic() - start
    out["changed"] = _snapshot(root) != before
    out["pwned"] = os.path.exists(os.path.join(root, "PWNED"))
    return out


MEMORY_LIMIT = 4 << 30
_memory_results: dict = {}


def _memory_result(c: Case) -> dict:
    """Results of every memory case, from one child process under RLIMIT_AS = 4 GiB (run once)."""
    if not _memory_results:
        import subprocess
        import sys

        names = [m.name for m in CASES if m.memory]
        here = os.path.dirname(os.path.abspath(__file__))
        proc = subprocess.run([sys.executable, os.path.join(here, "memlimit_child.py"), str(MEMORY_LIMIT), *names],
                              capture_output=True, text=True, timeout=240)
        lines = proc.stdout.strip().splitlines()
        assert proc.returncode == 0 and lines, f"memory-limited child failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
        _memory_results.update(json.loads(lines[-1]))
    return _memory_results[c.name]


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_hostile_input_gives_typed_error(c: Case, tmp_path):
    r = _memory_result(c) if c.memory else run_case(c, str(tmp_path))
    message = r["message"]
    assert r["typed"], f"{c.name}: expected a GraphforgeError, got {r['type']}: {message[:2000]}"
    if r.get("code") is not None:
        # the CLI reports typed errors as "graphforge <command>: <message>" with exit status 2
        assert r["code"] == 2, message
        assert "Traceback" not in message, message
    for word in c.words:
        assert word.lower() in message.lower(), f"{c.name}: message does not name {word!r}:\n{message}"
    assert r["elapsed"] < 5.0, f"{c.name} took {r['elapsed']:.1f} s"
    assert not r["changed"], f"{c.name} wrote or changed files"
    assert not r["pwned"], "a loader unpickled its input"


SOURCE_DIRS = ["graphforge", "passes", "runtimes", "apps"]


def test_loaders_never_unpickle():
    """No np.load without allow_pickle=False, no pickle/marshal/torch.load/yaml.load anywhere."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    offenders = []
    for d in SOURCE_DIRS:
        for dirpath, _, files in os.walk(os.path.join(root, d)):
            for f in files:
                if not f.endswith(".py"):
                    continue
                p = os.path.join(dirpath, f)
                for i, line in enumerate(open(p, encoding="utf-8"), 1):
                    code = line.split("#")[0]
                    if ("np.load(" in code or "numpy.load(" in code) and "allow_pickle=False" not in code:
                        offenders.append(f"{p}:{i}: {line.strip()}")
                    if any(s in code for s in ("import pickle", "pickle.load", "marshal.load", "torch.load(",
                                               "yaml.load(", "allow_pickle=True", "dill.")):
                        offenders.append(f"{p}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
