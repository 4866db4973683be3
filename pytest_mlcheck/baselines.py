"""The baseline store: TOML files of metric baselines, reviewed in pull requests.

Layout. A test module ``tests/test_model.py`` keeps its baselines in
``tests/mlcheck_baselines/test_model.toml`` (the ini key ``mlcheck_baseline_dir``
moves them under one directory, keeping the module's relative folder and file name).
One table per test, keyed by the test's id inside its module (parametrized ids are
quoted), one sub-table per ``name=`` group (``default`` without a name)::

    [test_accuracy.default]
    recorded_in = {python = "3.11.7", numpy = "2.4.6", torch = "2.13.0", ...}

    [test_accuracy.default.metrics]
    accuracy = 0.9125
    loss = 0.23117001354694366

Entries keyed by environment facets (``env=("device",)``) live one level down,
under ``[test_x.default.variants."device=cpu"]``. Arrays of ``check_array`` are
compressed ``.npz`` files beside the TOML file, named by a hash of their entry so
no test id or name can reach outside the baseline directory.

Reading uses the fast standard ``tomllib`` and is cached per session. Writing
happens once per file at the end of the session (of each xdist worker): under a
cross-process file lock the file is re-read, merged with ``tomlkit`` (so comments
and formatting people add survive), written to a temporary file and moved into
place with ``os.replace``; an exception or a kill before that leaves the old file
intact. A file that does not parse is never written.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from .atomic import atomic_write_bytes

try:  # Python >= 3.11
    import tomllib as _toml_reader
except ImportError:  # pragma: no cover - Python 3.10
    try:
        import tomli as _toml_reader  # type: ignore[no-redef]
    except ImportError:
        _toml_reader = None  # type: ignore[assignment]

#: The group of a ``check`` call without ``name=``.
DEFAULT_GROUP = "default"

_HEADER = (
    "# pytest-mlcheck baselines for {module}.\n"
    "# Written by `pytest --mlcheck-update`; review changes like code.\n"
    "# Comments and formatting you add here are kept across updates.\n"
)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_NPZ_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*-[0-9a-f]{16}\.npz")
_ENTRY_KEYS = frozenset({"recorded_in", "metrics", "array"})


class BaselineFileError(Exception):
    """A baseline file that cannot be parsed; it is never overwritten."""


class BaselineEntryError(ValueError):
    """A baseline entry whose content has the wrong shape or type (e.g. hand-edited)."""


# ---- paths ---------------------------------------------------------------------------


def local_id(nodeid: str) -> str:
    """Return a test's id inside its module (``TestX::test_a[1]``), the key of its table.

    Args:
        nodeid: The pytest node id.

    Returns:
        The part after the module path, or the whole id when it has none.
    """
    return nodeid.split("::", 1)[1] if "::" in nodeid else nodeid


def module_of(nodeid: str, rootdir: str) -> Path:
    """Return the absolute path of the module a node id belongs to.

    Args:
        nodeid: The pytest node id (relative to the rootdir).
        rootdir: The session's rootdir.

    Returns:
        The module path, normalised.
    """
    return Path(os.path.normpath(os.path.join(rootdir, nodeid.split("::", 1)[0])))


def baseline_path(module: Path, rootdir: str, baseline_dir: str) -> Path:
    """Return the baseline file of a test module.

    Args:
        module: The test module's path.
        rootdir: The session's rootdir.
        baseline_dir: The ini value ``mlcheck_baseline_dir`` ("" for the default).

    Returns:
        ``<module dir>/mlcheck_baselines/<stem>.toml``, or with ``baseline_dir`` set,
        ``<rootdir>/<baseline_dir>/<module dir relative to rootdir>/<stem>.toml``.
    """
    module = Path(os.path.normpath(str(module)))
    if baseline_dir:
        rel = os.path.relpath(str(module.parent), rootdir)
        base = Path(os.path.normpath(os.path.join(rootdir, baseline_dir)))
        if rel == ".":
            return base / f"{module.stem}.toml"
        if not rel.startswith(".."):
            return base / rel / f"{module.stem}.toml"
    return module.parent / "mlcheck_baselines" / f"{module.stem}.toml"


def module_for_baseline(path: Path, rootdir: str, baseline_dir: str) -> Path:
    """Return the test module a baseline file belongs to (inverse of :func:`baseline_path`).

    Args:
        path: The baseline file.
        rootdir: The session's rootdir.
        baseline_dir: The ini value ``mlcheck_baseline_dir``.

    Returns:
        The path of the module, which may no longer exist.
    """
    if baseline_dir:
        base = Path(os.path.normpath(os.path.join(rootdir, baseline_dir)))
        try:
            rel = path.parent.relative_to(base)
            return Path(rootdir) / rel / f"{path.stem}.py"
        except ValueError:
            pass
    return path.parent.parent / f"{path.stem}.py"


def array_file_name(stem: str, key: tuple[str, str, str]) -> str:
    """Return the ``.npz`` file name of an array entry: the module stem and a hash.

    Args:
        stem: The baseline file's stem (the test module's name).
        key: The entry key ``(test id, group, variant)``.

    Returns:
        A plain file name, never a path: ids and names only enter through the hash.
    """
    digest = hashlib.sha256("\0".join(key).encode("utf-8")).hexdigest()[:16]
    return f"{stem}-{digest}.npz"


def variant_key(facets: dict[str, str]) -> str:
    """Return the key of an environment variant, e.g. ``device=cpu, torch=2.13.0``.

    Args:
        facets: The chosen environment facets and their values.

    Returns:
        The key ("" when no facet is chosen).
    """
    return ", ".join(f"{k}={v}" for k, v in facets.items())


def parse_variant(key: str) -> dict[str, str]:
    """Return the facets of a variant key made by :func:`variant_key`.

    Args:
        key: The variant key.

    Returns:
        The facets as a dict.
    """
    out: dict[str, str] = {}
    for part in key.split(", ") if key else ():
        name, _, value = part.partition("=")
        out[name] = value
    return out


@functools.lru_cache(maxsize=4096)  # pure; each check shows its entry's label twice
def entry_label(key: tuple[str, str, str]) -> str:
    """Return how an entry is shown to people: its TOML table header.

    Args:
        key: The entry key ``(test id, group, variant)``.

    Returns:
        For example ``[test_acc.default]`` or ``["test_a[1]".eval.variants."device=cpu"]``.
    """
    test, group, variant = key
    parts = [toml_key(test), toml_key(group)]
    if variant:
        parts += ["variants", toml_key(variant)]
    return "[" + ".".join(parts) + "]"


# ---- TOML text -----------------------------------------------------------------------


def toml_key(key: str) -> str:
    """Return a TOML key: bare when it can be, else a quoted basic string.

    Args:
        key: Any string.

    Returns:
        The key as TOML text.
    """
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)


def toml_string(text: str) -> str:
    """Return a TOML basic string for ``text`` (JSON escaping, plus DEL).

    Args:
        text: Any string.

    Returns:
        The quoted string.
    """
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: Any) -> str:
    """Return TOML text for a baseline value; floats round-trip exactly (``repr``).

    Args:
        value: A str, bool, int, finite float, list or dict of those.

    Returns:
        The value as TOML text (dicts become inline tables).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"refusing to record a non-finite value ({value!r})")
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to a baseline file")


