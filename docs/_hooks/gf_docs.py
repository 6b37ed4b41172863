"""MkDocs hooks for graphforge's site (``mkdocs.yml`` ``hooks:``); everything runs offline.

* ``index.md`` is generated from ``README.md`` (one source for the front page): links into
  ``docs/`` are made relative to the site, links to files outside ``docs/`` (examples, sources)
  become plain code names, since the site does not carry those files.
* A line ``<!-- api: MODULE [exclude=a,b] -->`` is replaced by one mkdocstrings entry per name of
  ``MODULE.__all__`` (at the path where the object is defined), so a new public name reaches the
  reference without editing a page. Names made by a factory (``gf.relu``) or data constants, which
  a static reader cannot see, are rendered from the live object.
* A line ``<!-- cli-help: COMMAND -->`` is replaced by ``graphforge COMMAND --help`` as printed by
  the installed CLI, so the command-line reference cannot drift from the parser.
"""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from mkdocs.structure.files import File

_ROOT = Path(__file__).resolve().parents[2]
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_API = re.compile(r"^<!-- api: ([\w.]+)(?: exclude=([\w,]+))? -->$", re.M)
_CLI = re.compile(r"^<!-- cli-help: ?([\w-]*) -->$", re.M)


def _readme_link(match: re.Match) -> str:
    text, target = match.group(1), match.group(2)
    if re.match(r"^[a-z]+://|^#|^mailto:", target):
        return match.group(0)
    if target.startswith("docs/"):
        return f"[{text}]({target[len('docs/'):]})"
    # a file of the repository that the site does not publish: name it instead of linking it
    return text if text.startswith("`") else f"`{text}`"


def index_markdown(readme: str) -> str:
    """The site's front page: README.md with its links rewritten for the site."""
    return _LINK.sub(_readme_link, readme)


def cli_help(command: str) -> str:
    """``graphforge [COMMAND] --help`` as the installed CLI prints it (a fenced text block)."""
    from graphforge.cli import build_parser

    parser = build_parser()
    argv = [command, "--help"] if command else ["--help"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        parser.parse_args(argv)
    return "```text\n" + out.getvalue().rstrip() + "\n```"


# setuptools package-dir of pyproject.toml: import name -> folder of the repository
PACKAGE_DIRS = {"graphforge": "graphforge", "graphforge/passes": "passes", "graphforge/runtimes": "runtimes",
                "graphforge/train": "apps/train", "graphforge/serve": "apps/serve", "graphforge/cli": "apps/cli"}
SOURCE_MIRROR = _ROOT / "build" / "docs-src"


def mirror_package() -> Path:
    """Lay out ``build/docs-src/graphforge`` as the installed package is (symlinks into the
    repository), so mkdocstrings' static loader finds ``graphforge.cli`` and friends."""
    import shutil

    shutil.rmtree(SOURCE_MIRROR, ignore_errors=True)
    # file links, not folder links: griffe does not descend into linked folders
    for name, folder in PACKAGE_DIRS.items():
        src = _ROOT / folder
        for path in src.rglob("*.py"):
            rel = path.relative_to(src)
            if name == "graphforge" and rel.parts[0] in {n.split("/")[1] for n in PACKAGE_DIRS if "/" in n}:
                continue
            dest = SOURCE_MIRROR / name / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.symlink_to(path)
    return SOURCE_MIRROR


def on_config(config):
    mirror_package()
    return config


# mkdocstrings resolves its ``paths`` in its own on_config, which runs before this hook's (hooks come
# after plugins): lay the mirror out when MkDocs loads this file, so a fresh checkout builds too.
mirror_package()


def _live_entry(module: str, name: str, obj) -> str:
    """Markdown for an object griffe cannot see statically: heading, signature, docstring."""
    import inspect

    doc = inspect.cleandoc(obj.__doc__ or "") if callable(obj) else _attribute_doc(obj, name)
    if callable(obj):
        try:
            sig = f"{name}{inspect.signature(obj)}"
        except (TypeError, ValueError):
            sig = name
        head = f"```python\n{module}.{sig}\n```"
    else:
        head = f"```python\n{module}.{name} = {obj!r}\n```"
    return f'<h2 id="{module}.{name}"><code>{name}</code></h2>\n\n{head}\n\n{doc}\n'


def _attribute_doc(obj, name: str) -> str:
    """The attribute docstring of a data constant (found in the module that assigns it)."""
    import sys

    from_tests = _ROOT / "tests" / "docs"
    if str(from_tests.parent.parent) not in sys.path:
        sys.path.insert(0, str(from_tests.parent.parent))
    from tests.docs.docstring_rules import _defining_module, attribute_docstring

    for mod_name, mod in list(sys.modules.items()):
        if mod_name.startswith("graphforge") and getattr(mod, name, None) is obj:
            found = attribute_docstring(_defining_module(mod_name, name, obj), name)
            if found:
                return found
    return ""


def api_entries(module: str, exclude: str | None = None) -> str:
    """One reference entry per public name of ``module`` (see the module docstring)."""
    import importlib
    import inspect

    mod = importlib.import_module(module)
    skip = set((exclude or "").split(",")) | {"__version__"}
    out = []
    for name in mod.__all__:
        if name in skip:
            continue
        obj = getattr(mod, name)
        if inspect.ismodule(obj):
            continue
        qual = getattr(obj, "__qualname__", "")
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and "<" not in qual:
            out.append(f"::: {obj.__module__}.{qual}\n")
        else:
            out.append(_live_entry(module, name, obj))
    return "\n".join(out)


def on_files(files, config):
    readme = (_ROOT / "README.md").read_text(encoding="utf-8")
    files.append(File.generated(config, "index.md", content=index_markdown(readme)))
    return files


def on_page_markdown(markdown, page, config, files):
    markdown = _API.sub(lambda m: api_entries(m.group(1), m.group(2)), markdown)
    return _CLI.sub(lambda m: cli_help(m.group(1)), markdown)
