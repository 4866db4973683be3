"""The TOML codec of baseline files: read bytes, parse, validate entries, render new text.

Reading is strict and explains itself: a file that is not UTF-8, not a regular file,
unreadable, not TOML, or holds a value of the wrong type or out of range raises an
error naming the file, the entry and the reason. A byte-order mark and CRLF line
endings are accepted and written back as they were found. Values that TOML cannot
hold (integers past 64 bits, NaN, names that are not valid Unicode) are refused
before anything is written, naming the metric.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

from .paths import NPZ_NAME, entry_label, toml_key, toml_string

try:  # Python >= 3.11
    import tomllib as _toml_reader
except ImportError:  # pragma: no cover - Python 3.10
    try:
        import tomli as _toml_reader  # type: ignore[no-redef]
    except ImportError:
        _toml_reader = None  # type: ignore[assignment]

#: The first line of every file we write; writes and pruning touch no file without it.
HEADER_START = "# pytest-mlcheck baselines for "
HEADER = (
    HEADER_START + "{module}.\n"
    "# Written by `pytest --mlcheck-update`; review changes like code.\n"
    "# Comments and formatting you add here are kept across updates.\n"
)

#: The keys an entry table may hold.
ENTRY_KEYS = frozenset({"recorded_in", "metrics", "array"})
_TABLE_KEYS = ENTRY_KEYS | {"variants"}

#: TOML integers are signed 64-bit.
_INT_MIN, _INT_MAX = -(2 ** 63), 2 ** 63 - 1


class BaselineFileError(Exception):
    """A baseline file that cannot be read or parsed; it is never overwritten."""


class BaselineEntryError(ValueError):
    """A baseline entry whose content has the wrong shape or type (e.g. hand-edited)."""


@dataclasses.dataclass
class FileText:
    """A baseline file's text with what must survive a rewrite: BOM and line endings.

    Attributes:
        text: The content, without the BOM and with ``\\n`` line endings.
        bom: Whether the file started with a UTF-8 byte-order mark.
        newline: ``"\\r\\n"`` when the file used CRLF line endings, else ``"\\n"``.
        raw: The bytes as read (``b""`` for a file that does not exist).
    """

    text: str
    bom: bool = False
    newline: str = "\n"
    raw: bytes = b""

    def encode(self, text: str) -> bytes:
        """Return new content as bytes in this file's style (BOM, line endings).

        Args:
            text: New content with ``\\n`` line endings.

        Returns:
            The bytes to write.
        """
        if self.newline != "\n":
            text = text.replace("\n", self.newline)
        return (codecs.BOM_UTF8 if self.bom else b"") + text.encode("utf-8")

    @property
    def ours(self) -> bool:
        """Whether the file carries our header line (or is empty, a new file)."""
        return not self.text.strip() or self.text.startswith(HEADER_START)


def _unreadable(rel: str, reason: str) -> BaselineFileError:
    return BaselineFileError(
        f"unreadable baseline file {rel}: {reason}\n"
        f"pytest-mlcheck never overwrites a baseline file it cannot read, not even with "
        f"--mlcheck-update. Fix it (or its permissions), restore it from version control "
        f"(git checkout -- {rel}), or delete it and re-record with pytest --mlcheck-update."
    )


def decode(data: bytes, rel: str) -> FileText:
    """Decode a baseline file's bytes, keeping note of its BOM and line endings.

    Args:
        data: The file's bytes.
        rel: The file's path as shown to people.

    Returns:
        The text, LF-normalised.

    Raises:
        BaselineFileError: The bytes are not UTF-8.
    """
    bom = data.startswith(codecs.BOM_UTF8)
    body = data[len(codecs.BOM_UTF8):] if bom else data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + (len(codecs.BOM_UTF8) if bom else 0)
        line = body[:exc.start].count(b"\n") + 1
        raise _unreadable(rel, f"not UTF-8 text (byte 0x{body[exc.start]:02x} at offset "
                               f"{offset}, line {line}); baseline files are UTF-8") from None
    newline = "\n"
    if "\r\n" in text:
        # Keep the style the file has most of; a mixed file becomes consistent.
        if text.count("\r\n") * 2 >= text.count("\n"):
            newline = "\r\n"
        text = text.replace("\r\n", "\n")
    return FileText(text, bom, newline, data)


def read_file(path: Path, rel: str) -> FileText | None:
    """Read a baseline file, or return ``None`` when it does not exist.

    Only regular files are read: a directory, FIFO or device in a baseline's place
    is an error, not a hang or a crash.

    Args:
        path: The file.
        rel: Its path as shown to people.

    Returns:
        The decoded text, or ``None``.

    Raises:
        BaselineFileError: It exists but cannot be read or is not UTF-8; the message
            names the file and the reason.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unreadable(rel, exc.strerror or str(exc)) from None
    if stat.S_ISDIR(info.st_mode):
        raise _unreadable(rel, "it is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise _unreadable(rel, "it is not a regular file (a FIFO, socket or device)")
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:  # removed between stat and open
        return None
    except OSError as exc:
        raise _unreadable(rel, exc.strerror or str(exc)) from None
    return decode(data, rel)


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
        text: The file's content (a leading BOM is allowed).
        rel: The file's path as shown to people.

    Returns:
        The parsed document.

    Raises:
        BaselineFileError: The text is not valid TOML; the message names the file,
            the line and the TOML parser's message.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
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


def _cache_file(path: Path) -> Path | None:
    from .state_dir import user_state_dir

    try:
        directory = user_state_dir("cache")
    except OSError:
        return None  # no private place: parse every time rather than trust a shared one
    digest = hashlib.sha256(os.path.realpath(str(path)).encode("utf-8", "surrogatepass"))
    return directory / (digest.hexdigest()[:24] + ".json")


def parse_cached(path: Path, text: str, rel: str) -> dict[str, Any]:
    """Parse a baseline file, reusing a JSON copy of the last parse of the same content.

    A large file (1,000 tests x 10 metrics is ~360 KiB) takes ``tomllib`` a few tenths of
    a second on every run; loading the same data as JSON takes a tenth of that. The copy
    lives in this user's private cache directory (0700, see
    :mod:`~pytest_mlcheck.baselines.state_dir`), one per baseline file, and is used only
    when it records the SHA-256 of the file's full text, so an edited file is always
    parsed again. JSON, never pickle.

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
    cache = _cache_file(path)
    if cache is None:
        return parse_toml(text, rel)
    content = hashlib.sha256(text.encode("utf-8")).hexdigest()
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
        from ..atomic import atomic_write_bytes

        payload = json.dumps({"sha256": content, "data": data}).encode("utf-8")
        atomic_write_bytes(cache, payload, mode=0o600)
    except (TypeError, ValueError, OSError):  # dates a person added, a full disk
        pass
    return data


# ---- values and entries ---------------------------------------------------------------


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:40] + f"... ({len(text)} characters)"


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return _INT_MIN <= value <= _INT_MAX  # huge ints would overflow float maths
    return isinstance(value, float) and math.isfinite(value)


def toml_value(value: Any) -> str:
    """Return TOML text for a baseline value; floats round-trip exactly (``repr``).

    Args:
        value: A str, bool, int, finite float, list or dict of those.

    Returns:
        The value as TOML text (dicts become inline tables).

    Raises:
        ValueError: A non-finite float, or an integer outside TOML's 64-bit range.
        TypeError: A value of another type.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            raise ValueError(f"refusing to record the integer {_short_repr(value)}: TOML "
                             f"integers are 64-bit ({_INT_MIN} to {_INT_MAX})")
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


def unicode_problem(text: str) -> str:
    """Return why ``text`` cannot be written to a UTF-8 file, or "" when it can.

    Args:
        text: A metric, test or group name.

    Returns:
        The reason (a lone surrogate, as from a mis-decoded byte), or "".
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"it holds the lone surrogate {text[exc.start]!r} at position {exc.start}, "
                f"which is not valid Unicode text (often a byte mis-decoded with "
                f"errors='surrogateescape')")
    return ""


def check_recordable(key: tuple[str, str, str], entry: dict[str, Any]) -> None:
    """Refuse an entry that a baseline file cannot hold, naming the metric and why.

    Runs when the entry is staged, inside the test that produced it, so one bad
    metric fails its own test instead of blocking the whole file at the end.

    Args:
        key: The entry key ``(test id, group, variant)``.
        entry: The entry about to be staged.

    Raises:
        ValueError: A name that is not valid Unicode, an integer beyond 64 bits, or a
            non-finite value; the message names the entry and the metric.
    """
    for part, what in zip(key, ("test id", "name=", "environment variant")):
        problem = unicode_problem(part)
        if problem:
            raise ValueError(f"cannot record a baseline for {what} {part!r}: {problem}")
    label = entry_label(key)
    for sub in ("metrics", "array"):
        for name, value in (entry.get(sub) or {}).items():
            problem = unicode_problem(name)
            if problem:
                raise ValueError(f"cannot record metric {name!r} of {label}: {problem}; "
                                 f"rename the metric")
            try:
                toml_value(value)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"cannot record metric {name!r} of {label}: {exc}") from None
    toml_value(entry.get("recorded_in", {}))


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


def validate_entry(entry: Any, label: str, rel: str) -> dict[str, Any]:
    """Check the shape, types and ranges of an entry read from a file.

    Args:
        entry: The entry's table.
        label: The entry as shown to people (:func:`~.paths.entry_label`).
        rel: The file's path as shown to people.

    Returns:
        The entry, unchanged.

    Raises:
        BaselineEntryError: Something has the wrong type or is out of range; the
            message names the entry and the key.
    """
    fix = ("fix the value by hand, or delete the entry and re-record it with "
           "pytest --mlcheck-update")

    def bad(what: str, value: Any, expected: str) -> BaselineEntryError:
        return BaselineEntryError(
            f"baseline entry {label} in {rel}: {what} is {type(value).__name__} "
            f"{_short_repr(value)}, expected {expected}; {fix}"
        )

    if not isinstance(entry, dict):
        raise bad("the entry", entry, "a table")
    unknown = sorted(set(entry) - _TABLE_KEYS)
    if unknown:
        raise BaselineEntryError(
            f"baseline entry {label} in {rel}: unknown key(s) {', '.join(map(repr, unknown))} "
            f"(an entry holds recorded_in, metrics or array, and variants); a typo? {fix}")
    recorded = entry.get("recorded_in", {})
    if not isinstance(recorded, dict):
        raise bad("recorded_in", recorded, "a table of environment facets")
    metrics = entry.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, dict):
            raise bad("metrics", metrics, "a table of metric values")
        number = "a finite number (integers within 64 bits)"
        for name, value in metrics.items():
            if type(value) is float and value - value == 0.0:
                continue  # the common case, finite (inf - inf and NaN - NaN are NaN)
            if isinstance(value, dict):
                for stat_name in ("mean", "std", "n", "min", "max"):
                    if stat_name not in value:
                        raise BaselineEntryError(
                            f"baseline entry {label} in {rel}: metric {name!r} lacks "
                            f"{stat_name!r} (check_repeated stores mean, std, n, min and "
                            f"max); {fix}"
                        )
                    if not _finite_number(value[stat_name]):
                        raise bad(f"metric {name!r} {stat_name}", value[stat_name], number)
                if value["n"] < 1 or value["std"] < 0:
                    raise bad(f"metric {name!r} n/std", (value["n"], value["std"]),
                              "n >= 1 and std >= 0")
            elif not _finite_number(value):
                raise bad(f"metric {name!r}", value, number)
    array = entry.get("array")
    if array is not None:
        if not isinstance(array, dict):
            raise bad("array", array, "a table")
        name = array.get("file")
        if not isinstance(name, str) or not NPZ_NAME.fullmatch(name):
            raise bad("array file", name, "a plain .npz file name beside the TOML file")
        shape = array.get("shape")
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= _INT_MAX
                for d in shape):
            raise bad("array shape", shape, "a list of non-negative integers")
        if not isinstance(array.get("dtype"), str):
            raise bad("array dtype", array.get("dtype"), "a dtype name")
    if metrics is None and array is None:
        raise BaselineEntryError(
            f"baseline entry {label} in {rel} has neither a metrics nor an array table; {fix}"
        )
    return entry


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
            if ENTRY_KEYS & set(table):
                out.append((test, group, ""))
            variants = table.get("variants")
            if isinstance(variants, dict):
                out += [(test, group, v) for v in variants if isinstance(variants[v], dict)]
    return out


def raw_entry(data: dict[str, Any], key: tuple[str, str, str]) -> Any:
    """Return the table of an entry listed by :func:`entries_of`.

    Args:
        data: A parsed baseline file.
        key: The entry key.

    Returns:
        The entry's table.
    """
    test, group, variant = key
    table = data[test][group]
    return table["variants"][variant] if variant else table


def array_files(data: dict[str, Any]) -> set[str]:
    """Return the ``.npz`` file names that a parsed baseline file names.

    Args:
        data: A parsed baseline file.

    Returns:
        The valid file names of its array entries.
    """
    used = set()
    for key in entries_of(data):
        array = raw_entry(data, key).get("array")
        if isinstance(array, dict) and isinstance(array.get("file"), str) \
                and NPZ_NAME.fullmatch(array["file"]):
            used.add(array["file"])
    return used
