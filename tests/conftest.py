"""Shared test helpers: run a real pytest session with torch made unimportable."""

from __future__ import annotations

import pytest

# Lint fixture trees are inputs to the linter (some hold their own tests/ folders that
# import packages that exist only there); pytest must never collect them.
collect_ignore = ["lint/fixtures"]

try:
    # pytester's in-process runs remove modules first imported during the inner
    # session, and torch cannot be imported twice in one process. Importing it here,
    # once per (worker) process, keeps in-process sessions that use torch safe.
    import torch  # noqa: F401
    import torch._dynamo  # noqa: F401  (imported lazily by the first optimizer step)
except ImportError:  # numpy-only environments (tox -numpy)
    pass

_BLOCK_TORCH = '''
import sys
# Make `import torch` fail as if torch were not installed.
sys.modules["torch"] = None
'''


@pytest.fixture
def numpy_only(pytester: pytest.Pytester):
    """Return a runner for a subprocess pytest session in which torch cannot be imported.

    Usage: ``result = numpy_only("-v")``; write the test files with ``pytester`` first.
    The blocker lives in a ``-p`` plugin module so it runs before any test module.
    """
    pytester.makepyfile(mlcheck_block_torch=_BLOCK_TORCH)

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess("-p", "mlcheck_block_torch", *args)

    return run
