"""What the dependency rules share: reading the project's manifests once, fixes that pin.

A project rule reads manifests from disk in the main process (``check_project``), so
it sees the project's declarations even when a pre-commit hook lints only some files.
The files read are the manifests the engine discovered (honouring excludes) plus those
at the project root and in ``requirements/``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable

from ... import manifests
from ...api import Edit, Finding, Fix, ProjectRule
from ...manifests import DeclaredRequirement, Manifest

#: Names of extras and dependency groups that hold test / development tools only.
TEST_GROUP = re.compile(r"(^|[-_:./])(test|tests|testing|dev|develop|development|lint|linting|"
                        r"typing|types|mypy|ci|qa|check|checks|bench|benchmark|benchmarks|docs|doc)($|[-_.])")

_READ: dict[tuple[str, str, int, int], tuple[str | None, Any]] = {}


def is_test_group(group: str) -> bool:
    """Say whether a requirement group is for tests or development only.

    Args:
        group: A :attr:`DeclaredRequirement.group` (``optional:test``, ``group:dev``).

    Returns:
        ``True`` for test, dev, lint, typing, docs and benchmark extras or groups.
    """
    name = group.split(":", 1)[-1] if group.startswith(("optional:", "group:", "poetry:", "setup.cfg:extra:")) else group
    if group.startswith("setup.cfg:extra:"):
        name = group[len("setup.cfg:extra:"):]
    return bool(TEST_GROUP.search(name.lower())) or group in ("setup.cfg:tests_require",)


class ManifestRule(ProjectRule):
    """A project rule over the manifests the engine discovers (text files).

    Its per-file ``collect`` only records that the engine gave it a manifest, so
    that :func:`manifest_paths` lists it in ``check_project``.
    """

    file_kinds = ("text",)

    def collect(self, ctx: Any) -> Any:
        """Record that this manifest was discovered.

        Args:
            ctx: The file's context.

        Returns:
            ``True``.
        """
        return True

    def check_project(self, project: Any) -> Iterable[Finding]:
        """Yield the rule's findings over the project's manifests.

        Args:
            project: The project context.

        Yields:
            The findings.
        """
        yield from self._manifest_findings(project, Path(project.root), manifest_paths(project, self.code))

    def _manifest_findings(self, project: Any, root: Path, paths: list[str]) -> Iterable[Finding]:
        """Yield the findings over ``paths``, the manifests of :func:`manifest_paths` (override)."""
        return ()


def manifest_paths(project: Any, code: str) -> list[str]:
    """Return the manifests a project rule reads: discovered ones plus the root's.

    Args:
        project: The engine's ProjectContext.
        code: The rule's code (its facts list the text files the engine gave it).

    Returns:
        Project-relative paths, sorted.
    """
    found = set(manifests.project_manifest_paths(Path(project.root)))
    for rel in project.facts.get(code, {}):
        if manifests.is_manifest(rel):
            found.add(rel)
    return sorted(found)


def read_cached(root: Path, rel: str) -> tuple[str | None, Any]:
    """Read a manifest's text once per run (keyed by size and modification time).

    Args:
        root: The project root.
        rel: The project-relative path.

    Returns:
        ``(text, None)`` or ``(None, ManifestProblem)``.
    """
    try:
        st = os.stat(root / rel)
        key = (str(root), rel, st.st_mtime_ns, st.st_size)
    except OSError:
        return manifests.read_file(root, rel)
    if key not in _READ:
        if len(_READ) > 512:
            _READ.clear()
        _READ[key] = manifests.read_file(root, rel)
    return _READ[key]


_PARSED: dict[tuple[str, str], tuple[Any, Manifest]] = {}


def _stat_key(root: Path, rel: str) -> Any:
    try:
        st = os.stat(root / rel)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class ParsedManifests:
    """Parsed requirements files of one project, shared by every project rule of a run.

    A mapping ``path -> Manifest`` as :func:`mlcheck_lint.manifests.expand_includes`
    wants its ``cache``; an entry is dropped when the file changes on disk.

    Args:
        root: The project root.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __contains__(self, rel: object) -> bool:
        hit = _PARSED.get((str(self.root), str(rel)))
        return hit is not None and hit[0] == _stat_key(self.root, str(rel))

    def __getitem__(self, rel: str) -> Manifest:
        return _PARSED[(str(self.root), rel)][1]

    def __setitem__(self, rel: str, manifest: Manifest) -> None:
        if len(_PARSED) > 256:
            _PARSED.clear()
        _PARSED[(str(self.root), rel)] = (_stat_key(self.root, rel), manifest)


def load(root: Path, rel: str) -> Manifest | None:
    """Parse one manifest of the project once per run (``None`` when unreadable).

    Args:
        root: The project root.
        rel: The project-relative path.

    Returns:
        The manifest.
    """
    cache = ParsedManifests(root)
    if rel in cache:
        return cache[rel]
    text, problem = read_cached(root, rel)
    if problem is not None or text is None:
        return None
    manifest = manifests.read_manifest(rel, text)
    cache[rel] = manifest
    return manifest


def expand(root: Path, rel: str) -> Any:
    """Return :func:`mlcheck_lint.manifests.expand_includes` with the shared parse cache.

    Args:
        root: The project root.
        rel: A requirements file, project-relative.

    Returns:
        The expanded file.
    """
    return manifests.expand_includes(Path(root), rel, ParsedManifests(root))  # type: ignore[arg-type]


