"""Pinning: MLC201 (requirements and lock files), MLC202 (pyproject policy), MLC208 (notebooks).

Fixes pin to the version installed in the environment running the linter
(``importlib.metadata``): the one the code was last run against. Where a package is not
installed, or the installed version does not satisfy the current specifier, no fix is
offered and the finding says why.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

from ... import manifests
from ...api import Finding, Fix, ProjectRule, Rule, register
from ...manifests import DeclaredRequirement
from . import common
from .syntax import parsed

_VCS = ("git+", "hg+", "svn+", "bzr+")
_COMMIT = re.compile(r"@([0-9a-fA-F]{40}|[0-9a-fA-F]{64})(?:[#&]|$)")
_LOCK_FILES = ("uv.lock", "poetry.lock", "pdm.lock", "Pipfile.lock", "pylock.toml")


def unpinned_reason(entry: DeclaredRequirement) -> str | None:
    """Say why a requirement does not pin one immutable artifact, or ``None`` if it does.

    Args:
        entry: A requirement from a requirements, lock or notebook line.

    Returns:
        The reason, or ``None`` for ``==``/``===`` pins, VCS URLs at a full commit hash,
        archive URLs with a hash, and local paths (not a published artifact).
    """
    req = entry.requirement
    if req is None:
        return None  # a local path or nameless URL: nothing on an index to pin
    url = req.url
    if url:
        if url.startswith("file:"):
            return None
        if url.startswith(_VCS):
            if _COMMIT.search(url.split("#", 1)[0] + ("#" if "#" in url else "")) or _COMMIT.search(url):
                return None
            ref = re.search(r"@([^@#/]+)(?:#|$)", url.split("://", 1)[-1])
            at = f"`@{ref.group(1)}` is a branch or tag that can move" if ref else "no commit is given"
            return (f"the VCS reference of {req.name} is not pinned to a commit: {at}; "
                    f"use `@<full 40-character commit hash>`")
        if "sha256=" in url or "sha384=" in url or "sha512=" in url or entry.hashes:
            return None
        return (f"the URL of {req.name} has no hash, so its content can change; add "
                f"`#sha256=<digest>` or `--hash=sha256:<digest>`")
    if entry.pinned_version is not None:
        return None
    spec = str(req.specifier) or "any version"
    return f"`{entry.text}` allows {spec}, not one version: the next install may resolve differently"


def _pin_fix(entry: DeclaredRequirement, kind: str, operator: str, safety: str, literal: str = "") -> tuple[Fix | None, str]:
    if entry.requirement is None or entry.requirement.url:
        return None, ""
    if entry.end_line == entry.line and entry.end_col <= entry.col:
        return None, "no fix offered: the requirement's text could not be located"
    new_text, why = common.pin_or_reason(entry, operator)
    if new_text is None:
        return None, why
    verb = "pin" if operator == "==" else "add the lower bound"
    return Fix(safety, f"{verb} `{new_text}` ({why})", (common.text_edit(entry, new_text, kind, literal),)), why


@register
class UnpinnedRequirement(Rule):
    """A requirement in a requirements or lock ``.txt`` file not pinned to one version.

    What it does:
        Flags entries of ``requirements*.txt``, ``requirements/*.txt`` and
        ``constraints*.txt`` (not the ``.in`` sources) that are not ``==``/``===`` pins,
        VCS URLs not at a full commit hash (``git+...@main``) and archive URLs without
        a hash. Local paths and ``-e .`` are not published artifacts and are skipped.

    Why is this bad?
        ``torch>=2`` resolves to a different build next month. A ``.txt`` file is what
        CI and deployments install; it should install the same thing every time.

    Example:
        ```text
        numpy>=1.26
        mylib @ git+https://github.com/org/mylib@main
        ```

    Use instead:
        ```text
        numpy==1.26.4
        mylib @ git+https://github.com/org/mylib@3f2a9c0d4b1e8f7a6c5d4e3f2a1b0c9d8e7f6a5b
        ```

    Fix safety:
        Safe: pins to the version installed in the environment running mlcheck-lint,
        when that version satisfies the current specifier. No fix otherwise.
    """

    code = "MLC201"
    name = "requirement-not-pinned"
    summary = "a requirements/lock .txt entry is not pinned to one version or commit"
    fix_safety = "safe"
    file_kinds = ("text",)
    text_files = ("requirements*.txt", "requirements/*.txt", "constraints*.txt")

    def check(self, ctx: Any) -> Iterable[Finding]:
        """Yield one finding per unpinned entry of one file.

        Args:
            ctx: The file's context.

        Yields:
            The findings.
        """
        manifest = parsed(ctx)
        for entry in manifest.requirements:
            reason = unpinned_reason(entry)
            if reason is None:
                continue
            fix, why = _pin_fix(entry, "requirements", "==", "safe")
            message = f"{entry.requirement.name} is not pinned: {reason}"
            if fix is None and why:
                message += f"; {why}"
            yield common.finding(self.code, entry, message, fix)


def project_policy(data: dict[str, Any], folder: Path, configured: str) -> tuple[str, str]:
    """Decide whether a pyproject is judged as a library or an application.

    Args:
        data: The parsed ``pyproject.toml``.
        folder: Its folder.
        configured: The ``dependency-policy`` option.

    Returns:
        ``(policy, why)``.
    """
    if configured != "auto":
        return configured, f"dependency-policy = \"{configured}\""
    tool = data.get("tool") if isinstance(data.get("tool"), dict) else {}
    if isinstance(tool.get("uv"), dict) and tool["uv"].get("package") is False:
        return "application", "[tool.uv] package = false: the project builds no distribution"
    if isinstance(tool.get("poetry"), dict) and tool["poetry"].get("package-mode") is False:
        return "application", "[tool.poetry] package-mode = false"
    if isinstance(data.get("build-system"), dict):
        return "library", "it builds a distribution ([build-system])"
    if (folder / "setup.py").is_file() or (folder / "setup.cfg").is_file():
        return "library", "it builds a distribution (setup.py / setup.cfg)"
    return "application", "it builds no distribution (no [build-system])"


def has_lock(folder: Path) -> str | None:
    """Return the name of a lock file next to a pyproject, or ``None``.

    Args:
        folder: The pyproject's folder.

    Returns:
        ``uv.lock``, ``pylock.toml``, ``poetry.lock``, ... or a pip-compile ``.txt``.
    """
    for name in _LOCK_FILES:
        if (folder / name).is_file():
            return name
    for candidate in sorted(folder.glob("pylock.*.toml")) + sorted(folder.glob("requirements*.txt")) \
            + sorted(folder.glob("requirements/*.txt")):
        if candidate.name.startswith("pylock."):
            return candidate.name
        try:
            with open(candidate, encoding="utf-8", errors="replace") as fh:
                head = fh.read(600)
        except OSError:
            continue
        if "autogenerated by" in head and ("pip-compile" in head or "uv" in head):
            return candidate.relative_to(folder).as_posix()
    return None


@register
class DependencyPolicy(common.ManifestRule):
    """A ``pyproject.toml`` dependency that breaks the project's pinning policy.

    What it does:
        With ``dependency-policy = "library"`` (the default for a project that builds
        a distribution), every requirement in ``[project] dependencies`` and
        ``optional-dependencies`` needs a lower bound and no ``==`` pin. With
        ``"application"``, each needs an exact pin, unless a lock file (``uv.lock``,
        ``pylock.toml``, ``poetry.lock``, a pip-compile output) sits next to it.

    Why is this bad?
        A library's published ``==`` pin makes it impossible to install next to
        anything that needs another release ("dependency hell"); a requirement with no
        lower bound lets an old, incompatible release satisfy it. An application
        without pins or a lock installs something different each time.

    Example:
        ```toml
        [project]
        dependencies = ["torch==2.3.1", "numpy"]
        ```

    Use instead:
        ```toml
        [project]
        dependencies = ["torch>=2.3", "numpy>=1.26"]
        ```

    Fix safety:
        Adding a lower bound (library) or a pin (application) at the installed version
        is safe; relaxing ``==X`` to ``>=X`` changes what may be installed and is
        unsafe. Edits rewrite only the requirement's string (written by tomlkit), so
        comments and formatting around it stay byte for byte.
    """

    code = "MLC202"
    name = "dependency-policy"
    summary = "a pyproject.toml requirement breaks the library/application pinning policy"
    fix_safety = "safe"
    text_files = ("pyproject.toml",)

    def check(self, ctx: Any) -> Iterable[Finding]:
        """Under ``--fix``, yield the same findings as the project phase, with their fixes.

        The engine applies only edits computed from the file itself, never those of a
        project phase, so the fixes come from here. Outside ``--fix`` this yields
        nothing: the project phase reports (it knows the project root, where a lock
        file or ``setup.py`` may sit).

        Args:
            ctx: The file's context.

        Yields:
            The findings with fixes.
        """
        if not getattr(ctx, "fixing", False):
            return
        root = getattr(ctx, "root", None)
        if root is None and (Path.cwd() / ctx.path).is_file():
            root = Path.cwd()  # an engine that does not hand rules the root: the usual cwd
        folder = (Path(root) / ctx.path).parent if root is not None else None
        yield from self.findings_for(ctx.path, ctx.source, folder, ctx.option("dependency-policy"))

    def _manifest_findings(self, project: Any, root: Path, paths: list[str]) -> Iterable[Finding]:
        """Yield the policy findings of every discovered ``pyproject.toml``."""
        configured = project.option("dependency-policy")
        for rel in paths:
            if manifests.manifest_kind(rel) != "pyproject":
                continue
            text, problem = common.read_cached(root, rel)
            if text is not None:
                yield from self.findings_for(rel, text, (root / rel).parent, configured)

    def findings_for(self, rel: str, text: str, folder: Path | None, configured: str) -> Iterable[Finding]:
        """Judge one ``pyproject.toml`` against the policy.

        Args:
            rel: Its project-relative path.
            text: Its text.
            folder: Its folder on disk, or ``None`` when unknown (then an application
                is not judged: whether a lock sits next to it is unknown).
            configured: The ``dependency-policy`` option.

        Yields:
            The findings, with fixes.
        """
        from packaging.utils import canonicalize_name

        manifest = manifests.read_manifest(rel, text)
        if manifest.data is None:
            return
        policy, why = project_policy(manifest.data, folder or Path("/nonexistent"), configured)
        if policy == "application" and (folder is None or has_lock(folder)):
            return
        project_table = manifest.data.get("project")
        own = project_table.get("name") if isinstance(project_table, dict) else None
        lines = (text[1:] if text.startswith("\ufeff") else text).splitlines()
        for entry in manifest.requirements:
            if not (entry.group == "dependencies" or entry.group.startswith(("optional:", "poetry:main"))):
                continue
            req = entry.requirement
            if req is None or (own and canonicalize_name(req.name) == canonicalize_name(own)):
                continue  # a local path, or a self-reference that combines extras
            literal = lines[entry.line - 1][entry.col:entry.col + 1] if entry.line <= len(lines) else ""
            kind = "poetry" if entry.group.startswith("poetry:") else "pyproject"
            yield from self._judge(entry, policy, why, kind, literal, rel)

    def _judge(self, entry: DeclaredRequirement, policy: str, why: str, kind: str,
               literal: str, rel: str) -> Iterable[Finding]:
        req = entry.requirement
        where = "[project] dependencies" if entry.group == "dependencies" else (
            f"extra `{entry.group[9:]}`" if entry.group.startswith("optional:") else entry.group)
        can_fix = kind == "pyproject"
        if policy == "library":
            if req.url:
                yield common.finding(self.code, entry, (
                    f"`{entry.text}` in {where} is a direct URL reference: PyPI refuses to publish "
                    f"it and it pins one artifact; depend on a released version (policy: library, {why})"))
                return
            pins = [s for s in req.specifier if s.operator in ("==", "===") and not s.version.endswith(".*")]
            lower = [s for s in req.specifier if s.operator in (">=", ">", "~=", "==", "===")]
            if pins:
                fix = None
                if can_fix and len(list(req.specifier)) == 1:
                    new = common.requirement_text(req, f">={pins[0].version}")
                    fix = Fix("unsafe", f"relax to `{new}`", (common.text_edit(entry, new, "pyproject", literal),))
                yield common.finding(self.code, entry, (
                    f"`{entry.text}` in {where} pins one version: a library's published requirement "
                    f"should accept a range (e.g. `>={pins[0].version}`) so it installs next to other "
                    f"packages (policy: library, {why})"), fix)
            elif not lower:
                fix, reason = _pin_fix(entry, "pyproject", ">=", "safe", literal) if can_fix else (None, "")
                message = (f"`{entry.text}` in {where} has no lower bound: any old release satisfies it "
                           f"(policy: library, {why})")
                yield common.finding(self.code, entry, message + (f"; {reason}" if fix is None and reason else ""), fix)
            return
        reason = unpinned_reason(entry)
        if reason is None:
            return
        fix, why_fix = _pin_fix(entry, "pyproject", "==", "safe", literal) if can_fix else (None, "")
        message = (f"{req.name} in {where} is not pinned and no lock file sits next to {rel}: {reason} "
                   f"(policy: application, {why}); pin it or commit a lock (uv lock, pip-compile)")
        yield common.finding(self.code, entry, message + (f"; {why_fix}" if fix is None and why_fix else ""), fix)


@register
class UnpinnedNotebookInstall(ProjectRule):
    """An unpinned ``!pip install`` / ``%pip install`` in a notebook.

    What it does:
        Reads the code cells of every notebook in the project (the linter's excludes
        apply) and flags ``pip install`` arguments that are not ``==`` pins, VCS URLs
        at a commit, or hashed URLs.

    Why is this bad?
        A notebook that installs ``transformers`` runs against whatever was released
        this morning: the results it shows cannot be reproduced next month.

    Example:
        ```python
        %pip install torch transformers>=4
        ```

    Use instead:
        ```python
        %pip install torch==2.3.1 transformers==4.41.2
        ```

    """

    code = "MLC208"
    name = "notebook-pip-install-unpinned"
    summary = "an unpinned !pip / %pip install in a notebook"
    file_kinds = ()

    def check_project(self, project: Any) -> Iterable[Finding]:
        """Yield one finding per unpinned requirement of a notebook install line.

        Args:
            project: The project context.

        Yields:
            The findings.
        """
        from ...manifests.other_formats import notebook_requirements, pip_install_lines
        from ...notebooks import cell_text

        root = Path(project.root)
        for rel in common.walk(root, ".ipynb"):
            text, problem = common.read_cached(root, rel)
            if text is None:
                continue
            try:
                notebook = json.loads(text)
                cells = notebook.get("cells", [])
            except (ValueError, AttributeError, RecursionError):
                continue  # the engine reports an invalid notebook (MLC000)
            for number, cell in enumerate(cells if isinstance(cells, list) else [], start=1):
                if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                    continue
                try:
                    source = cell_text(cell)
                except ValueError:
                    continue  # a source that is not text: the engine reports the notebook (MLC000)
                if "install" not in source:
                    continue
                for line, _base, words in pip_install_lines(source):
                    for col, word, req, error in notebook_requirements(words):
                        if error is not None or req is None:
                            continue
                        entry = DeclaredRequirement(req, rel, line, col, line, col + len(word), "notebook", word)
                        reason = unpinned_reason(entry)
                        if reason is None:
                            continue
                        version = common.installed_version(req.name) if not req.url else None
                        hint = f" (`{req.name}=={version}` is installed here)" if version else ""
                        message = f"cell {number}: `pip install {word}` is not pinned: {reason}{hint}"
                        yield Finding(self.code, message, line, col, line, col + len(word), None, rel, number)
