"""The package version, in the core so every layer can name it without importing the facade."""

__all__ = ["__version__"]

__version__ = "0.1.0"
