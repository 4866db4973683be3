"""Per-test seeding: each test's RNGs are seeded from the base seed and its node id.

:func:`protocol_guard` wraps a test's setup, call and teardown: it seeds every RNG from
:func:`~pytest_mlcheck.seeding.derive_seed` (base seed + node id, so the seed does not
depend on test order or selection) and restores the previous RNG states afterwards, so
no test leaks RNG state into another.

pytest-randomly: when it is active (and resets seeds), it owns the seeding of ``random``
and numpy and the test order; we do not fight it. We seed torch (which it does not seed)
from our derived seed, and when ``--mlcheck-seed`` is not given the base seed is
pytest-randomly's ``--randomly-seed``, so one number reproduces a run.
"""

from __future__ import annotations

import contextlib
import random
import sys
from typing import Any, Iterator

import numpy as np
import pytest

from ..seeding import derive_seed, get_rng_state, seed_everything, set_rng_state
from ..session import MLCheckSession
from .policy import FINDINGS, SEED



def randomly_active(config: pytest.Config) -> bool:
    """Return whether pytest-randomly is active and resets the RNGs before each test.

    Args:
        config: The pytest config.

    Returns:
        True when the ``randomly`` plugin is registered and ``--randomly-dont-reset-seed``
        was not given.
    """
    if not config.pluginmanager.hasplugin("randomly"):
        return False
    try:
        return bool(config.getoption("randomly_reset_seed", True))
    except ValueError:
        return True


def base_seed(session: MLCheckSession) -> tuple[int, str]:
    """Return the base seed every test's seed derives from, and where it came from.

    Args:
        session: The plugin's session state.

    Returns:
        ``(seed, source)``; the source is ``--mlcheck-seed``, ``default`` or
        ``--randomly-seed`` (pytest-randomly active and no ``--mlcheck-seed`` given).
    """
    config = session.config
    if config.getoption("mlcheck_seed", None) is not None:
        return session.base_seed, "--mlcheck-seed"
    if randomly_active(config):
        seed = config.getoption("randomly_seed", None)
        if isinstance(seed, int) and not isinstance(seed, bool):
            return seed, "--randomly-seed"
    return session.base_seed, "default"


def reproduce_command(nodeid: str, session: MLCheckSession) -> str:
    """Return the command that reruns one test with the same seeds.

    Args:
        nodeid: The test's node id.
        session: The plugin's session state.

    Returns:
        A shell command line.
    """
    seed, source = base_seed(session)
    if source == "--randomly-seed":
        return f"pytest '{nodeid}' --mlcheck -p randomly --randomly-seed={seed}"
    extra = ""
    if randomly_active(session.config):
        randomly_seed = session.config.getoption("randomly_seed", None)
        extra = f" -p randomly --randomly-seed={randomly_seed}"
    return f"pytest '{nodeid}' --mlcheck --mlcheck-seed={seed}{extra}"


#: Backends whose ``manual_seed_all`` defers to first use while uninitialized, capturing
#: ``traceback.format_stack()`` of pytest's deep stack: about 0.2 ms each per test.
_LAZY_SEED_BACKENDS = ("cuda", "xpu", "mtia")


def _seed_everything_fast(seed: int) -> None:
    """Seed every RNG exactly as :func:`~pytest_mlcheck.seeding.seed_everything` does, cheaper.

    ``torch.manual_seed`` queues a seed for each lazily initialized backend with a
    captured stack, even when that backend is not available and can never initialize:
    under pytest that was 0.5 ms per test. Here an unavailable backend is skipped and an
    initialized one seeded directly; in any other case (an available backend not yet
    initialized, whose queued seed matters, or a torch without the pieces used here) the
    full ``torch.manual_seed`` runs.

    Args:
        seed: A derived seed in ``[0, 2**32)``.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        seed_everything(seed)
        return
    random.seed(seed)
    np.random.seed(seed)
    if not _seed_torch_fast(torch, seed):
        torch.manual_seed(seed)


def _seed_torch_fast(torch: Any, seed: int) -> bool:
    """Seed torch like ``torch.manual_seed`` without its lazy queues; False when it cannot."""
    mps = getattr(torch, "mps", None)
    mps_bad_fork = getattr(mps, "_is_in_bad_fork", None)
    seed_custom = getattr(getattr(torch, "random", None), "_seed_custom_device", None)
    if mps_bad_fork is None or seed_custom is None:
        return False
    ready = []
    try:
        for name in _LAZY_SEED_BACKENDS:
            backend = getattr(torch, name, None)
            if backend is None:
                continue  # this torch has no such backend, so manual_seed does not seed it
            if backend.is_initialized():
                ready.append(backend)
            elif backend.is_available():
                return False
    except Exception:  # an odd backend build: let torch do it
        return False
    for backend in ready:
        backend.manual_seed_all(seed)
    if not mps_bad_fork():
        mps.manual_seed(seed)
    seed_custom(seed)
    torch.random.default_generator.manual_seed(seed)
    return True


@contextlib.contextmanager
def protocol_guard(item: pytest.Item, session: MLCheckSession) -> Iterator[None]:
    """Seed the RNGs for this test and restore their states when it ends.

    Args:
        item: The test.
        session: The plugin's session state.

    Yields:
        While the test's setup, call and teardown run.
    """
    seed = derive_seed(base_seed(session)[0], item.nodeid)
    item.stash[SEED] = seed
    item.stash[FINDINGS] = []
    state = get_rng_state()
    _seed_everything_fast(seed)
    try:
        yield
    finally:
        set_rng_state(state)
