"""Session guards, on with ``--mlcheck``: per-test seeding and RNG isolation.

* :func:`protocol_guard` wraps a test's setup, call and teardown: it seeds every RNG
  from :func:`~pytest_mlcheck.seeding.derive_seed` (base seed + node id, so the seed
  does not depend on test order) and restores the previous RNG states afterwards.
* :func:`call_guard` wraps the test call.
* :func:`failure_section` is the text added to a failing test's report.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import pytest

from .seeding import derive_seed, get_rng_state, seed_everything, set_rng_state
from .session import MLCheckSession

SEED = pytest.StashKey[int]()


@contextlib.contextmanager
def protocol_guard(item: pytest.Item, session: MLCheckSession) -> Iterator[None]:
    """Seed the RNGs for this test and restore their states when it ends."""
    seed = derive_seed(session.base_seed, item.nodeid)
    item.stash[SEED] = seed
    state = get_rng_state()
    seed_everything(seed)
    try:
        yield
    finally:
        set_rng_state(state)


@contextlib.contextmanager
def call_guard(item: pytest.Item, session: MLCheckSession) -> Iterator[None]:
    """Guard the test call."""
    yield


def failure_section(item: pytest.Item, session: MLCheckSession) -> str:
    """Return the seed of a failing test and the command that reproduces it."""
    seed = item.stash.get(SEED, None)
    return (
        f"seed {seed} (base seed {session.base_seed}); reproduce with:\n"
        f"  pytest '{item.nodeid}' --mlcheck --mlcheck-seed={session.base_seed}"
    )
