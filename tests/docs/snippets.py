"""A markdown snippet runner: the code blocks of README.md and docs/ run as tests.

Per file, in order, in one shared namespace (like a notebook) and in a scratch working directory
where the repository's ``examples/`` and ``tests/fixtures/`` are reachable by the same relative
paths as from the repository root:

* a ```` ```python ```` block runs; other fences (``text``, ``sh``, none) are text;
* HTML comments right before a fence steer it (GitHub and the built site show nothing of them):

  ``<!-- skip: REASON -->``
      the next block is not run (say why: a server that blocks, a GPU, a second machine);
  ``<!-- file: NAME -->``
      the next block is written to NAME in the working directory instead of being run (a model
      file that a later ``graphforge`` command reads);
  ``<!-- requires: MODULE -->``
      the next block runs only when MODULE imports (PyTorch, for the side-by-side pages: the
      ``bench`` extra installs it); otherwise it is counted as skipped;
  ``<!-- quick: OLD => NEW; OLD2 => NEW2 -->``
      in the quick tier (``make test``) the next block runs with these textual replacements
      (smaller sizes, fewer epochs); the slow tier runs it as written;
  ``<!-- subst: OLD => NEW -->``
      the same replacements in both tiers (e.g. the page's port 8000 => the test server's port);
  ``<!-- output -->``
      the next block (any fence but python) must equal what the previous python block printed
      (``...`` matches anything, whitespace is normalised: doctest's rules);
  ``<!-- cli-output: ARGS | KEY, KEY -->``
      ``graphforge ARGS`` is run, and the lines of the next block starting with each ``KEY``
      must equal the command's lines starting with the same key (``KEY...``: only that such a
      line is printed, for lines with timings);
* a hidden block ``<!-- setup ... -->`` or ``<!-- check ... -->`` (python between the two
  markers) runs at its place: data a page assumes (``x``, ``y``), or asserts that the numbers the
  text quotes (node counts, shapes) are what the code gives, without cluttering the page.
"""
from __future__ import annotations

import contextlib
import doctest
import importlib.util
import io
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Block", "parse_markdown", "run_markdown", "SnippetError", "ROOT"]

ROOT = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"^(\s*)(```+)\s*([\w+-]*)[^\n]*$")
_DIRECTIVE = re.compile(r"^<!--\s*(skip|file|requires|quick|subst|output|cli-output)(?::\s*(.*?))?\s*-->\s*$")


class SnippetError(AssertionError):
    """A block failed or its quoted output drifted; names the file and line."""


@dataclass
class Block:
    """One fenced block (or a hidden setup block) of a markdown file."""
    path: str
    line: int                 # 1-based line of the opening fence
    lang: str
    code: str
    directives: dict = field(default_factory=dict)
    hidden: bool = False


def parse_markdown(text: str, path: str = "<md>") -> list[Block]:
    """The fenced blocks of ``text`` with the directives that precede each."""
    lines = text.splitlines()
    blocks, pending, i = [], {}, 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped in ("<!-- setup", "<!-- check"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "-->")
            blocks.append(Block(path, i + 1, "python", "\n".join(lines[i + 1:end]), {}, hidden=True))
            i = end + 1
            continue
        m = _DIRECTIVE.match(stripped)
        if m:
            pending[m.group(1)] = (m.group(2) or "").strip()
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            indent, ticks, lang = fence.groups()
            end = i + 1
            while end < len(lines) and not lines[end].strip().startswith(ticks):
                end += 1
            body = [l[len(indent):] if l.startswith(indent) else l for l in lines[i + 1:end]]
            blocks.append(Block(path, i + 1, lang.lower(), "\n".join(body), pending))
            pending = {}
            i = end + 1
            continue
        if stripped:
            pending = {}      # a directive applies only to the fence right after it
        i += 1
    return blocks


def _quick(code: str, spec: str, where: str) -> str:
    for pair in filter(None, (p.strip() for p in spec.split(";"))):
        old, _, new = pair.partition("=>")
        old, new = old.strip(), new.strip()
        if old not in code:
            raise SnippetError(f"{where}: quick replacement {old!r} is not in the block")
        code = code.replace(old, new)
    return code


def _check_output(got: str, want: str, where: str) -> None:
    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    if not checker.check_output(want.strip() + "\n", got.strip() + "\n", flags):
        raise SnippetError(f"{where}: the page quotes\n{want}\nbut the code printed\n{got}")


