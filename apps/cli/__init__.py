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


def build_parser() -> argparse.ArgumentParser:
    from graphforge import __version__

    parser = argparse.ArgumentParser(prog="graphforge", description="graphforge: trace, optimise, export, train "
                                     "and serve deep-learning models.")
    parser.add_argument("--version", action="version", version=f"graphforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS.values():
        importlib.import_module(f"graphforge.cli.{module}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit status."""
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
