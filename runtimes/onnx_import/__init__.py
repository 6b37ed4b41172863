"""ONNX import: ``from_onnx(path_or_model) -> Graph`` (validated, external data confined)."""
from .importer import IMPORTERS, NeedsConstantError, from_onnx, supported_op_types
from .module import GraphModule

__all__ = ["from_onnx", "supported_op_types", "IMPORTERS", "NeedsConstantError", "GraphModule"]
