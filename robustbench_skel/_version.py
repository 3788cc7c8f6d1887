"""The package version, in a module of its own so the record writer reads it without importing the package's ``__init__``."""

__version__ = "0.1.0"
