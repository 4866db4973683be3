"""Merging staged entries into a baseline file's text, keeping what people wrote.

Two ways, both verified: a fast line merge for the simple one-value-per-line files we
write (parsing a large file with ``tomlkit`` costs seconds), and ``tomlkit`` for
everything else, so comments and formatting people add survive either way. The
text handled here always has ``\\n`` line endings and no BOM; the store restores the
file's own style (see :class:`~pytest_mlcheck.baselines.codec.FileText`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from .codec import ENTRY_KEYS, HEADER, _toml_reader, render_entry, toml_value
from .paths import toml_key


@dataclasses.dataclass
class Staged:
    """An entry to write at the end of the session.

    Attributes:
        entry: The entry's content (``recorded_in`` and ``metrics`` or ``array``).
        arrays: ``{file name: numpy array}`` to save beside the TOML file.
        replace_group: Unused; kept for callers that pass it.
    """

    entry: dict[str, Any]
    arrays: dict[str, Any]
    replace_group: bool = False


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
        parts = [HEADER.format(module=module), "\n"]
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
            for stale in [k for k in ENTRY_KEYS if k in table]:
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
            if not (ENTRY_KEYS | {"variants"}) & set(node[group].keys()):
                del node[group]
        else:
            for sub in list(ENTRY_KEYS):
                if sub in node[group]:
                    del node[group][sub]
            if "variants" not in node[group]:
                del node[group]
        if not len(node):
            del doc[test]
    if not any(True for _ in doc.keys()):
        return ""
    return tomlkit.dumps(doc)