def render_entry(key: tuple[str, str, str], entry: dict[str, Any]) -> str:
    """Return the TOML text of one entry (its tables), as a fresh file writes it.

    Args:
        key: The entry key ``(test id, group, variant)``.
        entry: ``{"recorded_in": {...}, "metrics": {...}}`` or ``{..., "array": {...}}``.

    Returns:
        TOML text ending with a blank line.
    """
    head = entry_label(key)[1:-1]
    lines = [f"[{head}]"]
    if "recorded_in" in entry:
        lines.append(f"recorded_in = {toml_value(entry['recorded_in'])}")
    for sub in ("metrics", "array"):
        if sub in entry:
            lines += ["", f"[{head}.{sub}]"]
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in entry[sub].items()]
    return "\n".join(lines) + "\n\n"


def _error_location(exc: Exception) -> tuple[int | None, str]:
    line = getattr(exc, "lineno", None) or getattr(exc, "line", None)
    msg = str(exc)
    if line is None:
        match = re.search(r"line (\d+)", msg)
        line = int(match.group(1)) if match else None
    return line, msg


def parse_toml(text: str, rel: str) -> dict[str, Any]:
    """Parse a baseline file's text into plain Python data.

    Args:
        text: The file's content.
        rel: The file's path as shown to people.

    Returns:
        The parsed document.

    Raises:
        BaselineFileError: The text is not valid TOML; the message names the file,
            the line and the TOML parser's message.
    """
    try:
        if _toml_reader is not None:
            return _toml_reader.loads(text)
        import tomlkit

        return tomlkit.parse(text).unwrap()
    except Exception as exc:  # tomllib.TOMLDecodeError, tomlkit ParseError
        line, msg = _error_location(exc)
        where = f"{rel}, line {line}" if line is not None else rel
        raise BaselineFileError(
            f"corrupt baseline file {where}: {msg}\n"
            f"pytest-mlcheck never overwrites a baseline file it cannot parse, not even "
            f"with --mlcheck-update. Fix the TOML by hand (a merge conflict marker or a "
            f"half-edited line is the usual cause), or restore it from version control "
            f"(git checkout -- {rel}), or delete it and re-record with "
            f"pytest --mlcheck-update."
        ) from None


def _cache_path(path: Path) -> str:
    digest = hashlib.sha256(os.path.realpath(str(path)).encode("utf-8")).hexdigest()[:24]
    return os.path.join(tempfile.gettempdir(), "pytest-mlcheck-cache", digest + ".json")


