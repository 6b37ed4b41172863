"""``graphforge show FILE.(py|onnx|gf) [--format text|dot|svg] [-o OUT]``: print or draw a graph.

* ``.py``   a model file (docs/cli.md), traced in eval mode (``FILE.py:ATTR`` picks the attribute)
* ``.onnx`` an ONNX model, imported with ``gf.from_onnx``
* ``.gf``   graphforge's text IR, read with ``gf.parse``

``text`` (default) is the text IR; ``dot`` is Graphviz DOT built from ``graph.to_networkx()``;
``svg`` renders the DOT with Graphviz's ``dot`` program, which must be installed.
Without ``-o`` the result goes to standard output.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

__all__ = ["add_parser", "run", "load_graph", "to_dot", "render_svg"]

_FORMATS = ("text", "dot", "svg")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("show", help="print a model's IR or draw it (DOT/SVG)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE", help="a model file (.py[:ATTR]), an ONNX model (.onnx) or IR text (.gf)")
    p.add_argument("--format", choices=_FORMATS, default="text", help="text IR (default), Graphviz DOT or SVG")
    p.add_argument("-o", "--output", default=None, help="write here instead of standard output")
    p.add_argument("--batch", default=None, metavar="N|dynamic",
                   help="for .py files: fix the symbolic batch dim to N")
    p.set_defaults(command="show")
    return p


def load_graph(target: str, batch: int | None = None):
    """The graph held by a ``.py`` model file, an ``.onnx`` model or a ``.gf`` IR text file."""
    import graphforge as gf
    from graphforge.cli.modelfile import load_model_file, split_target, trace_model
    from graphforge.errors import LoadError

    path, _attr = split_target(target)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".py", ".onnx", ".gf"):
        raise LoadError(f"cannot show {path!r}: expected a .py model file, an .onnx model or a .gf IR file")
    if ext == ".py":
        return trace_model(load_model_file(target), batch)
    if not os.path.isfile(path):
        raise LoadError(f"{path!r} does not exist" if not os.path.exists(path) else f"{path!r} is not a file")
    if ext == ".onnx":
        return gf.from_onnx(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError(f"cannot read {path!r}: {exc}") from None
    return gf.parse(text)


def _quote(text: str) -> str:
    # DOT double-quoted strings: JSON escaping of quotes and backslashes is the same; newlines as \n
    return json.dumps(str(text), ensure_ascii=False)


_STYLE = {
    "input": 'shape=ellipse, style=filled, fillcolor="#d8ecff"',
    "param": 'shape=box, style="rounded,filled", fillcolor="#eeeeee", fontsize=10',
    "buffer": 'shape=box, style="rounded,filled", fillcolor="#f4e8d0", fontsize=10',
    "const": 'shape=box, style="rounded,filled", fillcolor="#f0f0f0", fontsize=10',
    "node": 'shape=box, style=filled, fillcolor="#fff4c2"',
    "output": 'shape=ellipse, style=filled, fillcolor="#d6f5d6"',
}


def to_dot(graph) -> str:
    """Graphviz DOT text for ``graph``: one vertex per input/param/node/output of ``to_networkx()``,
    nodes labelled with op, scope and source line, edges with the tensor type."""
    nxg = graph.to_networkx()
    lines = [f"digraph {_quote(graph.name)} {{", "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9];']
    for key, data in nxg.nodes(data=True):
        kind = data.get("kind", "node")
        label = data.get("label", key)
        if kind == "node":
            extra = [x for x in (data.get("scope"), data.get("loc")) if x]
            label = "\n".join([label] + extra)
        elif kind in ("input", "param", "buffer", "const"):
            label = f"{label}\n{data.get('type', '')}"
        tooltip = f", tooltip={_quote(data['loc'])}" if data.get("loc") else ""
        lines.append(f"  {_quote(key)} [label={_quote(label)}, {_STYLE.get(kind, _STYLE['node'])}{tooltip}];")
    for src, dst, data in nxg.edges(data=True):
        lines.append(f"  {_quote(src)} -> {_quote(dst)} [label={_quote(data.get('type', ''))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_svg(dot_text: str) -> str:
    """SVG from DOT via Graphviz's ``dot`` program (ExportError when it is not installed)."""
    from graphforge.errors import ExportError

    exe = shutil.which("dot")
    if exe is None:
        raise ExportError("--format svg needs Graphviz's `dot` program, which is not on PATH",
                          hint="install Graphviz (apt install graphviz, brew install graphviz, conda install "
                               "graphviz), or use --format dot and render it elsewhere")
    try:
        done = subprocess.run([exe, "-Tsvg"], input=dot_text, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExportError(f"running {exe} failed: {exc}") from None
    if done.returncode != 0:
        raise ExportError(f"{exe} -Tsvg failed (exit {done.returncode}): {done.stderr.strip()[:500]}")
    return done.stdout


def _write_atomic(path: str, text: str) -> None:
    from graphforge.errors import InputError

    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InputError(f"output path {path!r} is a directory")
    if not os.path.isdir(parent):
        raise InputError(f"cannot write {path!r}: the folder {parent!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".graphforge-show-", dir=parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run(args) -> int:
    from graphforge.cli.compile import parse_batch, report_errors

    from . import exitcodes

    try:
        batch = parse_batch(args.batch) if args.batch is not None else None
    except argparse.ArgumentTypeError as exc:
        print(f"graphforge show: --batch: {exc}", file=sys.stderr)
        return exitcodes.USAGE

    def work() -> int:
        graph = load_graph(args.file, batch)
        if args.format == "text":
            text = str(graph) + "\n"
        else:
            text = to_dot(graph)
            if args.format == "svg":
                text = render_svg(text)
        if args.output:
            _write_atomic(args.output, text)
            print(f"wrote {args.output} ({args.format}, {len(graph.nodes)} nodes)", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return exitcodes.OK

    return report_errors("show", args.output, work)
