"""``python -m graphforge.serve MODEL.onnx [flags]``: the same as ``graphforge serve``."""
from __future__ import annotations

import argparse
import sys

from .config import add_arguments

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(
        prog="python -m graphforge.serve", description="Serve an ONNX model over HTTP with dynamic batching."))
    from .server import run_from_args

    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