def parse_cached(path: Path, text: str, rel: str) -> dict[str, Any]:
    """Parse a baseline file, reusing a JSON copy of the last parse of the same content.

    A large file (1,000 tests x 10 metrics is ~360 KiB) takes ``tomllib`` a few tenths of
    a second on every run; loading the same data as JSON takes a tenth of that. The copy
    lives in the temp directory, one per baseline file, keyed by a hash of the exact
    text, so an edited file is always parsed again. JSON, never pickle.

    Args:
        path: The baseline file.
        text: Its content.
        rel: Its path as shown to people.

    Returns:
        The parsed document.

    Raises:
        BaselineFileError: The text is not valid TOML.
    """
    if len(text) < 20_000:
        return parse_toml(text, rel)
    content = hashlib.sha256(text.encode("utf-8")).hexdigest()
    cache = _cache_path(path)
    try:
        with open(cache, encoding="utf-8") as fh:
            cached = json.load(fh)
        if isinstance(cached, dict) and cached.get("sha256") == content \
                and isinstance(cached.get("data"), dict):
            return cached["data"]
    except (OSError, ValueError):
        pass
    data = parse_toml(text, rel)
    try:
        payload = json.dumps({"sha256": content, "data": data}).encode("utf-8")
        atomic_write_bytes(Path(cache), payload)
    except (TypeError, ValueError, OSError):  # dates a person added, a read-only temp dir
        pass
    return data


# ---- entries -------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_entry(entry: Any, label: str, rel: str) -> dict[str, Any]:
    """Check the shape and types of an entry read from a file.

    Args:
        entry: The entry's table.
        label: The entry as shown to people (:func:`entry_label`).
        rel: The file's path as shown to people.

    Returns:
        The entry, unchanged.

    Raises:
        BaselineEntryError: Something has the wrong type; the message names the entry
            and the key.
    """
    fix = ("fix the value by hand, or delete the entry and re-record it with "
           "pytest --mlcheck-update")

    def bad(what: str, value: Any, expected: str) -> BaselineEntryError:
        return BaselineEntryError(
            f"baseline entry {label} in {rel}: {what} is {type(value).__name__} "
            f"{value!r}, expected {expected}; {fix}"
        )

    if not isinstance(entry, dict):
        raise bad("the entry", entry, "a table")
    recorded = entry.get("recorded_in", {})
    if not isinstance(recorded, dict):
        raise bad("recorded_in", recorded, "a table of environment facets")
    metrics = entry.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, dict):
            raise bad("metrics", metrics, "a table of metric values")
        for name, value in metrics.items():
            if type(value) is float and value - value == 0.0:
                continue  # the common case, finite (inf - inf and NaN - NaN are NaN)
            if isinstance(value, dict):
                for stat in ("mean", "std", "n", "min", "max"):
                    if stat not in value:
                        raise BaselineEntryError(
                            f"baseline entry {label} in {rel}: metric {name!r} lacks "
                            f"{stat!r} (check_repeated stores mean, std, n, min and max); {fix}"
                        )
                    if not _is_number(value[stat]) or not math.isfinite(value[stat]):
                        raise bad(f"metric {name!r} {stat}", value[stat], "a finite number")
                if value["n"] < 1 or value["std"] < 0:
                    raise bad(f"metric {name!r} n/std", (value["n"], value["std"]),
                              "n >= 1 and std >= 0")
            elif not _is_number(value) or not math.isfinite(value):
                raise bad(f"metric {name!r}", value, "a finite number")
    array = entry.get("array")
    if array is not None:
        if not isinstance(array, dict):
            raise bad("array", array, "a table")
        name = array.get("file")
        if not isinstance(name, str) or not _NPZ_NAME.fullmatch(name):
            raise bad("array file", name, "a plain .npz file name beside the TOML file")
        shape = array.get("shape")
        if not isinstance(shape, list) or not all(_is_number(d) and int(d) == d >= 0
                                                  for d in shape):
            raise bad("array shape", shape, "a list of non-negative integers")
        if not isinstance(array.get("dtype"), str):
            raise bad("array dtype", array.get("dtype"), "a dtype name")
    if metrics is None and array is None:
        raise BaselineEntryError(
            f"baseline entry {label} in {rel} has neither a metrics nor an array table; {fix}"
        )
    return entry


