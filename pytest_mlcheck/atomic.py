"""Atomic file writes: a temp file beside the destination, fsync, then ``os.replace``.

Baselines, array snapshots and the JSON report are all written this way, so an
exception, a full disk or a kill at any point leaves the old file intact. The new
file gets the mode of the file it replaces, or for a new file the mode the umask
gives (``open()`` would), not the 0600 of a temp file.
"""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """Return the process's umask without changing it for longer than a moment.

    Returns:
        The umask bits (e.g. ``0o022``).
    """
    with _UMASK_LOCK:  # os.umask can only be read by setting it
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def new_file_mode(path: Path | str) -> int:
    """Return the mode a rewrite of ``path`` should have: its own, or umask's for a new file.

    Args:
        path: The destination.

    Returns:
        Permission bits.
    """
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def atomic_write_bytes(path: Path | str, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically: a temp file beside it, then ``os.replace``.

    An exception or a kill at any point leaves the old file intact, and no temp
    file behind (except after a kill, as a hidden ``.<name>.*.tmp``).

    Args:
        path: The destination.
        data: The new content.
        mode: Permission bits of the new file; default: those of the file being
            replaced, or for a new file ``0o666`` less the umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    final_mode = new_file_mode(path) if mode is None else mode
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), final_mode)
            os.fsync(fh.fileno())
        if not hasattr(os, "fchmod"):  # pragma: no cover - Windows
            os.chmod(tmp, final_mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where directories cannot be opened."""
    try:
        fd = os.open(str(directory), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
