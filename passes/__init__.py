"""Graph-to-graph passes and the PassManager."""
__all__: list[str] = []