@dataclasses.dataclass
class Staged:
    """An entry to write at the end of the session."""

    entry: dict[str, Any]
    arrays: dict[str, Any]
    replace_group: bool = False


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
            BaselineFileError: The file is not valid TOML.
        """
        if self._error is not None:
            raise self._error
        if self._data is None:
            try:
                text = self.path.read_text(encoding="utf-8")
            except FileNotFoundError:
                self._data = {}
            else:
                try:
                    self._data = parse_cached(self.path, text, self.rel)
                except BaselineFileError as exc:
                    self._error = exc
                    raise
        return self._data

    def group_table(self, test: str, group: str) -> dict[str, Any] | None:
        """Return the raw table of a test's group, or ``None``.

        Args:
            test: The test's id inside its module.
            group: The group (``name=``).

        Returns:
            The table, or ``None`` when absent.
        """
        node = self.load().get(test)
        if not isinstance(node, dict):
            return None
        table = node.get(group)
        return table if isinstance(table, dict) else None

    def entry(self, key: tuple[str, str, str]) -> dict[str, Any] | None:
        """Return the validated entry for ``key``, or ``None`` when there is none.

        Args:
            key: The entry key ``(test id, group, variant)``.

        Returns:
            The entry, or ``None``.
        """
        test, group, variant = key
        table = self.group_table(test, group)
        if table is None:
            return None
        if variant:
            variants = table.get("variants")
            if not isinstance(variants, dict) or variant not in variants:
                return None
            table = variants[variant]
        elif not (_ENTRY_KEYS & set(table)):
            return None
        return validate_entry(table, entry_label(key), self.rel)

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
        out = sorted(table.get("variants", {}) or {}) if isinstance(table.get("variants"), dict) else []
        if _ENTRY_KEYS & set(table):
            out.append("(no env)")
        return out

    def array_path(self, name: str) -> Path:
        """Return the path of an array file beside this file.

        Args:
            name: A file name validated by :func:`validate_entry`.

        Returns:
            The path inside the baseline directory.
        """
        return self.path.parent / os.path.basename(name)

    def stage(self, key: tuple[str, str, str], entry: dict[str, Any],
              arrays: dict[str, Any] | None = None) -> None:
        """Queue an entry (and its arrays) to be written at the end of the session.

        Args:
            key: The entry key ``(test id, group, variant)``.
            entry: The entry's content.
            arrays: ``{file name: numpy array}`` to save beside the file.
        """
        self.staged[key] = Staged(entry, dict(arrays or {}))


def entries_of(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Return every entry key in a parsed file, in file order.

    Args:
        data: A parsed baseline file.

    Returns:
        The keys ``(test id, group, variant)``.
    """
    out = []
    for test, node in data.items():
        if not isinstance(node, dict):
            continue
        for group, table in node.items():
            if not isinstance(table, dict):
                continue
            if _ENTRY_KEYS & set(table):
                out.append((test, group, ""))
            variants = table.get("variants")
            if isinstance(variants, dict):
                out += [(test, group, v) for v in variants if isinstance(variants[v], dict)]
    return out


# ---- writing -------------------------------------------------------------------------


def lock_for(path: Path):
    """Return the cross-process lock guarding a baseline file.

    The lock file lives in the temp directory, named by a hash of the file's real
    path, so it never clutters the reviewed baseline directory.

    Args:
        path: The baseline file.

    Returns:
        A ``filelock.FileLock``.
    """
    import filelock

    digest = hashlib.sha256(os.path.realpath(str(path)).encode("utf-8")).hexdigest()[:24]
    directory = os.path.join(tempfile.gettempdir(), "pytest-mlcheck-locks")
    os.makedirs(directory, exist_ok=True)
    return filelock.FileLock(os.path.join(directory, digest + ".lock"), timeout=300)


def _save_npz(path: Path, array: Any) -> None:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, array=array)
    atomic_write_bytes(path, buf.getvalue())


def _insert_sorted(container: Any, key: str, item: Any) -> None:
    """Insert a table where a sorted file would have it, keeping everything else in place."""
    keys = [k for k in container.keys()]
    before = [k for k in keys if k < key]
    try:
        if before:
            container._insert_after(max(before), key, item)
            return
        if keys:
            index = container._map[keys[0]]
            index = min(index) if isinstance(index, tuple) else index
            container._insert_at(index, key, item)
            return
    except Exception:  # tomlkit internals changed: appending is still correct TOML
        pass
    container.append(key, item)


def _merge_table(target: Any, values: dict[str, Any], parsed: Any) -> None:
    """Update ``target`` in place to ``values``: keys keep their comments and order."""
    for name in [k for k in target.keys() if k not in values]:
        del target[name]
    for name, value in values.items():
        if name in target:
            if target[name] != value:
                target[name] = parsed[name]
        else:
            target[name] = parsed[name]

_KV_LINE = re.compile(r"""\s*([A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')\s*=\s*(.*)$""")
_MULTILINE_STARTS = ("'" * 3, '"' * 3)


def _decode_key(raw: str) -> str:
    if raw.startswith('"'):
        return json.loads(raw)
    if raw.startswith("'"):
        return raw[1:-1]
    return raw


def _header_path(line: str) -> tuple[str, ...] | None:
    try:
        data: Any = _toml_reader.loads(line)
    except Exception:
        return None
    path: list[str] = []
    while isinstance(data, dict) and len(data) == 1:
        ((key, data),) = data.items()
        path.append(key)
    return tuple(path) if data == {} else None


def _value_and_comment(rest: str) -> tuple[str, str] | None:
    """Split a one-line value from its trailing comment, or ``None`` when unsure."""
    if "#" not in rest:
        return rest.rstrip(), ""
    if '"' in rest or "'" in rest:
        return None
    value = rest[:rest.index("#")].rstrip()
    return value, rest[len(value):]


