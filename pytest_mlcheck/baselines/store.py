"""The locked store: baseline files parsed once per session and written once at its end.

Write protocol of one baseline file, under a per-user cross-process lock:

1. re-read and parse the file, so entries other processes (or xdist workers)
   wrote meanwhile are kept; a file that cannot be read or parsed, or that does
   not carry our header line, is left untouched;
2. write each new array to a new ``.npz`` file whose name hashes its content (the
   arrays the file names now stay as they are);
3. commit the TOML file that names the new arrays (temp file, fsync, ``os.replace``);
4. delete the array files the old TOML named and the new one does not.

A kill or an error at any step leaves a TOML file whose arrays all exist and match
it: before step 3 the old file and its arrays are intact, after it the new ones
are. At worst an unreferenced array file is left over, which pruning removes.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_bytes
from .codec import (
    ENTRY_KEYS,
    HEADER_START,
    BaselineEntryError,
    BaselineFileError,
    FileText,
    array_files,
    check_recordable,
    entries_of,
    parse_cached,
    parse_toml,
    read_file,
    validate_entry,
)
from .merge import Staged, merge_into_text
from .paths import (
    array_file_name,
    array_identity,
    baseline_path,
    entry_label,
    relative_to_root,
    toml_key,
)


class ArrayFileError(BaselineEntryError):
    """An array snapshot file that exists but cannot be read as our ``.npz`` archive."""


def lock_for(path: Path):
    """Return the cross-process lock guarding a baseline file.

    The lock file lives in this user's private state directory (0700, see
    :func:`~pytest_mlcheck.baselines.state_dir.user_state_dir`), named by a hash of
    the baseline's real path: it never clutters the reviewed baseline directory, and
    no other user can own or hold it.

    Args:
        path: The baseline file.

    Returns:
        A ``filelock.FileLock``.

    Raises:
        StateDirError: No private directory can be created for the lock.
    """
    import filelock

    from .state_dir import user_state_dir

    digest = hashlib.sha256(os.path.realpath(str(path)).encode("utf-8", "surrogatepass"))
    lock = user_state_dir("locks") / (digest.hexdigest()[:24] + ".lock")
    return filelock.FileLock(str(lock), timeout=300)


def save_npz(path: Path, array: Any) -> None:
    """Write one array as a compressed ``.npz`` archive (member ``array``), atomically.

    Args:
        path: The destination.
        array: A numpy array of numbers.
    """
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, array=array)
    atomic_write_bytes(path, buf.getvalue())


def read_npz(path: Path) -> Any:
    """Read the array of one of our ``.npz`` files, never unpickling.

    Args:
        path: The array file.

    Returns:
        The numpy array.

    Raises:
        FileNotFoundError: The file does not exist.
        ArrayFileError: It is empty, truncated, a plain ``.npy`` file, another kind of
            file, lacks the ``array`` member, or would need unpickling; the message
            says which.
    """
    import numpy as np

    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head:
        raise ArrayFileError("the file is empty")
    if head.startswith(b"\x93NUMPY"):
        raise ArrayFileError("it is a plain .npy file, not the .npz archive pytest-mlcheck "
                             "writes")
    if not head.startswith(b"PK"):
        raise ArrayFileError("it is not an .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as data:
            if "array" not in data.files:
                raise ArrayFileError(f"the archive has no 'array' member (it holds "
                                     f"{', '.join(data.files) or 'nothing'})")
            return data["array"]
    except ArrayFileError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ArrayFileError("it holds Python objects, which cannot be read without "
                                 "unpickling, and pytest-mlcheck never unpickles") from None
        raise ArrayFileError(f"it is damaged ({exc})") from None
    except Exception as exc:  # BadZipFile, EOFError, zlib.error, OSError on a truncated file
        raise ArrayFileError(f"it is truncated or damaged ({exc})") from None


class BaselineFile:
    """One baseline file: parsed once per session, written once at its end.

    Args:
        path: The TOML file.
        rel: Its path as shown to people (relative to the rootdir).
        module: The test module it belongs to, for the header comment.
    """

    def __init__(self, path: Path, rel: str, module: str) -> None:
        self.path = path
        self.rel = rel
        self.module = module
        self._data: dict[str, Any] | None = None
        self._error: BaselineFileError | None = None
        self.staged: dict[tuple[str, str, str], Staged] = {}

    @property
    def stem(self) -> str:
        """The file's stem: the test module's name."""
        return self.path.stem

    def load(self) -> dict[str, Any]:
        """Return the parsed file ({} when it does not exist), parsing it only once.

        Returns:
            The document as plain Python data.

        Raises:
            BaselineFileError: The file cannot be read (not UTF-8, a directory, no
                permission) or is not valid TOML.
        """
        if self._error is not None:
            raise self._error
        if self._data is None:
            try:
                found = read_file(self.path, self.rel)
                self._data = {} if found is None else parse_cached(self.path, found.text,
                                                                   self.rel)
            except BaselineFileError as exc:
                self._error = exc
                raise
        return self._data

    def _table(self, value: Any, label: str, what: str) -> dict[str, Any] | None:
        if value is None or isinstance(value, dict):
            return value
        raise BaselineEntryError(
            f"baseline file {self.rel}: {label} is {type(value).__name__} {value!r}, where "
            f"{what} belongs; fix it by hand, or delete it and re-record with "
            f"pytest --mlcheck-update")

    def group_table(self, test: str, group: str) -> dict[str, Any] | None:
        """Return the raw table of a test's group, or ``None``.

        Args:
            test: The test's id inside its module.
            group: The group (``name=``).

        Returns:
            The table, or ``None`` when absent.

        Raises:
            BaselineEntryError: The test or group holds a value where a table belongs.
        """
        node = self._table(self.load().get(test), f"[{toml_key(test)}]",
                           "a table of the test's groups")
        if node is None:
            return None
        return self._table(node.get(group), entry_label((test, group, "")), "an entry table")

    def entry(self, key: tuple[str, str, str]) -> dict[str, Any] | None:
        """Return the validated entry for ``key``, or ``None`` when there is none.

        Args:
            key: The entry key ``(test id, group, variant)``.

        Returns:
            The entry, or ``None``.

        Raises:
            BaselineEntryError: The entry has the wrong shape or values, or a value
                stands where its table belongs (never silently treated as new).
        """
        test, group, variant = key
        table = self.group_table(test, group)
        if table is None:
            return None
        label = entry_label(key)
        if variant:
            variants = self._table(table.get("variants"), label.rsplit(".", 1)[0] + "]",
                                   "a table of environment variants")
            if variants is None or variant not in variants:
                return None
            return validate_entry(self._table(variants[variant], label, "an entry table"),
                                  label, self.rel)
        if not (ENTRY_KEYS & set(table)):
            if "variants" in table:
                return None  # only keyed entries exist; the caller explains the lookup
            return validate_entry(table, label, self.rel)  # raises: names the stray keys
        return validate_entry(table, label, self.rel)

    def variants(self, test: str, group: str) -> list[str]:
        """Return the environment variants recorded for a test's group.

        Args:
            test: The test's id inside its module.
            group: The group (``name=``).

        Returns:
            The variant keys, plus ``"(no env)"`` for an entry not keyed by environment.
        """
        table = self.group_table(test, group)
        if table is None:
            return []
        found = table.get("variants")
        out = sorted(found) if isinstance(found, dict) else []
        if ENTRY_KEYS & set(table):
            out.append("(no env)")
        return out

    def array_path(self, name: str) -> Path:
        """Return the path of an array file beside this file.

        Args:
            name: A file name validated by :func:`~.codec.validate_entry`.

        Returns:
            The path inside the baseline directory.
        """
        return self.path.parent / os.path.basename(name)

    def load_array(self, name: str) -> Any:
        """Return the snapshot array stored in the file ``name`` beside this file.

        Args:
            name: The entry's array file name.

        Returns:
            The numpy array.

        Raises:
            FileNotFoundError: The file does not exist.
            ArrayFileError: The file cannot be read as our archive (see :func:`read_npz`).
        """
        return read_npz(self.array_path(name))

    def stage(self, key: tuple[str, str, str], entry: dict[str, Any],
              arrays: dict[str, Any] | None = None) -> None:
        """Queue an entry (and its arrays) to be written at the end of the session.

        An array gets a name that hashes its content, so it never overwrites the
        file the committed TOML names (see the module docstring).

        Args:
            key: The entry key ``(test id, group, variant)``.
            entry: The entry's content.
            arrays: ``{file name: numpy array}`` to save beside the file.

        Raises:
            ValueError: The entry holds a value or name a baseline file cannot hold;
                the message names the metric.
        """
        check_recordable(key, entry)
        renamed: dict[str, Any] = {}
        for name, array in (arrays or {}).items():
            new_name = array_file_name(self.stem, key, array_identity(array))
            info = entry.get("array")
            if isinstance(info, dict) and info.get("file") == name:
                entry = {**entry, "array": {**info, "file": new_name}}
            renamed[new_name] = array
        self.staged[key] = Staged(entry, renamed)


class WriteOutcome:
    """What a flush of one file did: entries written and deleted, or the error.

    Args:
        rel: The file's path as shown to people.
    """

    def __init__(self, rel: str) -> None:
        self.rel = rel
        self.written: list[str] = []
        self.deleted: list[str] = []
        self.removed_files: list[str] = []
        self.error: str = ""
        #: The file's new content, parsed, when the merge produced it anyway.
        self.parsed: dict[str, Any] | None = None


def not_ours_message(rel: str) -> str:
    """Return the error for a file in a baseline's place that lacks our header line.

    Args:
        rel: The file's path as shown to people.

    Returns:
        The one-line message.
    """
    return (f"{rel} does not start with the line '{HEADER_START}...', so it may belong to "
            f"another tool; pytest-mlcheck leaves it untouched (restore the header if it is "
            f"a baseline file, or move mlcheck_baseline_dir elsewhere)")


def _neighbour(rel: str, name: str) -> str:
    return os.path.join(os.path.dirname(rel), name)


def write_file(bfile: BaselineFile, deletions: set[tuple[str, str, str]] = frozenset(),
               delete_orphan_arrays: bool = False) -> WriteOutcome:
    """Write a file's staged entries and remove ``deletions``, under its lock.

    Follows the protocol of the module docstring: arrays under new names, then
    the TOML file, then the old arrays it no longer names. A file that does not
    read, parse, or carry our header is left untouched.

    Args:
        bfile: The baseline file with its staged entries.
        deletions: Entry keys to remove (pruning).
        delete_orphan_arrays: Also delete ``<stem>-<hash>.npz`` files beside it that no
            entry names (left over by a kill, or by entries pruned earlier).

    Returns:
        What was done, or the error.
    """
    outcome = WriteOutcome(bfile.rel)
    with lock_for(bfile.path):
        try:
            found = read_file(bfile.path, bfile.rel)
            current = found or FileText("")
            old = parse_toml(current.text, bfile.rel)
        except BaselineFileError as exc:
            outcome.error = str(exc).splitlines()[0] + " (left untouched)"
            return outcome
        if not current.ours:
            outcome.error = not_ours_message(bfile.rel)
            return outcome
        old_arrays = array_files(old)
        new_arrays: list[Path] = []
        try:
            for staged in bfile.staged.values():
                for name, array in staged.arrays.items():
                    target = bfile.array_path(name)
                    if not target.exists():
                        new_arrays.append(target)
                    # Same name, same content: rewriting heals a damaged copy in place.
                    save_npz(target, array)
            parsed: dict[str, Any] = {}
            new_text = merge_into_text(current.text, bfile.staged, deletions, bfile.module,
                                       old, parsed)
            if new_text:
                payload = current.encode(new_text)
                if found is None or payload != found.raw:
                    atomic_write_bytes(bfile.path, payload)
            elif found is not None:
                bfile.path.unlink()
                outcome.removed_files.append(bfile.rel)
        except BaseException:
            for path in new_arrays:  # the old TOML file does not name them
                try:
                    path.unlink()
                except OSError:
                    pass
            raise
        new_data = (parsed or parse_toml(new_text, bfile.rel)) if new_text else {}
        outcome.parsed = new_data if parsed else None
        outcome.written = [entry_label(k) for k in sorted(bfile.staged)]
        outcome.deleted = [entry_label(k) for k in sorted(deletions)]
        keep = array_files(new_data)
        stale = old_arrays - keep
        if delete_orphan_arrays:
            stale |= {name for name in orphan_arrays(bfile.path) if name not in keep}
        for name in sorted(stale):
            try:
                bfile.array_path(name).unlink()
            except FileNotFoundError:
                continue
            outcome.removed_files.append(_neighbour(bfile.rel, name))
    return outcome


def orphan_arrays(path: Path, data: dict[str, Any] | None = None) -> list[str]:
    """Return the array files beside a baseline file that look like its own but none names.

    Only names of the exact form ``<stem>-<16 hex digits>.npz`` count, so files of
    other tools in the same directory are never listed.

    Args:
        path: The baseline file.
        data: Its parsed content, when known (else every such file is listed).

    Returns:
        The file names, sorted.
    """
    pattern = re.compile(re.escape(path.stem) + r"-[0-9a-f]{16}\.npz")
    keep = array_files(data) if data else set()
    try:
        children = list(path.parent.iterdir())
    except OSError:
        return []
    return sorted(c.name for c in children
                  if pattern.fullmatch(c.name) and c.name not in keep and c.is_file())


class BaselineStore:
    """Every baseline file one pytest process touched, parsed once and written once.

    Args:
        rootdir: The session's rootdir.
        baseline_dir: The ini value ``mlcheck_baseline_dir``.
    """

    def __init__(self, rootdir: str, baseline_dir: str) -> None:
        self.rootdir = rootdir
        self.baseline_dir = baseline_dir
        self.files: dict[Path, BaselineFile] = {}
        self._by_module: dict[str, BaselineFile] = {}

    def rel(self, path: Path) -> str:
        """Return ``path`` relative to the rootdir when it is inside it.

        Args:
            path: Any path.

        Returns:
            The path as shown to people.
        """
        return relative_to_root(path, self.rootdir)

    def file_for_module(self, module: Path) -> BaselineFile:
        """Return the (cached) baseline file of a test module.

        Args:
            module: The test module's path.

        Returns:
            Its :class:`BaselineFile`.
        """
        cached = self._by_module.get(str(module))
        if cached is not None:
            return cached
        path = baseline_path(module, self.rootdir, self.baseline_dir)
        bfile = self.files.get(path)
        if bfile is None:
            bfile = BaselineFile(path, self.rel(path), self.rel(module))
            self.files[path] = bfile
        self._by_module[str(module)] = bfile
        return bfile

    def flush(self) -> tuple[list[str], list[str]]:
        """Write every file with staged entries.

        Returns:
            ``(written, errors)``: one line per written entry, one per failed file.
        """
        written: list[str] = []
        errors: list[str] = []
        for bfile in self.files.values():
            if not bfile.staged:
                continue
            try:
                outcome = write_file(bfile)
            except Exception as exc:
                errors.append(f"could not write {bfile.rel}: {type(exc).__name__}: {exc}; "
                              f"the previous file is intact")
                continue
            if outcome.error:
                errors.append(outcome.error)
            written += [f"{bfile.rel} {label}" for label in outcome.written]
            bfile.staged.clear()
            # What other processes merged in is part of the new content.
            bfile._data = outcome.parsed
        return written, errors


__all__ = ["ArrayFileError", "BaselineFile", "BaselineStore", "WriteOutcome", "entries_of",
           "lock_for", "not_ours_message", "orphan_arrays", "read_npz", "save_npz",
           "write_file"]
