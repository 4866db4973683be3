"""mlcheck-lint: a libcst checker for documentation drift, dependency pinning and ML code smells."""

__version__ = "0.1.0"