def _entry_path(key: tuple[str, str, str]) -> tuple[str, ...]:
    test, group, variant = key
    return (test, group, "variants", variant) if variant else (test, group)


def _fast_merge(text: str, staged: dict[tuple[str, str, str], Staged],
                old: dict[str, Any] | None = None,
                parsed_out: dict[str, Any] | None = None) -> str | None:
    """Merge staged entries by editing lines in place; ``None`` when tomlkit must do it.

    Parsing a large file with tomlkit costs seconds; the files we write have one
    simple line per value, so updating values and adding tests is a matter of lines.
    The result is verified: parsed again, it must equal the old content with the
    staged entries applied, else the caller falls back to tomlkit.
    """
    if _toml_reader is None:
        return None
    old = _toml_reader.loads(text) if old is None else old
    lines = text.split("\n")
    headers: dict[tuple[str, ...], int] = {}
    keys: dict[tuple[str, ...], dict[str, int]] = {}
    order: list[tuple[tuple[str, ...], int]] = []
    current: tuple[str, ...] = ()
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("[["):
            return None
        if stripped.startswith("["):
            path = _header_path(stripped)
            if path is None or path in headers:
                return None
            headers[path] = index
            order.append((path, index))
            current = path
            continue
        match = _KV_LINE.match(line)
        if match is None or not current:
            return None
        raw_key, rest = match.groups()
        if rest.startswith(_MULTILINE_STARTS) or (
                rest.startswith("[") and "]" not in rest) or (
                rest.startswith("{") and "}" not in rest):
            return None
        keys.setdefault(current, {})[_decode_key(raw_key)] = index

    replace: dict[int, str] = {}
    delete: set[int] = set()
    insert_after: dict[int, list[str]] = {}
    new_tests: list[tuple[str, str]] = []
    for key in sorted(staged):
        entry = staged[key].entry
        path = _entry_path(key)
        if path not in headers:
            if any(p[0] == key[0] for p in headers):
                return None  # a new group or variant of an existing test: rare, tomlkit
            new_tests.append((key[0], render_entry(key, entry)))
            continue
        for sub in ("metrics", "array"):
            if (sub in entry) != (path + (sub,) in headers):
                return None
        if "recorded_in" in entry:
            index = keys.get(path, {}).get("recorded_in")
            if index is None:
                return None
            rest = _KV_LINE.match(lines[index]).group(2)
            split = _value_and_comment(rest)
            if split is None:
                return None
            replace[index] = (lines[index][:len(lines[index]) - len(rest)]
                              + toml_value(entry["recorded_in"]) + split[1])
        for sub in ("metrics", "array"):
            if sub not in entry:
                continue
            sub_path = path + (sub,)
            present = keys.get(sub_path, {})
            for name, index in present.items():
                if name not in entry[sub]:
                    delete.add(index)
            last = max(present.values(), default=headers[sub_path])
            for name, value in entry[sub].items():
                if name not in present:
                    insert_after.setdefault(last, []).append(
                        f"{toml_key(name)} = {toml_value(value)}")
                    continue
                index = present[name]
                if _lookup(old, sub_path, name) == value:
                    continue
                rest = _KV_LINE.match(lines[index]).group(2)
                split = _value_and_comment(rest)
                if split is None:
                    return None
                replace[index] = (lines[index][:len(lines[index]) - len(rest)]
                                  + toml_value(value) + split[1])

    # A new test goes before the first test that sorts after it, above that test's comments.
    firsts: dict[str, int] = {}
    for path, index in order:
        firsts.setdefault(path[0], index)
    top = 0
    while top < len(lines) and lines[top].startswith("#"):
        top += 1
    insert_before: dict[int, list[str]] = {}
    tail: list[str] = []
    for test, rendered in new_tests:
        following = [i for t, i in firsts.items() if t > test]
        if not following:
            tail.append(rendered)
            continue
        index = min(following)
        while index - 1 > top and lines[index - 1].strip().startswith("#"):
            index -= 1
        insert_before.setdefault(index, []).append(rendered)

    out: list[str] = []
    for index, line in enumerate(lines):
        if index in insert_before:
            out += "".join(insert_before[index]).rstrip("\n").split("\n") + [""]
        if index not in delete:
            out.append(replace.get(index, line))
        out += insert_after.get(index, [])
    new_text = "\n".join(out)
    if tail:
        new_text = new_text.rstrip("\n") + "\n\n" + "".join(tail).rstrip("\n") + "\n"
    try:
        new_data = _toml_reader.loads(new_text)
    except Exception:
        return None
    if new_data != _apply(old, staged):
        return None
    if parsed_out is not None:
        parsed_out.update(new_data)
    return new_text


def _lookup(data: Any, path: tuple[str, ...], name: str) -> Any:
    for part in path:
        data = data.get(part) if isinstance(data, dict) else None
    return data.get(name) if isinstance(data, dict) else None


