"""The library's version, in one place (the package, file headers and exports read it)."""

__version__ = "0.1.0"