def installed_version(name: str) -> str | None:
    """Return the version of a distribution installed in the running environment.

    Args:
        name: The distribution name (any spelling).

    Returns:
        The version, or ``None`` when it is not installed.
    """
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
    except Exception:  # a broken installation's metadata: treat as not installed
        return None


def requirement_text(req: Any, specifier: str) -> str:
    """Return ``name[extras]<specifier>; marker`` for a packaging Requirement.

    Args:
        req: The requirement.
        specifier: The new specifier text (``==1.2.3``).

    Returns:
        The requirement string.
    """
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    marker = f"; {req.marker}" if req.marker else ""
    return f"{req.name}{extras}{specifier}{marker}"


def pin_or_reason(entry: DeclaredRequirement, operator: str = "==") -> tuple[str | None, str]:
    """Choose the version a fix pins to: the installed one, if it fits.

    Args:
        entry: The requirement to pin.
        operator: ``==`` (pin) or ``>=`` (add a lower bound).

    Returns:
        ``(new requirement text, "")`` or ``(None, why no fix is offered)``.
    """
    req = entry.requirement
    version = installed_version(req.name)
    if version is None:
        return None, (f"no fix offered: {req.name} is not installed in the environment running "
                      f"mlcheck-lint ({sys.prefix}), so there is no version to pin to")
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        return None, (f"no fix offered: the installed {req.name} {version} does not satisfy "
                      f"`{req.specifier}`")
    if operator == ">=":
        spec = ",".join([f">={version}"] + [str(s) for s in req.specifier if s.operator in ("<", "<=", "!=")])
    else:
        spec = f"=={version}"
    return requirement_text(req, spec), f"{req.name} {version} is installed here"


def text_edit(entry: DeclaredRequirement, new_text: str, kind: str, literal: str = "") -> Edit:
    """Return the edit replacing a requirement's text in its manifest.

    Args:
        entry: The requirement (its span is the literal, quotes included, in TOML).
        new_text: The new requirement string.
        kind: The manifest kind; for ``pyproject`` the new value is written as a TOML
            string by tomlkit.
        literal: The TOML literal being replaced; a single-quoted one stays
            single-quoted when the new value allows it.

    Returns:
        The edit.
    """
    if kind == "pyproject":
        import tomlkit

        single = literal.startswith("'") and "'" not in new_text and "\n" not in new_text
        new_text = tomlkit.string(new_text, literal=single).as_string()
    return Edit(entry.line, entry.col, entry.end_line, entry.end_col, new_text)


def finding(code: str, entry: Any, message: str, fix: Fix | None = None) -> Finding:
    """Return a finding at a manifest record (anything with path, line and col).

    Args:
        code: The rule code.
        entry: A DeclaredRequirement, Include, IndexOption or ManifestProblem.
        message: What is wrong.
        fix: An optional fix.

    Returns:
        The finding.
    """
    end_col = getattr(entry, "end_col", None)
    end_line = getattr(entry, "end_line", None) or (entry.line if end_col is not None else None)
    return Finding(code=code, message=message, line=entry.line, col=entry.col, end_line=end_line,
                   end_col=end_col, fix=fix, path=getattr(entry, "path", ""))


def project_excludes(root: Path) -> tuple[str, ...]:
    """Return the exclude patterns of the project's ``[tool.mlcheck.lint]``.

    Args:
        root: The project root.

    Returns:
        The default excludes, replaced by ``exclude`` and extended by ``extend-exclude``.
    """
    from ...config import DEFAULT_EXCLUDE

    excludes = tuple(DEFAULT_EXCLUDE) + (".mlcheck-lint-cache",)
    text, problem = read_cached(root, "pyproject.toml")
    if text is None:
        return excludes
    from ...manifests.pyproject import load_toml_text

    data, _ = load_toml_text(text)
    table: Any = data
    for key in ("tool", "mlcheck", "lint"):
        table = table.get(key) if isinstance(table, dict) else None
    if isinstance(table, dict):  # a bad value is the configuration's error, not ours
        if isinstance(table.get("exclude"), list):
            excludes = tuple(p for p in table["exclude"] if isinstance(p, str)) + (".mlcheck-lint-cache",)
        if isinstance(table.get("extend-exclude"), list):
            excludes += tuple(p for p in table["extend-exclude"] if isinstance(p, str))
    return excludes


def walk(root: Path, suffix: str) -> Iterable[str]:
    """Yield the project's files ending in ``suffix``, honouring the excludes.

    Args:
        root: The project root.
        suffix: ``.ipynb`` for instance.

    Yields:
        Project-relative paths, sorted within each folder.
    """
    from ...config import path_matches

    excludes = project_excludes(root)
    for folder, dirs, files in os.walk(root):
        rel_folder = os.path.relpath(folder, root).replace(os.sep, "/")
        prefix = "" if rel_folder == "." else rel_folder + "/"
        dirs[:] = sorted(d for d in dirs if not any(path_matches(p, prefix + d, d) for p in excludes))
        for name in sorted(files):
            rel = prefix + name
            if name.endswith(suffix) and not any(path_matches(p, rel, name) for p in excludes):
                yield rel
