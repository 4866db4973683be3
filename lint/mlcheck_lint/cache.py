"""The per-file result cache.

One JSON file per configuration, ``<cache dir>/<key>.json``, maps each linted path to
the hash of its bytes and what linting it produced (findings, noqa comments and the
facts project rules collected). The key hashes the tool version, the source of the
linter and of every enabled rule's module, the enabled codes and the settings, so any
change to any of them starts a fresh cache. A file whose bytes hash the same is not
read by a worker, not parsed and not checked again.

The folder is ``.mlcheck-lint-cache`` in the project root (``cache-dir`` key or
``--cache-dir`` to move it, ``--no-cache`` to skip it). It holds a ``.gitignore`` and a
``CACHEDIR.TAG`` so that git and backup tools skip it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ._version import __version__

_FORMAT = 1


def content_hash(data: bytes) -> str:
    """Return the hash that identifies a file's content.

    Args:
        data: The file's bytes.

    Returns:
        A hex digest.
    """
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def config_key(parts: Any) -> str:
    """Return the cache key of a configuration.

    Args:
        parts: Anything JSON-serialisable that changes what linting produces.

    Returns:
        A short hex digest, which includes the tool version.
    """
    payload = json.dumps([_FORMAT, __version__, parts], sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode(), digest_size=12).hexdigest()


def source_fingerprint(modules: list[Any]) -> str:
    """Fingerprint the linter's own code, so editing a rule invalidates the cache.

    Args:
        modules: Imported modules (the engine's and every enabled rule's).

    Returns:
        A digest of their files' sizes and modification times.
    """
    parts = []
    for module in modules:
        path = getattr(module, "__file__", None)
        if path:
            try:
                stat = os.stat(path)
            except OSError:
                continue
            parts.append((path, stat.st_size, stat.st_mtime_ns))
    return hashlib.blake2b(repr(sorted(parts)).encode(), digest_size=12).hexdigest()


class Cache:
    """The cache of one run.

    Args:
        folder: The cache folder, or ``None`` to disable caching.
        key: The configuration key (:func:`config_key`).
    """

    def __init__(self, folder: Path | None, key: str) -> None:
        self.folder = folder
        self.key = key
        self.entries: dict[str, dict[str, Any]] = {}
        self._dirty = False
        if folder is not None:
            try:
                with open(folder / f"{key}.json", encoding="utf-8") as fh:
                    data = json.load(fh)
                if isinstance(data, dict) and data.get("format") == _FORMAT:
                    self.entries = data.get("files", {})
            except (OSError, ValueError):
                self.entries = {}

    def get(self, path: str, digest: str) -> dict[str, Any] | None:
        """Return the stored result for a file whose content hash matches.

        Args:
            path: The file's project-relative path.
            digest: The hash of its current bytes.

        Returns:
            The result, or ``None`` on a miss.
        """
        entry = self.entries.get(path)
        if entry is not None and entry.get("hash") == digest:
            return entry
        return None

    def put(self, path: str, result: dict[str, Any]) -> None:
        """Store a file's result (which carries its ``hash``).

        Args:
            path: The file's project-relative path.
            result: What linting the file produced.
        """
        if self.folder is not None:
            self.entries[path] = result
            self._dirty = True

    def save(self) -> None:
        """Write the cache atomically; a failure to write only costs speed next time."""
        if self.folder is None or not self._dirty:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for name, text in ((".gitignore", "*\n"),
                               ("CACHEDIR.TAG", "Signature: 8a477f597d28d172789f06886806bc55\n"
                                                "# mlcheck-lint cache; safe to delete.\n")):
                marker = self.folder / name
                if not marker.exists():
                    marker.write_text(text, encoding="utf-8")
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"format": _FORMAT, "files": self.entries}, fh, separators=(",", ":"))
            os.replace(tmp, self.folder / f"{self.key}.json")
        except OSError:
            pass
