"""The NumPy reference interpreter: the semantic oracle and the constant folder's engine."""
from .interpreter import evaluate, evaluate_node, run

__all__ = ["evaluate", "evaluate_node", "run"]
