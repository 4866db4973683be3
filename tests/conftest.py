"""Shared test helpers: run a real pytest session with torch made unimportable."""

from __future__ import annotations

import pytest

# Lint fixture trees are inputs to the linter (some hold their own tests/ folders that
# import packages that exist only there); pytest must never collect them.
collect_ignore = ["lint/fixtures"]


@pytest.fixture(autouse=True)
def _fresh_bytecode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop cached bytecode whenever a pytester test rewrites one of its files.

    Tests often rewrite ``test_model.py`` with a same-length edit (``0.8`` for ``0.9``)
    within one second. Bytecode caches (pytest's assertion rewriter on pytest 8.0,
    CPython's own) are keyed by the source's mtime in seconds and its size, so the old
    code would run again.
    """
    if "pytester" not in request.fixturenames:
        return
    import shutil

    real = pytest.Pytester._makefile

    def makefile(self: pytest.Pytester, *args: object, **kwargs: object) -> object:
        made = real(self, *args, **kwargs)
        for cache in self.path.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
        return made

    monkeypatch.setattr(pytest.Pytester, "_makefile", makefile)

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
