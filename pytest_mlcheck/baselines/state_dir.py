"""The per-user directory for locks and the parse cache, never shared with other users.

A directory in the shared temp folder would let another user plant a cached parse
(making a regressed metric pass) or own the lock directory (blocking every update),
so state lives under the user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``),
or, when that cannot be written, in a temp folder named after the user id. Either
one must be a real directory owned by this user and closed to everyone else (0700).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


class StateDirError(OSError):
    """No private directory for locks and caches can be had."""


def _private(directory: Path) -> Path:
    """Create ``directory`` (mode 0700) or check an existing one is ours and private."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise StateDirError(f"{directory} is not a directory (a symlink or a file)")
    uid = getattr(os, "getuid", None)
    if uid is None:  # Windows: the user's profile folder is private already
        return directory
    if info.st_uid != uid():
        raise StateDirError(f"{directory} belongs to user id {info.st_uid}, not to this user "
                            f"({uid()}); another user could tamper with its locks and caches")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(directory, 0o700)
    return directory


def user_state_dir(kind: str) -> Path:
    """Return this user's private directory for ``kind`` (``locks`` or ``cache``).

    Args:
        kind: The sub-directory name.

    Returns:
        An existing directory, mode 0700, owned by this user.

    Raises:
        StateDirError: Neither the user's cache folder nor a per-user temp folder
            can be created as a private directory.
    """
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    problems = []
    candidates = [Path(home) / "pytest-mlcheck"]
    uid = getattr(os, "getuid", lambda: os.environ.get("USERNAME", "user"))()
    candidates.append(Path(tempfile.gettempdir()) / f"pytest-mlcheck-{uid}")
    for base in candidates:
        try:
            _private(base)
            return _private(base / kind)
        except OSError as exc:
            problems.append(f"{base}: {exc}")
    raise StateDirError("no private directory for pytest-mlcheck's " + kind + ": "
                        + "; ".join(problems))