def _apply(old: dict[str, Any], staged: dict[tuple[str, str, str], Staged]) -> dict[str, Any]:
    import copy

    data = copy.deepcopy(old)
    for key, item in staged.items():
        table = data
        for part in _entry_path(key):
            table = table.setdefault(part, {})
        for sub in ("recorded_in", "metrics", "array"):
            if sub in item.entry:
                table[sub] = copy.deepcopy(item.entry[sub])
        if "metrics" in item.entry:
            table.pop("array", None)
        if "array" in item.entry:
            table.pop("metrics", None)
    return data



def merge_into_text(text: str, staged: dict[tuple[str, str, str], Staged],
                    deletions: set[tuple[str, str, str]], module: str,
                    old: dict[str, Any] | None = None,
                    parsed_out: dict[str, Any] | None = None) -> str:
    """Return ``text`` with staged entries written and ``deletions`` removed.

    Comments and formatting of everything untouched are kept (``tomlkit``). A new
    test table goes where sorted order puts it.

    Args:
        text: The file's current content ("" for a new file).
        staged: Entries to write.
        deletions: Entries to delete.
        module: The module name for the header of a new file.
        old: ``text`` already parsed, if the caller has it.
        parsed_out: Filled with the parsed new content when that comes for free.

    Returns:
        The new content ("" when no entry is left).
    """
    import tomlkit

    if not text.strip():
        if deletions and not staged:
            return ""
        parts = [_HEADER.format(module=module), "\n"]
        for key in sorted(staged):
            parts.append(render_entry(key, staged[key].entry))
        return "".join(parts).rstrip("\n") + "\n"

    if not deletions:
        merged = _fast_merge(text, staged, old, parsed_out)
        if merged is not None:
            return merged
    doc = tomlkit.parse(text)
    for key in sorted(staged):
        test, group, variant = key
        fresh = tomlkit.parse(render_entry(key, staged[key].entry))
        fresh_node = fresh[test]
        if test not in doc:
            _insert_sorted(doc, test, fresh_node)
            continue
        node = doc[test]
        fresh_group = fresh_node[group]
        if group not in node:
            node.append(group, fresh_group)
            continue
        table = node[group]
        if variant:
            for stale in [k for k in _ENTRY_KEYS if k in table]:
                del table[stale]
            if "variants" not in table:
                table.append("variants", fresh_group["variants"])
                continue
            variants = table["variants"]
            if variant not in variants:
                variants.append(variant, fresh_group["variants"][variant])
                continue
            table = variants[variant]
            fresh_entry = fresh_group["variants"][variant]
        else:
            if "variants" in table:
                del table["variants"]
            fresh_entry = fresh_group
        entry = staged[key].entry
        if "recorded_in" in entry:
            table["recorded_in"] = fresh_entry["recorded_in"]
        for sub in ("metrics", "array"):
            if sub not in entry:
                if sub in table:
                    del table[sub]
            elif sub in table and isinstance(table[sub], dict):
                _merge_table(table[sub], entry[sub], fresh_entry[sub])
            else:
                if sub in table:
                    del table[sub]
                table.append(sub, fresh_entry[sub])
    for test, group, variant in deletions:
        if test not in doc or group not in doc[test]:
            continue
        node = doc[test]
        if variant:
            variants = node[group].get("variants")
            if variants is not None and variant in variants:
                del variants[variant]
                if not len(variants):
                    del node[group]["variants"]
            if not (_ENTRY_KEYS | {"variants"}) & set(node[group].keys()):
                del node[group]
        else:
            for sub in list(_ENTRY_KEYS):
                if sub in node[group]:
                    del node[group][sub]
            if "variants" not in node[group]:
                del node[group]
        if not len(node):
            del doc[test]
    if not any(True for _ in doc.keys()):
        return ""
    return tomlkit.dumps(doc)


class WriteOutcome:
    """What a flush of one file did: entries written and deleted, or the error."""

    def __init__(self, rel: str) -> None:
        self.rel = rel
        self.written: list[str] = []
        self.deleted: list[str] = []
        self.removed_files: list[str] = []
        self.error: str = ""
        #: The file's new content, parsed, when the merge produced it anyway.
        self.parsed: dict[str, Any] | None = None


