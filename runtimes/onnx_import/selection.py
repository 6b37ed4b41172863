"""Importers for the selection ops (graphforge/ops/selection.py)."""
__all__: list[str] = []
