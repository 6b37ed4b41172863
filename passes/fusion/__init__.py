"""Fusion rules, one per module."""
__all__: list[str] = []
