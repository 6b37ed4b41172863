"""The typed SSA IR: types, values, nodes, graphs, the text format and the verifier."""
from .dims import Dim, dim_product, resolve_shape
from .graph import Graph, Node, Value
from .parser import parse
from .printer import print_graph
from .types import TensorSpec, TensorType

__all__ = ["Dim", "dim_product", "resolve_shape", "Graph", "Node", "Value", "parse", "print_graph",
           "TensorSpec", "TensorType"]
