"""Reading what a project declares it depends on, from every manifest format.

Shared by the dependency rules (``mlcheck_lint.rules.deps``) and any rule that needs
the project's declared requirements (MLC308 reads the torch requirement). Nothing here
imports or runs project code, and nothing touches the network.

Formats: ``requirements*.txt`` / ``requirements/*.txt`` / ``constraints*.txt`` and their
``.in`` sources (pip's syntax, with ``-r``/``-c`` includes followed here, cycles and
missing files reported), ``pyproject.toml`` (PEP 621, PEP 735, build-system, Poetry),
``setup.cfg``, conda ``environment.yml`` pip sections, notebook ``%pip install`` lines
(:mod:`.other_formats`) and the locks ``pylock.toml`` and ``uv.lock`` (:mod:`.locks`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .locks import Lock, LockedPackage, read_lock_text
from .model import DeclaredRequirement, Include, IndexOption, Manifest, ManifestProblem
from .other_formats import read_environment_yml_text, read_setup_cfg_text
from .pyproject import read_pyproject_text
from .requirements_txt import read_requirements_text

__all__ = ["DeclaredRequirement", "Include", "IndexOption", "Lock", "LockedPackage", "Manifest",
           "ManifestProblem", "REQUIREMENTS_PATTERNS", "MANIFEST_PATTERNS", "LOCK_PATTERNS",
           "declared_requirements", "expand_includes", "is_lock_output", "is_manifest", "manifest_kind",
           "project_manifest_paths", "read_file", "read_manifest"]

#: Requirements-format files (pip syntax).
REQUIREMENTS_PATTERNS = ("requirements*.txt", "requirements*.in", "requirements/*.txt",
                         "requirements/*.in", "constraints*.txt", "constraints*.in")
#: Standard lock files.
LOCK_PATTERNS = ("pylock.toml", "pylock.*.toml", "uv.lock")
#: Every manifest the dependency rules read (engine ``text_files`` globs: a pattern
#: without ``/`` matches the file name at any depth).
MANIFEST_PATTERNS = REQUIREMENTS_PATTERNS + ("pyproject.toml", "setup.cfg", "environment.yml",
                                             "environment.yaml") + LOCK_PATTERNS

#: A file larger than this is not read (a requirements file of 100k lines is ~3 MB).
MAX_BYTES = 64 * 1024 * 1024


def manifest_kind(rel: str) -> str | None:
    """Return the kind of manifest a path names, or ``None``.

    Args:
        rel: A project-relative path with ``/`` separators.

    Returns:
        ``requirements``, ``pyproject``, ``setup.cfg``, ``conda``, ``pylock`` or
        ``uv.lock``.
    """
    import fnmatch

    parts = rel.rsplit("/", 2)
    name = parts[-1]
    parent = parts[-2] if len(parts) > 1 else ""
    if name == "pyproject.toml":
        return "pyproject"
    if name == "setup.cfg":
        return "setup.cfg"
    if name in ("environment.yml", "environment.yaml"):
        return "conda"
    if name == "uv.lock":
        return "uv.lock"
    if name == "pylock.toml" or fnmatch.fnmatchcase(name, "pylock.*.toml"):
        return "pylock"
    if name.endswith((".txt", ".in")) and (name.startswith(("requirements", "constraints")) or parent == "requirements"):
        return "requirements"
    return None


def is_manifest(rel: str) -> bool:
    """Say whether a path is a manifest the dependency rules read.

    Args:
        rel: A project-relative path.

    Returns:
        Whether :func:`manifest_kind` knows it.
    """
    return manifest_kind(rel) is not None


def read_manifest(rel: str, text: str) -> Manifest:
    """Parse one manifest's text by its kind (from the file name).

    Args:
        rel: The project-relative path.
        text: The file's text.

    Returns:
        The manifest (for a lock, its ``Manifest`` record; use :func:`read_lock_text`
        for the packages).

    Raises:
        ValueError: The name is not a manifest's.
    """
    kind = manifest_kind(rel)
    if kind == "requirements":
        return read_requirements_text(text, rel)
    if kind == "pyproject":
        return read_pyproject_text(text, rel)
    if kind == "setup.cfg":
        return read_setup_cfg_text(text, rel)
    if kind == "conda":
        return read_environment_yml_text(text, rel)
    if kind in ("pylock", "uv.lock"):
        return read_lock_text(text, rel).manifest
    raise ValueError(f"{rel}: not a manifest file name")


def read_file(root: Path, rel: str) -> tuple[str | None, ManifestProblem | None]:
    """Read a project file's text, refusing what the linter must not read.

    Args:
        root: The project root.
        rel: The path relative to it.

    Returns:
        ``(text, None)``, or ``(None, problem)`` when the file is missing, unreadable,
        binary, not UTF-8, too large, or a symlink that leads out of the project.
    """
    path = root / rel
    try:
        real = path.resolve()
        inside = real == root.resolve() or root.resolve() in real.parents
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop on 3.10-3.12
        return None, ManifestProblem(rel, 1, 0, f"cannot resolve the path: {exc}")
    if not inside:
        return None, ManifestProblem(rel, 1, 0, f"leads outside the project (to {real}), "
                                                "so it is not read; copy the file into the project")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            return None, ManifestProblem(rel, 1, 0, f"{size} bytes is larger than the {MAX_BYTES} bytes "
                                                    "a manifest may have; not read")
        data = path.read_bytes()
    except FileNotFoundError:
        return None, ManifestProblem(rel, 1, 0, "no such file")
    except OSError as exc:
        return None, ManifestProblem(rel, 1, 0, f"cannot read: {exc.strerror or exc}")
    if b"\x00" in data:
        return None, ManifestProblem(rel, 1, 0, "binary file (NUL byte); not a text manifest")
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return None, ManifestProblem(rel, line, 0, f"cannot decode as UTF-8: {exc.reason}")


def project_manifest_paths(root: Path) -> list[str]:
    """List the manifests at a project's root and in its ``requirements/`` folder.

    These are read by the project rules even when the run was given only some files
    (a pre-commit hook), because the project's declarations live there.

    Args:
        root: The project root.

    Returns:
        Project-relative paths, sorted.
    """
    found = []
    for folder in (root, root / "requirements"):
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        prefix = "" if folder == root else "requirements/"
        for name in names:
            rel = prefix + name
            if manifest_kind(rel) is not None and (folder / name).is_file():
                found.append(rel)
    return sorted(found)


@dataclasses.dataclass
class Expanded:
    """A requirements file with its ``-r`` / ``-c`` includes followed.

    Attributes:
        requirements: Its own requirements and those of every included file, in
            order; requirements from a ``-c`` file are marked ``constraint``.
        index_options: Index options of the file and its includes.
        problems: Include problems (cycle, missing file, outside the project) at the
            ``-r``/``-c`` line, and the parse problems of included files.
        files: Every file read, the top one first.
    """

    requirements: list[DeclaredRequirement]
    index_options: list[IndexOption]
    problems: list[ManifestProblem]
    files: list[str]


def expand_includes(root: Path, rel: str, cache: dict[str, Manifest] | None = None,
                    max_depth: int = 50) -> Expanded:
    """Read a requirements file and follow its includes, relative to each including file.

    Args:
        root: The project root.
        rel: The top file, project-relative.
        cache: Parsed manifests by path, shared across calls.
        max_depth: Deepest include chain followed.

    Returns:
        The expanded file. A cycle, a missing include or one outside the project is a
        problem, never an exception.
    """
    cache = {} if cache is None else cache
    out = Expanded([], [], [], [])

    def load(path: str) -> Manifest | ManifestProblem:
        if path not in cache:
            text, problem = read_file(root, path)
            if problem is not None:
                return problem
            cache[path] = read_requirements_text(text, path)
        return cache[path]

    def visit(path: str, stack: list[str], constraint: bool, top: bool) -> None:
        manifest = load(path)
        if isinstance(manifest, ManifestProblem):
            if top:
                out.problems.append(manifest)
            return
        out.files.append(path)
        if not top:
            out.problems.extend(manifest.problems)
        for req in manifest.requirements:
            out.requirements.append(dataclasses.replace(req, constraint=True) if constraint and not req.constraint else req)
        out.index_options.extend(manifest.index_options)
        for inc in manifest.includes:
            if "://" in inc.target:
                out.problems.append(ManifestProblem(path, inc.line, inc.col,
                                                    f"{inc.kind} {inc.target}: a remote include is not read (offline)"))
                continue
            target = os.path.normpath(os.path.join(os.path.dirname(path), inc.target)).replace(os.sep, "/")
            if target in stack or target == path:
                chain = " -> ".join(stack[stack.index(target):] + [path, target]) if target in stack else f"{path} -> {target}"
                out.problems.append(ManifestProblem(path, inc.line, inc.col, f"{inc.kind} {inc.target}: include cycle {chain}"))
                continue
            if target.startswith("../") or target == "..":
                out.problems.append(ManifestProblem(path, inc.line, inc.col,
                                                    f"{inc.kind} {inc.target}: leads outside the project; not read"))
                continue
            if len(stack) >= max_depth:
                out.problems.append(ManifestProblem(path, inc.line, inc.col, f"{inc.kind} {inc.target}: includes nested "
                                                                             f"deeper than {max_depth}; not followed"))
                continue
            sub = load(target)
            if isinstance(sub, ManifestProblem):
                out.problems.append(ManifestProblem(path, inc.line, inc.col, f"{inc.kind} {inc.target}: {sub.reason}"))
                continue
            visit(target, stack + [path], constraint or inc.kind == "-c", False)

    visit(rel, [], False, True)
    return out


def is_lock_output(root: Path, rel: str, cache: dict[str, Manifest] | None = None) -> bool:
    """Say whether a requirements ``.txt`` is a pip-tools lock rather than a declaration.

    Args:
        root: The project root.
        rel: The file, project-relative.
        cache: Parsed manifests by path (filled in).

    Returns:
        ``True`` when it carries pip-compile's (or ``uv pip compile``'s) header or an
        ``X.in`` sits next to it.
    """
    if not rel.endswith(".txt"):
        return False
    if (Path(root) / (rel[:-4] + ".in")).is_file():
        return True
    cache = {} if cache is None else cache
    if rel not in cache:
        text, problem = read_file(Path(root), rel)
        if problem is not None:
            return False
        cache[rel] = read_requirements_text(text, rel)
    return cache[rel].header is not None


def declared_requirements(root: Path) -> list[DeclaredRequirement]:
    """Return every requirement a project declares, in its root-level manifests.

    Reads ``pyproject.toml``, ``setup.cfg``, ``environment.yml`` and the requirements
    files at the root and in ``requirements/`` (with their includes). Locks
    (``pylock.toml``, ``uv.lock``, pip-compile outputs) are not declarations and are
    left out: their sources are. Unreadable files and bad lines are skipped here;
    MLC200 reports them.

    Args:
        root: The project root.

    Returns:
        The requirements, each with ``.requirement`` (a ``packaging`` Requirement or
        ``None`` for a local path), ``.path``, ``.line`` and ``.group``.
    """
    root = Path(root)
    out: list[DeclaredRequirement] = []
    seen: set[tuple[str, int, int]] = set()
    cache: dict[str, Manifest] = {}
    for rel in project_manifest_paths(root):
        kind = manifest_kind(rel)
        if kind in ("pylock", "uv.lock"):
            continue
        if kind == "requirements":
            if is_lock_output(root, rel, cache):
                continue  # a pip-compile lock: its source (.in) is the declaration
            reqs = expand_includes(root, rel, cache).requirements
        else:
            text, problem = read_file(root, rel)
            if problem is not None:
                continue
            reqs = read_manifest(rel, text).requirements
        for req in reqs:
            key = (req.path, req.line, req.col)
            if key not in seen:
                seen.add(key)
                out.append(req)
    return out
