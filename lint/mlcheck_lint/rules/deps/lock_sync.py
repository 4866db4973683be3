"""Lock sync, offline: MLC203 (pip-tools ``.txt`` vs ``.in``), MLC209 (``pylock.toml`` /
``uv.lock`` vs ``pyproject.toml``).

No resolver and no network: a lock is stale when what it pins can no longer be what
its source asks for. That is decidable from the two files alone for every change a
person makes to the source (a requirement added, removed, tightened, a marker edited);
what it cannot see is a new upstream release, which is not staleness.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable

from ... import manifests
from ...api import Finding, register
from ...manifests import DeclaredRequirement
from . import common, markers

#: pip-compile options that take a value (``--opt value`` in a header).
_VALUE_OPTIONS = {"-o", "--output-file", "-i", "--index-url", "--extra-index-url", "-f", "--find-links",
                  "-c", "--constraint", "--extra", "-P", "--upgrade-package", "--pip-args", "--cache-dir",
                  "--resolver", "--build-deps-for", "--trusted-host", "--unsafe-package", "--override",
                  "--python-version", "--config", "-r"}


def header_sources(header: list[str]) -> tuple[list[str], list[str]]:
    """Split a pip-compile header into its source files and its options.

    Args:
        header: The words after ``pip-compile`` in the lock's header.

    Returns:
        ``(sources, options)``.
    """
    sources, options = [], []
    skip = False
    for word in header:
        if skip:
            options.append(word)
            skip = False
            continue
        if word.startswith("-"):
            options.append(word)
            skip = word in _VALUE_OPTIONS
            continue
        sources.append(word)
    return sources, options


def _header_extras(options: list[str]) -> tuple[set[str], bool]:
    extras: set[str] = set()
    every = False
    for i, word in enumerate(options):
        if word.startswith("--extra="):
            extras.add(word.split("=", 1)[1])
        elif word == "--extra" and i + 1 < len(options):
            extras.add(options[i + 1])
        elif word == "--all-extras":
            every = True
    return extras, every


def find_pip_tools_locks(root: Path, paths: list[str]) -> list[tuple[str, list[str], list[str]]]:
    """Find the pip-tools locks among the manifests and name their sources.

    A ``.txt`` is a lock when an ``X.in`` sits next to ``X.txt`` or when it carries
    pip-compile's header; the header's source files win over the sibling.

    Args:
        root: The project root.
        paths: Manifest paths.

    Returns:
        ``(lock, [source, ...], header options)`` per lock; sources project-relative
        (a source that does not exist is kept, so the rule can say so).
    """
    out = []
    for rel in paths:
        if not rel.endswith(".txt") or manifests.manifest_kind(rel) != "requirements":
            continue
        manifest = common.load(root, rel)
        if manifest is None:
            continue
        folder = os.path.dirname(rel)
        sibling = rel[:-4] + ".in"
        sources: list[str] = []
        options: list[str] = []
        if manifest.header is not None:
            named, options = header_sources(manifest.header)
            for source in named:
                near = os.path.normpath(os.path.join(folder, source)).replace(os.sep, "/")
                sources.append(near if (root / near).exists() or not (root / source).exists() else source)
        if not sources and (root / sibling).is_file():
            sources = [sibling]
        if sources:
            out.append((rel, sources, options))
    return out


def _source_requirements(root: Path, source: str, options: list[str]) -> tuple[list[DeclaredRequirement], str | None]:
    kind = manifests.manifest_kind(source)
    if not (root / source).is_file():
        return [], f"the source {source} named for this lock does not exist"
    if kind == "requirements" or source.endswith(".in"):
        expanded = common.expand(root, source)
        return [r for r in expanded.requirements if not r.constraint], None
    if kind in ("pyproject", "setup.cfg"):
        manifest = common.load(root, source)
        if manifest is None:
            return [], f"{source} cannot be read"
        extras, every = _header_extras(options)
        keep = []
        for r in manifest.requirements:
            group = r.group
            if group in ("dependencies", "setup.cfg:install_requires"):
                keep.append(r)
            elif group.startswith("optional:") and (every or group[9:] in extras):
                keep.append(r)
            elif group.startswith("setup.cfg:extra:") and (every or group[16:] in extras):
                keep.append(r)
        own = ((manifest.data or {}).get("project") or {}).get("name") if isinstance(manifest.data, dict) else None
        if own:
            from packaging.utils import canonicalize_name

            keep = [r for r in keep if r.name != canonicalize_name(own)]
        return keep, None
    return [], None  # setup.py: not readable without running it


def _via_parents(via: tuple[str, ...]) -> tuple[set[str], bool]:
    from packaging.utils import canonicalize_name

    parents: set[str] = set()
    from_source = False
    for word in via:
        if word.startswith(("-r ", "-c ")):
            from_source = from_source or word.startswith("-r ")
            continue
        if "(" in word or word.endswith((".toml", ".cfg", ".py", ".in", ".txt")):
            from_source = True
            continue
        name = word.split("[", 1)[0].strip()
        if name:
            parents.add(canonicalize_name(name))
    return parents, from_source


@register
class PipToolsLockStale(common.ManifestRule):
    """A pip-tools lock (``requirements.txt``) out of sync with its ``.in`` source.

    What it does:
        Compares each pip-compile output (a ``.txt`` next to ``X.in``, or one with
        pip-compile's header) with its sources, offline, and reports: a source
        requirement with no pinned entry; a pin that no longer satisfies the source's
        specifier; a marker dropped or changed; an entry whose ``# via`` provenance no
        longer leads to any source requirement (left over after a removal); a missing
        ``--hash`` when the header says ``--generate-hashes``. Each finding names the
        package and both files.

    Why is this bad?
        Someone edits ``requirements.in`` and forgets to re-compile: CI installs the
        old pins, and the change the review approved never ships. pip-tools has no
        check mode; regenerating to diff needs the network and differs by platform.

    Example:
        ```text
        # requirements.in            # requirements.txt (stale)
        numpy>=2.0                   numpy==1.26.4
        ```

    Use instead:
        ```text
        pip-compile requirements.in   # or: mlcheck-lint --fix --lock
        ```
    """

    code = "MLC203"
    name = "pip-tools-lock-stale"
    summary = "a pip-tools lock (.txt) is out of sync with its .in source"
    text_files = manifests.REQUIREMENTS_PATTERNS + ("pyproject.toml", "setup.cfg")

    def _manifest_findings(self, project: Any, root: Path, paths: list[str]) -> Iterable[Finding]:
        """Yield the staleness findings of every pip-tools lock."""
        for lock, sources, options in find_pip_tools_locks(root, paths):
            yield from stale_findings(self.code, root, lock, sources, options)


_COMPILED_WITH = re.compile(r"^#\s*This file is autogenerated by pip-compile with Python (\d+\.\d+)")


def _compiling_python(path: Path) -> str | None:
    """Return the Python version pip-compile's header says the lock was made with."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for _ in range(5):
                match = _COMPILED_WITH.match(fh.readline())
                if match:
                    return match.group(1)
    except OSError:
        return None
    return None


def _holds_where_locked(marker: Any, python: str | None) -> bool:
    """Whether ``marker`` held where the lock was compiled.

    pip-compile evaluates markers in its own environment and omits a requirement whose
    marker is false there. The header records that environment's Python; the rest
    (platform, machine) is taken from the running one, as it is for most projects.
    """
    from packaging.markers import default_environment

    env = dict(default_environment())
    if python is not None:
        env["python_version"] = python
        env["python_full_version"] = python + ".0"
    try:
        return bool(marker.evaluate(env))
    except Exception:  # an undefined name in the marker: keep the finding
        return True


def stale_findings(code: str, root: Path, lock: str, sources: list[str], options: list[str]) -> Iterable[Finding]:
    """Compare one pip-tools lock with its sources.

    Args:
        code: The rule code to report under.
        root: The project root.
        lock: The lock's project-relative path.
        sources: Its sources, project-relative.
        options: The header's options.

    Yields:
        The findings.
    """
    manifest = common.load(root, lock)
    if manifest is None:
        return
    wanted: list[DeclaredRequirement] = []
    for source in sources:
        reqs, problem = _source_requirements(root, source, options)
        if problem:
            yield Finding(code, f"{lock}: {problem}; re-create the lock with pip-compile", 1, 0, path=lock)
        wanted.extend(reqs)
    pinned: dict[str, DeclaredRequirement] = {}
    for entry in manifest.requirements:
        if entry.name:
            pinned.setdefault(entry.name, entry)
    label = " + ".join(sources)
    compiled_with = _compiling_python(root / lock)
    for req in wanted:
        if req.name is None:
            continue
        entry = pinned.get(req.name)
        where = f"{req.path}:{req.line}"
        if entry is None:
            if req.requirement.marker is not None and not _holds_where_locked(req.requirement.marker,
                                                                               compiled_with):
                continue  # pip-compile leaves out what its environment's marker excludes
            yield common.finding(code, req, (
                f"{req.requirement.name} is required by {where} but has no pinned entry in {lock}: "
                f"the lock is stale; re-run pip-compile on {label} (or mlcheck-lint --fix --lock)"))
            continue
        version = entry.pinned_version
        if version is not None and req.requirement.specifier and \
                not req.requirement.specifier.contains(version, prereleases=True):
            yield common.finding(code, req, (
                f"{req.requirement.name} is pinned to {version} in {lock}:{entry.line}, which no longer "
                f"satisfies `{req.requirement.specifier}` in {where}: the lock is stale; re-run pip-compile"))
        want, have = req.requirement.marker, entry.requirement.marker if entry.requirement else None
        if want is not None and have is None:
            yield common.finding(code, req, (
                f"{req.requirement.name}: the marker `{want}` in {where} was dropped in {lock}:{entry.line}, "
                f"which installs it everywhere; re-run pip-compile"))
        elif want is not None and have is not None and str(want) != str(have):
            envs = markers.environments()
            if markers.differences(want, have, envs) != (0, 0):
                yield common.finding(code, req, (
                    f"{req.requirement.name}: the marker `{want}` in {where} differs from `{have}` in "
                    f"{lock}:{entry.line}; re-run pip-compile"))
    top = {r.name for r in wanted if r.name}
    annotated = [e for e in manifest.requirements if e.via]
    if annotated:
        reachable = {name for name in pinned if name in top}
        changed = True
        parents = {name: _via_parents(e.via) for name, e in pinned.items() if e.via}
        while changed:
            changed = False
            for name, (ups, _) in parents.items():
                if name not in reachable and ups & reachable:
                    reachable.add(name)
                    changed = True
        for name, entry in pinned.items():
            if name in reachable or not entry.via:
                continue
            ups, from_source = parents[name]
            why = (f"its `# via` says {', '.join(entry.via)}, but {label} no longer requires it"
                   if from_source and not ups else
                   f"nothing that needs it ({', '.join(sorted(ups)) or 'none'}) is still required by {label}")
            yield common.finding(code, entry, (
                f"{entry.requirement.name} in {lock} is an orphan: {why}; re-run pip-compile to drop it"))
    if "--generate-hashes" in options:
        for entry in manifest.requirements:
            if entry.requirement is not None and not entry.editable and not entry.hashes and not entry.local:
                yield common.finding(code, entry, (
                    f"{entry.requirement.name} in {lock} has no --hash although the header says "
                    f"--generate-hashes (source: {label}); pip --require-hashes will refuse the file; re-run pip-compile"))


def _requirement_or_none(text: str) -> Any:
    """Parse a requirement uv recorded; ``None`` for one packaging cannot read."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


@register
class StandardLockStale(common.ManifestRule):
    """A ``pylock.toml`` or ``uv.lock`` out of sync with ``pyproject.toml``.

    What it does:
        For every requirement in ``[project] dependencies``, ``optional-dependencies``
        and ``[dependency-groups]``, checks the lock next to the ``pyproject.toml``:
        a declared dependency with no locked entry, a locked version that no longer
        satisfies the declared specifier, and a marker that no longer matches (for
        ``uv.lock``, against the declarations uv recorded when it locked; markers are
        compared by meaning over a grid of environments). Offline: no resolver.

    Why is this bad?
        ``uv sync --frozen`` and PEP 751 installers install the lock, not the
        pyproject: a requirement added without re-locking never gets installed, and
        a tightened bound is silently ignored.

    Example:
        ```toml
        dependencies = ["numpy>=2.0"]   # uv.lock still pins numpy 1.26.4
        ```

    Use instead:
        ```text
        uv lock          # or re-export pylock.toml
        ```
    """

    code = "MLC209"
    name = "standard-lock-stale"
    summary = "pylock.toml / uv.lock out of sync with pyproject.toml"
    text_files = ("pyproject.toml",) + manifests.LOCK_PATTERNS

    def _manifest_findings(self, project: Any, root: Path, paths: list[str]) -> Iterable[Finding]:
        """Yield the staleness findings of every standard lock next to a pyproject."""
        for rel in paths:
            if manifests.manifest_kind(rel) != "pyproject":
                continue
            folder = os.path.dirname(rel)
            for lock_rel in [p for p in paths if os.path.dirname(p) == folder and manifests.manifest_kind(p) in ("pylock", "uv.lock")]:
                yield from self._check(root, rel, lock_rel)

    def _check(self, root: Path, rel: str, lock_rel: str) -> Iterable[Finding]:
        from packaging.utils import canonicalize_name

        manifest = common.load(root, rel)
        text, problem = common.read_cached(root, lock_rel)
        if manifest is None or manifest.data is None or text is None:
            return
        lock = manifests.read_lock_text(text, lock_rel)
        if lock.manifest.data is None:
            return  # MLC200 reports it
        own = (manifest.data.get("project") or {}).get("name") if isinstance(manifest.data.get("project"), dict) else None
        own = canonicalize_name(own) if own else None
        extras = [g[9:] for g in {r.group for r in manifest.requirements} if g.startswith("optional:")]
        groups = [g[6:] for g in {r.group for r in manifest.requirements} if g.startswith("group:")]
        envs: list[dict[str, Any]] | None = None
        for entry in manifest.requirements:
            if entry.requirement is None or entry.name == own:
                continue
            group = entry.group
            if group not in ("dependencies",) and not group.startswith(("optional:", "group:")):
                continue
            req = entry.requirement
            locked = lock.packages.get(entry.name, [])
            where = f"{rel}:{entry.line}"
            if not locked:
                yield common.finding(self.code, entry, (
                    f"{req.name} is declared in {where} ({group}) but has no locked entry in {lock_rel}: "
                    f"the lock is stale; re-lock (uv lock / your pylock exporter)"))
                continue
            versions = [p.version for p in locked if p.version is not None]
            if versions and req.specifier and not any(req.specifier.contains(v, prereleases=True) for v in versions):
                yield common.finding(self.code, entry, (
                    f"{req.name} is locked at {', '.join(sorted(set(versions)))} in {lock_rel}, which no longer "
                    f"satisfies `{req.specifier}` declared in {where}: the lock is stale; re-lock"))
                continue
            if lock.declared is not None:
                recorded = lock.declared.get(entry.name) if not group.startswith("group:") else None
                if group.startswith("group:"):
                    specs = (lock.declared_groups or {}).get(group[6:], [])
                    recorded = [s for s in specs if _requirement_or_none(s) is not None
                                and canonicalize_name(_requirement_or_none(s).name) == entry.name] or None
                if recorded is None:
                    yield common.finding(self.code, entry, (
                        f"{req.name} ({group}) in {where} was not declared when {lock_rel} was made "
                        f"(uv recorded no such requirement for the project): re-run uv lock"))
                    continue
                want = req.marker
                if group.startswith("optional:"):
                    from packaging.markers import Marker

                    extra_marker = Marker(f'extra == "{group[9:]}"')
                    want = Marker(f"({want}) and {extra_marker}") if want is not None else extra_marker
                envs = envs or markers.environments(extras, groups)
                options = [r for r in map(_requirement_or_none, recorded) if r is not None]
                if not any(markers.differences(want, o.marker, envs) == (0, 0) for o in options):
                    yield common.finding(self.code, entry, (
                        f"{req.name}: the marker in {where} ({req.marker or 'none: every environment'}) differs "
                        f"from the one {lock_rel} was locked with ({', '.join(str(o.marker or 'none') for o in options)}); re-run uv lock"))
            else:
                want = req.marker
                extra_env = [group[9:]] if group.startswith("optional:") else []
                group_env = [group[6:]] if group.startswith("group:") else []
                envs_here = markers.environments(extra_env, group_env)
                if want is None and all(p.marker is None for p in locked):
                    continue
                from packaging.markers import InvalidMarker, Marker

                narrow = True
                for p in locked:
                    try:
                        lm = Marker(p.marker) if p.marker else None
                    except InvalidMarker:
                        narrow = False
                        break
                    relevant = [e for e in envs_here if (not extra_env or e["extras"]) and (not group_env or e["dependency_groups"])] or envs_here
                    if markers.differences(want, lm, relevant)[0] == 0:
                        narrow = False
                        break
                if narrow:
                    yield common.finding(self.code, entry, (
                        f"{req.name} is declared in {where} for {req.marker or 'every environment'}, but {lock_rel} "
                        f"installs it only when {' or '.join(str(p.marker) for p in locked)}; re-lock"))
        if lock.declared is not None:
            declared_names = {r.name for r in manifest.requirements
                              if r.group == "dependencies" or r.group.startswith("optional:")}
            for name in sorted(set(lock.declared) - declared_names - {own}):
                line = (lock.packages.get(lock.project or "") or [None])[0]
                yield Finding(self.code, (
                    f"{name} is recorded in {lock_rel} as a requirement of the project, but {rel} no "
                    f"longer declares it: the lock is stale; re-run uv lock"),
                    line.line if line else 1, 0, path=lock_rel)
