"""The linter's version (a module of its own so every part can import it cheaply)."""

__version__ = "0.2.0"