def _run_cli(args: str) -> str:
    from graphforge.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = main(shlex.split(args))
    if status != 0:
        raise SnippetError(f"graphforge {args} exited {status}:\n{out.getvalue()}")
    return out.getvalue()


def _check_cli(spec: str, quoted: str, where: str) -> None:
    args, _, keys = spec.partition("|")
    printed = _run_cli(args.strip())
    for key in filter(None, (k.strip() for k in keys.split(","))):
        if key.endswith("..."):      # only that a line starts so (the rest varies from run to run)
            key = " ".join(key[:-3].split())
            if not any(" ".join(l.split()).startswith(key) for l in printed.splitlines()):
                raise SnippetError(f"{where}: `graphforge {args.strip()}` printed no line starting with {key!r}:\n"
                                   f"{printed}")
            continue
        want = [l.strip() for l in quoted.splitlines() if l.strip().startswith(key)]
        got = [l.strip() for l in printed.splitlines() if l.strip().startswith(key)]
        if not want:
            raise SnippetError(f"{where}: the quoted output has no line starting with {key!r}")
        if [" ".join(w.split()) for w in want] != [" ".join(g.split()) for g in got]:
            raise SnippetError(f"{where}: `graphforge {args.strip()}` prints\n{chr(10).join(got)}\n"
                               f"where the page quotes\n{chr(10).join(want)}")


def _scratch(workdir: Path) -> None:
    for name in ("examples", "tests"):
        link = workdir / name
        if not link.exists():
            link.symlink_to(ROOT / name, target_is_directory=True)


def run_markdown(path: Path, workdir: Path, *, quick: bool = True) -> dict:
    """Run every python block of ``path`` in order in ``workdir``; check quoted outputs.
    Returns counts: ``{"run": n, "skipped": n, "outputs": n, "cli": n, "files": n}``."""
    blocks = parse_markdown(path.read_text(encoding="utf-8"), str(path))
    ns: dict = {"__name__": f"__doc_{path.stem}__"}
    counts = {"run": 0, "skipped": 0, "outputs": 0, "cli": 0, "files": 0}
    last_stdout = ""
    _scratch(workdir)
    old = os.getcwd()
    os.chdir(workdir)
    try:
        for b in blocks:
            where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{b.line}"
            if "output" in b.directives and b.lang != "python":
                _check_output(last_stdout, b.code, where)
                counts["outputs"] += 1
                continue
            if "file" in b.directives:
                Path(b.directives["file"]).write_text(b.code + "\n", encoding="utf-8")
                counts["files"] += 1
                continue
            if "cli-output" in b.directives:
                _check_cli(b.directives["cli-output"], b.code, where)
                counts["cli"] += 1
                continue
            if b.lang != "python":
                continue
            if "skip" in b.directives:
                if not b.directives["skip"]:
                    raise SnippetError(f"{where}: <!-- skip --> needs a reason: <!-- skip: why -->")
                counts["skipped"] += 1
                continue
            if "requires" in b.directives and importlib.util.find_spec(b.directives["requires"]) is None:
                counts["skipped"] += 1
                continue
            code = _quick(b.code, b.directives["quick"], where) if quick and "quick" in b.directives else b.code
            if "subst" in b.directives:
                code = _quick(code, b.directives["subst"], where)
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    # padded so that tracebacks and the IR's source locations give the page's line
                    exec(compile("\n" * b.line + code, where.rsplit(":", 1)[0], "exec"), ns)
            except Exception as exc:
                raise SnippetError(f"{where}: the block raised {type(exc).__name__}: {exc}\n--- block ---\n{code}\n"
                                   f"--- printed ---\n{out.getvalue()}") from exc
            last_stdout = out.getvalue()
            counts["run"] += 1
    finally:
        os.chdir(old)
        # a page's hidden setup registers what it started (a server) under this name
        for stop in reversed(ns.get("_doc_cleanup", [])):
            stop()
    return counts


def main(argv: list[str] | None = None) -> int:
    """``python tests/docs/snippets.py PAGE WORKDIR [--full]``: run one page (the tests run each page
    in its own process, since a page may register ops, passes or start a server process-wide)."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("page")
    parser.add_argument("workdir")
    parser.add_argument("--full", action="store_true", help="run as written (no quick replacements)")
    args = parser.parse_args(argv)
    try:
        counts = run_markdown(Path(args.page).resolve(), Path(args.workdir), quick=not args.full)
    except SnippetError as exc:
        print(f"SNIPPET FAILED: {exc}", file=sys.stderr)
        return 1
    print("COUNTS " + json.dumps(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
