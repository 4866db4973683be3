"""Seeding every random number generator an ML test touches, and restoring them.

Plain functions, usable outside pytest: :func:`seed_everything`, :func:`seeded`,
:func:`derive_seed`, :func:`get_rng_state` and :func:`set_rng_state`.
torch is seeded only when it is installed and already imported (a test that uses
torch has imported it; seeding it otherwise would cost seconds of import time).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import sys
from typing import Any, Iterator


#: The default base seed of ``--mlcheck-seed``.
DEFAULT_BASE_SEED = 20240601


def derive_seed(base_seed: int, nodeid: str) -> int:
    """Return a 32-bit seed that depends only on the base seed and the test's node id.

    It does not depend on test order or on which other tests run, so a failing test
    reproduces alone with the same seed.
    """
    digest = hashlib.blake2b(f"{int(base_seed)}:{nodeid}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % (2**32)


def _torch():
    return sys.modules.get("torch")


def seed_everything(seed: int) -> int:
    """Seed Python's ``random``, numpy's global RNG and torch (CPU and every CUDA device).

    Args:
        seed: A non-negative integer below 2**32.

    Returns:
        The seed, for logging.
    """
    import numpy as np  # imported here so loading the plugin does not import numpy

    from .validation import seed as check_seed

    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch = _torch()
    if torch is not None:
        torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def get_rng_state() -> dict[str, Any]:
    """Return the states of Python's, numpy's and torch's global RNGs."""
    import numpy as np

    state: dict[str, Any] = {"random": random.getstate(), "numpy": np.random.get_state()}
    torch = _torch()
    if torch is not None:
        state["torch"] = torch.random.get_rng_state()
        try:
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                state["cuda"] = torch.cuda.get_rng_state_all()
        except Exception:
            pass
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore RNG states returned by :func:`get_rng_state`."""
    import numpy as np

    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    torch = _torch()
    if torch is not None:
        if "torch" in state:
            torch.random.set_rng_state(state["torch"])
        if "cuda" in state:
            torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[int]:
    """Seed every RNG on entry and restore their previous states on exit.

    Example:
        >>> with seeded(0):
        ...     a = np.random.rand()
    """
    state = get_rng_state()
    try:
        yield seed_everything(seed)
    finally:
        set_rng_state(state)
