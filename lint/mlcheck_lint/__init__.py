"""mlcheck-lint: a libcst checker for documentation drift, dependency pinning and ML code smells."""

from ._version import __version__

__all__ = ["__version__"]