def write_file(bfile: BaselineFile, deletions: set[tuple[str, str, str]] = frozenset(),
               delete_orphan_arrays: bool = False) -> WriteOutcome:
    """Write a file's staged entries and remove ``deletions``, under its lock.

    The file is re-read under the lock, so entries written meanwhile by another
    process (or xdist worker) are kept. Arrays are written before the TOML file
    that refers to them. A file that no longer parses is left untouched.

    Args:
        bfile: The baseline file with its staged entries.
        deletions: Entry keys to remove (pruning).
        delete_orphan_arrays: Also delete ``.npz`` files of this module that no entry uses.

    Returns:
        What was done, or the error.
    """
    outcome = WriteOutcome(bfile.rel)
    with lock_for(bfile.path):
        try:
            text = bfile.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        try:
            old = parse_toml(text, bfile.rel)
        except BaselineFileError as exc:
            outcome.error = str(exc).splitlines()[0] + " (left untouched)"
            return outcome
        for key, staged in bfile.staged.items():
            for name, array in staged.arrays.items():
                _save_npz(bfile.array_path(name), array)
        parsed: dict[str, Any] = {}
        new_text = merge_into_text(text, bfile.staged, deletions, bfile.module, old, parsed)
        if new_text:
            if new_text != text:
                atomic_write_bytes(bfile.path, new_text.encode("utf-8"))
        elif bfile.path.exists():
            bfile.path.unlink()
            outcome.removed_files.append(bfile.rel)
        outcome.parsed = parsed or None
        outcome.written = [entry_label(k) for k in sorted(bfile.staged)]
        outcome.deleted = [entry_label(k) for k in sorted(deletions)]
        if delete_orphan_arrays:
            used = set()
            if new_text:
                data = parse_toml(new_text, bfile.rel)
                for key in entries_of(data):
                    entry = _raw_entry(data, key)
                    array = entry.get("array") if isinstance(entry, dict) else None
                    if isinstance(array, dict) and isinstance(array.get("file"), str):
                        used.add(array["file"])
            pattern = re.compile(re.escape(bfile.stem) + r"-[0-9a-f]{16}\.npz")
            if bfile.path.parent.is_dir():
                for child in sorted(bfile.path.parent.iterdir()):
                    if pattern.fullmatch(child.name) and child.name not in used:
                        child.unlink()
                        outcome.removed_files.append(os.path.join(os.path.dirname(bfile.rel),
                                                                  child.name))
    return outcome


def _raw_entry(data: dict[str, Any], key: tuple[str, str, str]) -> Any:
    test, group, variant = key
    table = data[test][group]
    return table["variants"][variant] if variant else table


# ---- the per-session store -------------------------------------------------------------


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
        try:
            rel = os.path.relpath(str(path), self.rootdir)
        except ValueError:
            return str(path)
        return str(path) if rel.startswith("..") else rel

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


def glob_match(name: str, patterns: Any) -> bool:
    """Return whether a metric name matches any of the names or glob patterns.

    Args:
        name: The metric name.
        patterns: Names or ``fnmatch`` globs.

    Returns:
        Whether one matches (case-sensitive).
    """
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


# ---- end of session: unused entries and pruning ---------------------------------------


def whole_suite_reason(session: Any, state: Any) -> str:
    """Return why this session did not run the whole suite, or "" when it did.

    Unused entries can only be told apart from unselected ones after a run of
    everything: no ``-k``/``-m``, no node-id arguments, nothing deselected, no
    collection error, no early stop, every collected test reported.

    Args:
        session: The pytest session.
        state: The plugin's :class:`~pytest_mlcheck.session.MLCheckSession`.

    Returns:
        The reason, or "".
    """
    config = session.config
    if getattr(config.option, "keyword", ""):
        return "-k selected tests"
    if getattr(config.option, "markexpr", ""):
        return "-m selected tests"
    if any("::" in str(arg) for arg in config.args):
        return "node ids were given on the command line"
    if state.deselected:
        return f"{state.deselected} test(s) were deselected"
    if state.collect_errors:
        return "there were collection errors"
    if state.worker_errors:
        return "an xdist worker crashed"
    if session.shouldstop or session.shouldfail:
        return "the session stopped early"
    collected = getattr(session, "testscollected", 0) or 0
    if collected and len(state.outcomes) < collected:
        return "not every collected test ran"
    if not state.outcomes:
        return "no test ran"
    return ""


def _current_variant(variant: str) -> bool:
    if not variant:
        return True
    from .environment import fingerprint

    info = fingerprint()
    return all(info.get(k, "none") == v for k, v in parse_variant(variant).items())


