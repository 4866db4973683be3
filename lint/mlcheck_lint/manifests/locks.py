"""Standard lock files: PEP 751 ``pylock.toml`` and uv's ``uv.lock``.

Both are TOML. A lock here is what it pins: package name -> the versions locked, each
with its marker (PEP 751 ``marker``; uv resolves markers per dependency edge, so its
entries carry none). uv also records what the project declared when it locked
(``[package.metadata] requires-dist`` of the project's own entry), which is what
``uv lock --check`` compares; so do we.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .model import Manifest, ManifestProblem
from .pyproject import TomlLocator, load_toml_text


@dataclasses.dataclass(frozen=True)
class LockedPackage:
    """One locked package.

    Attributes:
        name: The canonical name.
        version: The locked version (``None`` for a path or VCS source without one).
        marker: The PEP 751 marker under which it installs, or ``None`` for always.
        line: The 1-based line of its entry.
        source: ``registry``, ``editable``, ``directory``, ``virtual``, ``git``, ``url``.
    """

    name: str
    version: str | None
    marker: str | None
    line: int
    source: str = "registry"


@dataclasses.dataclass
class Lock:
    """A parsed standard lock.

    Attributes:
        manifest: The file's manifest record (path, problems, parsed data).
        packages: Locked packages by canonical name.
        declared: For ``uv.lock``: the project's ``requires-dist`` as uv saw it when it
            locked, canonical name -> list of requirement strings; ``None`` otherwise.
        declared_groups: For ``uv.lock``: ``requires-dev`` group -> requirement strings.
        project: For ``uv.lock``: the project's own canonical name.
    """

    manifest: Manifest
    packages: dict[str, list[LockedPackage]]
    declared: dict[str, list[str]] | None = None
    declared_groups: dict[str, list[str]] | None = None
    project: str | None = None


def read_lock_text(text: str, path: str) -> Lock:
    """Read a ``pylock.toml`` (or ``pylock.<name>.toml``) or a ``uv.lock``.

    Args:
        text: The file's text.
        path: Its project-relative path.

    Returns:
        The lock; bad TOML or a malformed entry is a problem in ``lock.manifest``.
    """
    from packaging.utils import canonicalize_name

    name = path.rsplit("/", 1)[-1]
    kind = "uv.lock" if name == "uv.lock" else "pylock"
    manifest = Manifest(path=path, kind=kind)
    lock = Lock(manifest, {})
    data, error = load_toml_text(text)
    if data is None:
        line, col, reason = error
        manifest.problems.append(ManifestProblem(path, line, col, f"not valid TOML: {reason}"))
        return lock
    manifest.data = data
    loc = TomlLocator(text)
    key = "package" if kind == "uv.lock" else "packages"
    entries = data.get(key, [])
    if kind == "pylock" and "lock-version" not in data:
        manifest.problems.append(ManifestProblem(path, 1, 0, "not a PEP 751 lock: no 'lock-version' key"))
    if not isinstance(entries, list):
        manifest.problems.append(ManifestProblem(path, 1, 0, f"'{key}' must be an array of tables"))
        return lock
    starts = [offset for table, offset in loc.tables if table == key]
    for i, entry in enumerate(entries):
        line = loc.position(starts[i])[0] if i < len(starts) else 1
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            manifest.problems.append(ManifestProblem(path, line, 0, f"[[{key}]] entry {i + 1} has no 'name'"))
            continue
        canonical = canonicalize_name(entry["name"])
        source = "registry"
        src = entry.get("source")
        if isinstance(src, dict):
            source = next((k for k in ("editable", "directory", "virtual", "git", "url", "path") if k in src), "registry")
        elif any(k in entry for k in ("vcs", "directory", "archive")):
            source = next(k for k in ("vcs", "directory", "archive") if k in entry)
        version = entry.get("version")
        if version is not None and not _is_version(version):
            manifest.problems.append(ManifestProblem(
                path, line, 0, f"[[{key}]] entry {i + 1} ({canonical}): 'version' must be a version "
                               f"string, got {version!r}"))
            version = None
        lock.packages.setdefault(canonical, []).append(LockedPackage(
            canonical, str(version) if version is not None else None,
            entry.get("marker") if isinstance(entry.get("marker"), str) else None, line, source))
        if kind == "uv.lock" and source in ("editable", "virtual", "directory") and isinstance(entry.get("metadata"), dict) \
                and lock.declared is None:
            meta = entry["metadata"]
            lock.project = canonical
            lock.declared = {}
            dist = meta.get("requires-dist")
            for spec in dist if isinstance(dist, list) else []:
                if _is_uv_spec(spec):
                    lock.declared.setdefault(canonicalize_name(spec["name"]), []).append(_uv_spec(spec))
            lock.declared_groups = {}
            dev = meta.get("requires-dev")
            for group, specs in (dev.items() if isinstance(dev, dict) else []):
                if isinstance(specs, list):
                    lock.declared_groups[str(group)] = [_uv_spec(s) for s in specs if _is_uv_spec(s)]
    return lock


def _is_uv_spec(spec: Any) -> bool:
    """Whether ``spec`` is a ``{name = "...", ...}`` table (anything else is skipped)."""
    return isinstance(spec, dict) and isinstance(spec.get("name"), str)


def _uv_spec(spec: dict[str, Any]) -> str:
    """Rebuild a requirement string from uv's ``{name, specifier, marker, extras}``."""
    text = spec["name"]
    extra = spec.get("extra")
    if isinstance(extra, list) and extra and all(isinstance(e, str) for e in extra):
        text += "[" + ",".join(extra) + "]"
    specifier = spec.get("specifier")
    text += specifier if isinstance(specifier, str) else ""
    if isinstance(spec.get("marker"), str) and spec["marker"]:
        text += f"; {spec['marker']}"
    return text


def _is_version(value: object) -> bool:
    """Whether ``value`` is a string that ``packaging`` reads as a version."""
    from packaging.version import InvalidVersion, Version

    if not isinstance(value, str):
        return False
    try:
        Version(value)
    except InvalidVersion:
        return False
    return True
