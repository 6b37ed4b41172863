"""``graphforge serve MODEL.onnx`` or ``--model-repository DIR``: serve ONNX models over HTTP (see :mod:`graphforge.serve`).

The parser is built without importing Starlette, uvicorn or onnxruntime; they are loaded when
the command runs.
"""
from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``serve`` subcommand on ``subparsers`` (from ``add_subparsers()``)."""
    from graphforge.serve.config import add_arguments

    parser = subparsers.add_parser(
        "serve", help="serve ONNX models over HTTP (Open Inference Protocol) with dynamic batching",
        description="Serve MODEL.onnx, or every model of --model-repository DIR, with onnxruntime: the Open "
                    "Inference Protocol (KServe v2 / Triton HTTP: /v2/health/*, /v2/models/<m>[/versions/<v>]"
                    "[/ready|/infer], /v2/repository/...), POST /v1/predict (JSON, .npy or .npz), GET /v1/model, "
                    "GET /healthz, GET /metrics (Prometheus). Binds 127.0.0.1 unless --host and "
                    "--allow-remote say otherwise; SIGINT/SIGTERM shut down gracefully.")
    add_arguments(parser)
    parser.set_defaults(command="serve")
    return parser


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 0 after a clean shutdown, 2 on a user error."""
    from graphforge.serve.server import run_from_args

    return run_from_args(args)
