"""Every code block of README.md and docs/ runs (issue #22), and the outputs the text quotes are
checked — see ``snippets.py`` for the conventions. ``make test`` runs the pages in their quick form
(``<!-- quick: ... -->`` replacements: fewer epochs, smaller sizes); the slow tier runs them as written."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from snippets import ROOT, SnippetError, parse_markdown, run_markdown

PAGES = sorted(["README.md"] + [str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")
                                if "reference" not in p.parts])
QUICK_PAGES = [p for p in PAGES if "<!-- quick:" in (ROOT / p).read_text(encoding="utf-8")]


def _run_page(page: str, workdir, *, full: bool) -> dict:
    """One page in its own process: pages register ops and passes and start servers process-wide."""
    cmd = [sys.executable, str(ROOT / "tests" / "docs" / "snippets.py"), str(ROOT / page), str(workdir)]
    proc = subprocess.run(cmd + (["--full"] if full else []), capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "tests" / "docs")})
    assert proc.returncode == 0, f"{page}:\n{proc.stderr[-6000:]}"
    line = next(l for l in proc.stdout.splitlines() if l.startswith("COUNTS "))
    return json.loads(line[len("COUNTS "):])


# Pages written on other branches before this runner existed, whose blocks are API sketches (free
# names such as `input_size`): skipped until each block is made runnable or marked
# `<!-- skip: why -->`. Ignored where the page does not exist.
SKETCH_PAGES: dict[str, str] = {}


@pytest.mark.parametrize("page", PAGES)
def test_page_runs(page, tmp_path):
    if page in SKETCH_PAGES:
        pytest.skip(SKETCH_PAGES[page])
    counts = _run_page(page, tmp_path, full=False)
    blocks = parse_markdown((ROOT / page).read_text(encoding="utf-8"))
    assert counts["run"] == len([b for b in blocks if b.lang == "python"]) - counts["skipped"] - counts["files"]


@pytest.mark.slow
@pytest.mark.parametrize("page", QUICK_PAGES)
def test_page_runs_in_full(page, tmp_path):
    _run_page(page, tmp_path, full=True)


def _md(tmp_path, text: str):
    path = tmp_path / "page.md"
    path.write_text(textwrap.dedent(text))
    return path


def test_quoted_output_is_checked(tmp_path):
    page = _md(tmp_path, """
        ```python
        print(6 * 7)
        ```
        <!-- output -->
        ```text
        41
        ```
        """)
    with pytest.raises(SnippetError, match="quotes"):
        run_markdown(page, tmp_path)


def test_output_ellipsis_and_shared_namespace(tmp_path):
    page = _md(tmp_path, """
        <!-- setup
        n = 6
        -->
        ```python
        print("shape", (n, 7), "took 0.123 s")
        ```
        <!-- output -->
        ```text
        shape (6, 7) took ... s
        ```
        """)
    assert run_markdown(page, tmp_path)["outputs"] == 1


def test_failing_block_names_file_and_line(tmp_path):
    page = _md(tmp_path, """
        text

        ```python
        1 / 0
        ```
        """)
    with pytest.raises(SnippetError, match=r"page.md:4: the block raised ZeroDivisionError"):
        run_markdown(page, tmp_path)


def test_skip_needs_a_reason_and_quick_must_match(tmp_path):
    with pytest.raises(SnippetError, match="needs a reason"):
        run_markdown(_md(tmp_path, "<!-- skip -->\n```python\n1 / 0\n```\n"), tmp_path)
    with pytest.raises(SnippetError, match="is not in the block"):
        run_markdown(_md(tmp_path, "<!-- quick: epochs=9 => epochs=1 -->\n```python\nx = 1\n```\n"), tmp_path)
    ran = run_markdown(_md(tmp_path, "<!-- quick: 10**9 => 3 -->\n```python\nx = list(range(10**9))\n```\n"),
                       tmp_path)
    assert ran["run"] == 1


def test_cli_output_drift_is_caught(tmp_path):
    page = _md(tmp_path, """
        <!-- cli-output: compile examples/mlp.py -o mlp.onnx | nodes -->
        ```
          nodes       3 traced -> 2 after 'default' -> 4 ONNX nodes
        ```
        """)
    with pytest.raises(SnippetError, match="3 ONNX nodes"):
        run_markdown(page, tmp_path)
