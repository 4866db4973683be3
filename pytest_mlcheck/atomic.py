"""Atomic file writes: a temp file beside the destination, then ``os.replace``.

Baselines, array snapshots and the JSON report are all written this way, so an
exception or a kill at any point leaves the old file intact.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temp file beside it, then ``os.replace``.

    An exception or a kill at any point leaves the old file intact.

    Args:
        path: The destination.
        data: The new content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
