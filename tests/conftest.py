"""Shared test helpers: run a real pytest session with torch made unimportable."""

from __future__ import annotations

import pytest

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
