"""The ``graphforge`` console script: one ``argparse`` parser, one module per subcommand.

Each subcommand module exposes ``add_parser(subparsers)`` and ``run(args) -> int`` and is imported
only when needed, so ``graphforge --help`` stays fast and ``import graphforge`` never loads a back end.
"""
from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "build_parser", "SUBCOMMANDS"]

# subcommand -> module under graphforge.cli (each has add_parser and run)
SUBCOMMANDS = {
    "compile": "compile",
    "show": "show",
    "train": "train",
    "optimize": "optimize",
    "serve": "serve",
    "bench": "bench",
    "profile": "profile",
}
"""Subcommand -> its module under ``graphforge.cli`` (each has ``add_parser`` and ``run``)."""


def build_parser() -> argparse.ArgumentParser:
    """The ``graphforge`` argument parser, with one subparser per :data:`SUBCOMMANDS` entry."""
    from graphforge import __version__

    parser = argparse.ArgumentParser(prog="graphforge", description="graphforge: trace, optimise, export, train "
                                     "and serve deep-learning models.")
    parser.add_argument("--version", action="version", version=f"graphforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS.values():
        importlib.import_module(f"graphforge.cli.{module}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``graphforge`` console script.

    Args:
        argv: the arguments after the program name (None: ``sys.argv[1:]``).

    Returns:
        The process exit status (see ``graphforge.cli.exitcodes``: 0 ok, 1 a check failed, 2 bad
        input, 3 a peer failed, 70 a bug, 130 interrupted).

    Raises:
        SystemExit: from argparse for ``--help``, ``--version`` and unparseable arguments; every
            other failure is reported on stderr and returned as a status instead.

    Example:
        ```python
        from graphforge.cli import main
        status = main(["compile", "examples/mlp.py", "-o", "mlp.onnx", "--verify"])
        ```
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    from . import exitcodes

    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return exitcodes.USAGE
    module = importlib.import_module(f"graphforge.cli.{SUBCOMMANDS[args.command]}")
    try:
        code = int(module.run(args) or 0)
    except KeyboardInterrupt:
        return exitcodes.INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - typed errors a subcommand let through, and bugs: one line each
        code = exitcodes.report(args.command, exc)
    if code == exitcodes.PEER_FAILURE:
        exitcodes.exit_if_runtime_abandoned(code)
    return code


if __name__ == "__main__":  # pragma: no cover - python -m graphforge.cli
    sys.exit(main())
