"""The per-file result cache, and the one atomic file writer the linter uses.

One JSON file per configuration, ``<cache dir>/<key>.json``, maps each linted path to
the hash of its bytes and what linting it produced (findings, noqa comments and the
facts project rules collected; facts that several rules share are written once). The
key hashes the tool version, the source of the linter and of every enabled rule's
module, the enabled codes and the settings, so any change to any of them starts a
fresh cache. A file whose bytes hash the same is not
read by a worker, not parsed and not checked again.

Where it lives
    ``.mlcheck-lint-cache`` in the project root (the folder of ``pyproject.toml``;
    ``cache-dir`` key or ``--cache-dir`` to move it, ``--no-cache`` to skip it). With no
    ``pyproject.toml`` there is no project, and the cache goes to a private per-user
    folder (``$XDG_CACHE_HOME/mlcheck-lint/<hash of the folder>``, mode 0700), never
    into the working directory.

What is trusted
    A cache can be restored from another branch or written by someone else, so it is
    treated as input, not as truth:

    * only a folder this tool created is used: it is made as a new folder (or an
      existing empty one is taken) with a ``CACHEDIR.TAG`` naming mlcheck-lint and a
      ``.gitignore`` of ``*``, written only into that folder; an existing folder that
      holds anything but lacks our tag is refused;
    * an entry answers only for a file whose full content hashes the same (BLAKE2b,
      256 bits), and only when its shape is exactly what the engine writes; an entry of
      another shape, naming another path, or a cache file owned by another user or
      writable by everyone, is ignored (it only costs speed);
    * fix edits are never taken from it: ``--fix`` and ``--diff`` recompute every
      edit from the file's current bytes (:mod:`mlcheck_lint.fixes`).

Files are written with :func:`write_atomic`: a temporary file in the same folder,
``fsync``, then ``os.replace``, so a crash or a full disk leaves the old file whole.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from ._version import __version__

#: 3: facts shared by several rules of a file are stored once (``same_facts``).
_FORMAT = 3

#: The cache directory tag standard's signature (https://bford.info/cachedir/).
CACHEDIR_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"
CACHEDIR_TAG = (f"{CACHEDIR_SIGNATURE}\n"
                "# This file is a cache directory tag created by mlcheck-lint.\n"
                "# The folder only holds the linter's cache and is safe to delete.\n"
                "# For information about cache directory tags see https://bford.info/cachedir/\n")
_OWNER_MARK = "mlcheck-lint"


class CacheError(Exception):
    """The cache folder cannot be used: it exists and is not ours, or is not a folder.

    Args:
        folder: The folder.
        reason: What is wrong and what to do.
    """

    def __init__(self, folder: Path, reason: str) -> None:
        super().__init__(f"{folder}: cache-dir: {reason}")
        self.folder = folder
        self.reason = reason


def content_hash(data: bytes) -> str:
    """Return the hash that identifies a file's content.

    Args:
        data: The file's bytes (all of them: the hash covers the full content).

    Returns:
        A hex digest (BLAKE2b, 256 bits).
    """
    return hashlib.blake2b(data, digest_size=32).hexdigest()


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
                info = os.stat(path)
            except OSError:
                continue
            parts.append((path, info.st_size, info.st_mtime_ns))
    return hashlib.blake2b(repr(sorted(parts)).encode(), digest_size=12).hexdigest()


# --------------------------------------------------------------------------- where


def user_cache_root() -> Path:
    """Return the per-user folder that holds caches of runs outside any project.

    Returns:
        ``$XDG_CACHE_HOME/mlcheck-lint`` (``~/.cache/mlcheck-lint`` by default).
    """
    base = os.environ.get("XDG_CACHE_HOME") or ""
    # A relative XDG_CACHE_HOME is invalid by the spec; it would put the cache into
    # whatever the working folder is, which is the thing to avoid.
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "mlcheck-lint"


def user_cache_dir(project_root: Path) -> Path:
    """Return the private cache folder for a run that has no ``pyproject.toml``.

    Args:
        project_root: The folder the run treats as its root.

    Returns:
        A folder below :func:`user_cache_root`, named by a hash of the root's path.
    """
    name = hashlib.blake2b(str(project_root.resolve()).encode(), digest_size=8).hexdigest()
    return user_cache_root() / name


def _is_private(folder: Path) -> bool:
    try:
        return folder.resolve().is_relative_to(user_cache_root().resolve())
    except (OSError, ValueError, AttributeError):  # is_relative_to is 3.9+; resolve may fail
        return False


def is_ours(folder: Path) -> bool:
    """Say whether a folder is a cache folder this tool created.

    Args:
        folder: An existing folder.

    Returns:
        Whether it holds a ``CACHEDIR.TAG`` that starts with the standard signature and
        names mlcheck-lint.
    """
    tag = folder / "CACHEDIR.TAG"
    try:
        if not stat.S_ISREG(os.lstat(tag).st_mode):
            return False
        with open(tag, "rb") as fh:
            head = fh.read(512).decode("utf-8", "replace")
    except OSError:
        return False
    return head.startswith(CACHEDIR_SIGNATURE) and _OWNER_MARK in head


def _is_empty(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is None
    except OSError:
        return False


def check_folder(folder: Path) -> None:
    """Refuse a cache folder that exists, holds something, and was not created by this tool.

    An empty folder is accepted (``--cache-dir "$(mktemp -d)"``, a mounted volume):
    there is nothing in it that a ``.gitignore`` could hide.

    Args:
        folder: The configured cache folder.

    Raises:
        CacheError: It is a file, or a non-empty folder without our ``CACHEDIR.TAG``
            (writing a ``.gitignore`` of ``*`` into, say, ``tests/`` would hide the
            tests from git).
    """
    try:
        info = os.stat(folder)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CacheError(folder, f"cannot be read ({exc.strerror}); fix its permissions, "
                                 "or pass --no-cache") from None
    if not stat.S_ISDIR(info.st_mode):
        raise CacheError(folder, "exists and is not a folder; choose a new path for the cache")
    if not is_ours(folder) and not _is_empty(folder):
        raise CacheError(folder, "exists and is not an mlcheck-lint cache (it has files but no "
                                 "CACHEDIR.TAG written by mlcheck-lint); the cache only uses a "
                                 "folder it creates itself, or an empty one. Choose a path that "
                                 "does not exist yet, or pass --no-cache")


def _mark(folder: Path) -> None:
    """Write the markers into a new (or adopted empty) cache folder."""
    for name, text in (("CACHEDIR.TAG", CACHEDIR_TAG),
                       (".gitignore", "# Created by mlcheck-lint: this folder is a cache.\n*\n")):
        try:
            _write_new(folder / name, text.encode())
        except FileExistsError:
            pass  # a concurrent run marked it first


def _create_folder(folder: Path, private: bool) -> None:
    """Create a new cache folder with its markers, atomically: it appears complete or not at all."""
    parent = folder.parent
    if private:
        # The per-user tree is 0700, so no other user can plant entries in it.
        os.makedirs(parent, mode=0o700, exist_ok=True)
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{folder.name}.{secrets.token_hex(6)}.new"
    os.mkdir(staging, 0o700 if private else 0o777)  # the kernel applies the umask
    try:
        _mark(staging)
        try:
            os.rename(staging, folder)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            # Another process created it first (a concurrent run): use it if it is ours.
            check_folder(folder)
    finally:
        if staging.exists():
            import shutil  # only here: a warm run never creates a folder

            shutil.rmtree(staging, ignore_errors=True)


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def write_atomic(path: Path, data: bytes, mode: int | None = None,
                 owner: tuple[int, int] | None = None) -> None:
    """Replace (or create) a file so that it is either the old or the new content.

    The bytes go to a temporary file in the same folder, are flushed to disk, and the
    temporary file is renamed over the target. A full disk, a kill or a crash leaves
    the old file intact and at most a stray ``.*.tmp`` file.

    Args:
        path: The file. A symlink is replaced, not followed; resolve it first to write
            its target.
        data: The new content.
        mode: Permission bits to give the file (``None``: the default for a new file,
            which respects the umask). Pass the old file's mode to keep it.
        owner: ``(uid, gid)`` to give the file, when the process may (root fixing
            another user's file); otherwise the file belongs to whoever writes it.

    Raises:
        OSError: The folder is not writable, the disk is full, or the rename failed;
            the target is unchanged.
    """
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            if owner is not None and hasattr(os, "fchown"):
                try:
                    os.fchown(fh.fileno(), *owner)
                except OSError:
                    pass  # not permitted: the writer owns the new file, as with any editor
            if mode is not None and hasattr(os, "fchmod"):
                # After fchown, which may clear set-id bits.
                os.fchmod(fh.fileno(), stat.S_IMODE(mode))
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None and not hasattr(os, "fchmod"):  # Windows before Python 3.13
            os.chmod(tmp, stat.S_IMODE(mode))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable; not every file system allows it
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


# --------------------------------------------------------------------------- entries


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _opt_int(value: Any) -> bool:
    return value is None or _is_int(value)


def _valid_fix(fix: Any) -> bool:
    if fix is None:
        return True
    if not (isinstance(fix, dict) and fix.get("safety") in ("safe", "unsafe")
            and isinstance(fix.get("description"), str) and isinstance(fix.get("edits"), list)):
        return False
    return all(isinstance(e, list) and len(e) == 5 and all(_is_int(v) for v in e[:4])
               and isinstance(e[4], str) for e in fix["edits"])


def _valid_finding(d: Any, path: str) -> bool:
    return (isinstance(d, dict) and isinstance(d.get("code"), str)
            and isinstance(d.get("message"), str) and _is_int(d.get("line"))
            and _is_int(d.get("col")) and _opt_int(d.get("end_line"))
            and _opt_int(d.get("end_col")) and _opt_int(d.get("cell"))
            and d.get("path") in (None, "", path) and _valid_fix(d.get("fix")))


def _valid_noqa(entry: Any) -> bool:
    return (isinstance(entry, list) and len(entry) >= 4 and all(_is_int(v) for v in entry[:3])
            and (entry[3] is None or (isinstance(entry[3], list)
                                      and all(isinstance(c, str) for c in entry[3]))))


def valid_entry(path: str, entry: Any) -> bool:
    """Say whether a cache entry has exactly the shape the engine writes.

    Args:
        path: The project-relative path it is stored under.
        entry: The stored value.

    Returns:
        ``False`` for anything else (a hand-edited, truncated, foreign or poisoned
        entry), which the cache then treats as a miss.
    """
    if not isinstance(entry, dict) or not isinstance(entry.get("hash"), str):
        return False
    findings, facts, noqa = entry.get("findings"), entry.get("facts"), entry.get("noqa")
    same = entry.get("same_facts", {})
    return (isinstance(findings, list) and all(_valid_finding(d, path) for d in findings)
            and isinstance(facts, dict) and all(isinstance(k, str) for k in facts)
            and isinstance(same, dict)
            and all(isinstance(k, str) and isinstance(v, str) and k not in facts and v in facts
                    for k, v in same.items())
            and isinstance(noqa, list) and all(_valid_noqa(n) for n in noqa)
            and entry.get("errors", []) == [] and isinstance(entry.get("parsed", False), bool))


def _shared_facts_once(entry: dict[str, Any]) -> dict[str, Any]:
    """Return an entry as stored: facts that several rules share are written once.

    Rules of one family often collect the very same object (MLC140 and MLC141 share a
    file's facts, 3 KB a file on timm); JSON would write it once per rule, doubling the
    cache a warm run has to read. A later code's copy becomes ``same_facts: {code:
    first code}``; :meth:`Cache.get` shares it again, as it was when produced.
    """
    facts = entry.get("facts")
    if "same_facts" in entry or not isinstance(facts, dict) or len(facts) < 2:
        return entry
    first: dict[int, str] = {}
    kept: dict[str, Any] = {}
    same: dict[str, str] = {}
    for code, value in facts.items():
        if isinstance(value, (dict, list)) and value:
            owner = first.setdefault(id(value), code)
            if owner != code:
                same[code] = owner
                continue
        kept[code] = value
    return {**entry, "facts": kept, "same_facts": same} if same else entry


def _trusted_file(fh: Any) -> bool:
    info = os.fstat(fh.fileno())
    # World-writable means anyone could have written it. Group-writable is normal under
    # a 002 umask (a private group per user), so ownership is what decides.
    if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o002:
        return False
    euid = os.geteuid() if hasattr(os, "geteuid") else None
    return euid is None or info.st_uid == euid


class Cache:
    """The cache of one run.

    Args:
        folder: The cache folder, or ``None`` to disable caching.
        key: The configuration key (:func:`config_key`).

    Raises:
        CacheError: The folder exists and was not created by this tool.
    """

    def __init__(self, folder: Path | None, key: str) -> None:
        self.folder = folder
        self.key = key
        self.entries: dict[str, Any] = {}
        self._dirty = False
        if folder is None:
            return
        check_folder(folder)
        try:
            with open(folder / f"{key}.json", "rb") as fh:
                if not _trusted_file(fh):
                    return
                data = json.loads(fh.read().decode("utf-8"))
        except (OSError, ValueError, RecursionError):
            return
        if isinstance(data, dict) and data.get("format") == _FORMAT and isinstance(data.get("files"), dict):
            self.entries = data["files"]

    def get(self, path: str, digest: str) -> dict[str, Any] | None:
        """Return the stored result for a file whose content hash matches.

        Args:
            path: The file's project-relative path.
            digest: The hash of its current bytes (:func:`content_hash`).

        Returns:
            The result, or ``None`` on a miss (no entry, another hash, or an entry of a
            shape the engine does not write).
        """
        entry = self.entries.get(path)
        if entry is None or not isinstance(entry, dict) or entry.get("hash") != digest:
            return None
        if not valid_entry(path, entry):
            self.entries.pop(path, None)
            self._dirty = True
            return None
        same = entry.pop("same_facts", None)
        if same:
            facts = entry["facts"]
            for code, owner in same.items():
                facts[code] = facts[owner]
        return entry

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
            if not os.path.isdir(self.folder):
                _create_folder(self.folder, _is_private(self.folder))
            elif not is_ours(self.folder):
                if not _is_empty(self.folder):
                    return  # filled by something else during the run: leave it alone
                _mark(self.folder)
            files = {path: _shared_facts_once(entry) if isinstance(entry, dict) else entry
                     for path, entry in self.entries.items()}
            payload = json.dumps({"format": _FORMAT, "files": files}, separators=(",", ":"))
            write_atomic(self.folder / f"{self.key}.json", payload.encode("utf-8"),
                         mode=0o600 if _is_private(self.folder) else None)
        except (OSError, CacheError):
            pass