def find_unused(state: Any, store: BaselineStore) -> tuple[dict[Path, list[tuple[str, str, str]]],
                                                           dict[Path, list[str]], list[str]]:
    """Return the entries and array files no test used in this (whole-suite) session.

    Entries of tests that were skipped or failed count as used (a failure may come
    before the check), and so do variants recorded for another environment.

    Args:
        state: The plugin's session state (records and outcomes).
        store: The baseline store, to reuse parsed files.

    Returns:
        ``(unused entries per file, orphaned .npz names per file, problems)``.
    """
    used: set[tuple[str, str, str, str]] = set()
    for r in state.records:
        # The entry a record used: its test, its group (an array's group is its name)
        # and its environment variant.
        if r.kind == "metric":
            used.add((str(r.values.get("file", "")), local_id(r.nodeid),
                      r.group or DEFAULT_GROUP, str(r.values.get("variant", ""))))
        elif r.kind == "array":
            used.add((str(r.values.get("file", "")), local_id(r.nodeid), r.name,
                      str(r.values.get("variant", ""))))
    outcomes: dict[Path, dict[str, str]] = {}
    modules: dict[str, Path] = {}  # one path per module, not per test
    for nodeid, outcome in state.outcomes.items():
        prefix = nodeid.split("::", 1)[0]
        module = modules.get(prefix)
        if module is None:
            module = modules[prefix] = module_of(nodeid, store.rootdir)
        outcomes.setdefault(module, {})[local_id(nodeid)] = outcome
    files: dict[Path, Path | None] = {}
    for module in outcomes:
        files[baseline_path(module, store.rootdir, store.baseline_dir)] = module
    for directory in {p.parent for p in files}:
        if directory.is_dir():
            for child in directory.glob("*.toml"):
                if child not in files:
                    module = module_for_baseline(child, store.rootdir, store.baseline_dir)
                    if not module.exists():
                        files[child] = None
    unused: dict[Path, list[tuple[str, str, str]]] = {}
    orphans: dict[Path, list[str]] = {}
    problems: list[str] = []
    for path in sorted(files):
        module = files[path]
        if not path.exists():
            continue
        bfile = store.files.get(path) or BaselineFile(path, store.rel(path), "")
        try:
            data = bfile.load()
        except BaselineFileError as exc:
            problems.append(str(exc).splitlines()[0])
            continue
        ran = outcomes.get(module, {}) if module is not None else {}
        stale = []
        keep_arrays = set()
        rel = store.rel(path)
        for key in entries_of(data):
            test, group, variant = key
            outcome = ran.get(test)
            is_unused = outcome is None or (
                outcome == "passed" and (rel, *key) not in used
                and _current_variant(variant))
            if is_unused:
                stale.append(key)
            else:
                array = _raw_entry(data, key).get("array")
                if isinstance(array, dict) and isinstance(array.get("file"), str):
                    keep_arrays.add(array["file"])
        if stale:
            unused[path] = stale
        pattern = re.compile(re.escape(path.stem) + r"-[0-9a-f]{16}\.npz")
        lost = sorted(c.name for c in path.parent.iterdir()
                      if pattern.fullmatch(c.name) and c.name not in keep_arrays)
        if lost:
            orphans[path] = lost
    return unused, orphans, problems


def finish_baselines(session: Any, state: Any) -> None:
    """Write staged baselines, then list (and with ``--mlcheck-prune`` delete) unused ones.

    Runs on the controller or the only process. Lines for the terminal go to
    ``state.extra["summary_lines"]``, data for the JSON report to ``state.extra["report"]``.

    Args:
        session: The pytest session.
        state: The plugin's :class:`~pytest_mlcheck.session.MLCheckSession`.
    """
    lines: list[str] = state.extra.setdefault("summary_lines", [])
    report: dict[str, Any] = state.extra.setdefault("report", {})
    store = state.baseline_store()
    written, errors = store.flush()
    state.written += written
    state.write_errors += errors
    if state.write_errors:
        lines.append("")
        lines.append("baseline files NOT written:")
        lines += [f"  {e}" for e in state.write_errors]
        report["baseline_write_errors"] = list(state.write_errors)
        session.exitstatus = max(int(session.exitstatus), 1)
    reason = whole_suite_reason(session, state)
    if reason:
        if state.prune:
            lines.append("")
            lines.append(f"--mlcheck-prune did nothing: {reason}; unused baselines are only "
                         f"known after a run of the whole suite.")
        return
    unused, orphans, problems = find_unused(state, store)
    listed = [f"{store.rel(p)} {entry_label(k)}" for p, keys in unused.items() for k in keys]
    listed += [f"{os.path.join(os.path.dirname(store.rel(p)), n)} (orphaned array file)"
               for p, names in orphans.items() for n in names]
    report["unused_baselines"] = listed
    for problem in problems:
        lines.append(f"could not look for unused baselines: {problem}")
    if not listed:
        return
    lines.append("")
    if not state.prune:
        lines.append(f"unused baselines ({len(listed)}), no test used them in this whole-suite "
                     f"run; delete them with pytest --mlcheck-prune:")
        lines += [f"  {item}" for item in listed]
        return
    pruned: list[str] = []
    for path in sorted(set(unused) | set(orphans)):
        bfile = BaselineFile(path, store.rel(path), "")
        try:
            outcome = write_file(bfile, set(unused.get(path, ())), delete_orphan_arrays=True)
        except Exception as exc:
            lines.append(f"could not prune {store.rel(path)}: {type(exc).__name__}: {exc}")
            continue
        if outcome.error:
            lines.append(outcome.error)
            continue
        pruned += [f"{store.rel(path)} {label}" for label in outcome.deleted]
        pruned += [f"{f} (file deleted)" for f in outcome.removed_files]
    report["pruned_baselines"] = pruned
    lines.append(f"pruned unused baselines ({len(pruned)}):")
    lines += [f"  {item}" for item in pruned]
