"""Imports against declarations: MLC205 (undeclared import), MLC206 (unused declaration).

Each Python file's absolute imports are recorded per file (cached with the file), with
whether they are guarded (``try``/``except ImportError``, ``contextlib.suppress``,
``if TYPE_CHECKING``). The project phase maps import names to distributions with the
shipped map (``data/module_map.toml``), the running environment's
``importlib.metadata.packages_distributions()`` and the ``dependency-module-map``
option, then compares them with what the manifests declare.
"""

from __future__ import annotations

import ast
import functools
import os
import sys
from pathlib import Path
from typing import Any, Iterable

from ... import manifests
from ...api import Finding, ProjectRule, register
from . import common

MAP_PATH = Path(__file__).parent / "data" / "module_map.toml"
_GUARD_EXCEPTIONS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
#: Modules removed from the standard library in 3.12 / 3.13 (still stdlib for projects
#: that support older Pythons) and added in 3.11 (tomllib), whatever runs the linter.
_STDLIB_EXTRA = {"distutils", "imp", "asynchat", "asyncore", "smtpd", "aifc", "audioop", "cgi", "cgitb",
                 "chunk", "crypt", "imghdr", "mailcap", "msilib", "nis", "nntplib", "ossaudiodev", "pipes",
                 "sndhdr", "spwd", "sunau", "telnetlib", "uu", "xdrlib", "lib2to3", "tomllib", "__future__",
                 "_typeshed", "_dummy_thread", "dummy_threading", "_thread"}
#: Distributions that are used without being imported: build tools, CLIs, plugins.
_NOT_IMPORTED = {"setuptools", "wheel", "pip", "build", "twine", "pip-tools", "uv", "pre-commit", "tox", "nox",
                 "black", "ruff", "flake8", "mypy", "pylint", "isort", "coverage", "pytest-cov", "pytest-xdist",
                 "pytest-randomly", "pytest-timeout", "pytest-mock", "pytest-benchmark", "hatchling", "hatch",
                 "poetry-core", "flit-core", "setuptools-scm", "cython", "pybind11", "ninja", "cmake",
                 "jupyter", "jupyterlab", "notebook", "ipykernel", "ipywidgets", "nbconvert", "gunicorn",
                 "uvicorn", "sphinx", "mkdocs", "mkdocs-material", "triton", "tensorboard", "pyright"}


def stdlib_names() -> frozenset[str]:
    """Return the top-level names of the standard library.

    Returns:
        ``sys.stdlib_module_names`` (Python 3.10+) plus modules removed since 3.12; on
        an interpreter without it, the names found in the standard library folder.
    """
    names = getattr(sys, "stdlib_module_names", None)
    if names is None:  # pragma: no cover - not reachable on the supported Pythons
        import sysconfig

        folder = sysconfig.get_paths()["stdlib"]
        names = {n[:-3] if n.endswith(".py") else n for n in os.listdir(folder)} | set(sys.builtin_module_names)
    return frozenset(names) | _STDLIB_EXTRA


def _guards(handlers: list[ast.ExceptHandler]) -> bool:
    for handler in handlers:
        kind = handler.type
        if kind is None:
            return True
        names = kind.elts if isinstance(kind, ast.Tuple) else [kind]
        for name in names:
            ident = name.id if isinstance(name, ast.Name) else name.attr if isinstance(name, ast.Attribute) else ""
            if ident in _GUARD_EXCEPTIONS:
                return True
    return False


def _is_guard_test(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` and availability checks (``if is_torch_available():``,
    ``if find_spec("x")``, ``and``-ed together): the import under them is optional."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return any(_is_guard_test(v) for v in test.values)
    if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
            (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
        return True
    if isinstance(test, ast.Call):
        func = test.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        # The availability-check idiom of the Hugging Face and Lightning code bases.
        return (name.startswith("is_") and name.endswith("_available")) or name == "find_spec"
    return False


def _suppresses_import_error(item: ast.withitem) -> bool:
    call = item.context_expr
    if not isinstance(call, ast.Call):
        return False
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name == "suppress" and any(isinstance(a, (ast.Name, ast.Attribute)) and
                                      (getattr(a, "id", None) or getattr(a, "attr", None)) in _GUARD_EXCEPTIONS
                                      for a in call.args)


def file_imports(tree: ast.AST) -> list[list[Any]]:
    """List a module's absolute imports, walking statements only (imports are statements).

    Args:
        tree: The file's ``ast.Module``.

    Returns:
        ``[[dotted module, line, col, guarded], ...]``; ``guarded`` is 1 inside a
        ``try`` that catches ImportError, a ``suppress(ImportError)`` block, an
        ``if TYPE_CHECKING`` block or an availability check (``if
        is_torch_available():``), else 0. Relative imports are left out.
    """
    out: list[list[Any]] = []
    stack: list[tuple[list[ast.stmt], int]] = [(getattr(tree, "body", []), 0)]
    while stack:
        body, guarded = stack.pop()
        for node in body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    out.append([alias.name, node.lineno, node.col_offset, guarded])
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module:
                    out.append([node.module, node.lineno, node.col_offset, guarded])
            elif isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
                inner = 1 if _guards(node.handlers) else guarded
                stack.append((node.body, inner))
                stack.extend((h.body, guarded) for h in node.handlers)
                stack.append((node.orelse, inner))
                stack.append((node.finalbody, guarded))
            elif isinstance(node, ast.If):
                stack.append((node.body, 1 if _is_guard_test(node.test) else guarded))
                stack.append((node.orelse, guarded))
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                inner = 1 if any(_suppresses_import_error(i) for i in node.items) else guarded
                stack.append((node.body, inner))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                stack.append((node.body, guarded))
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
                stack.append((node.body, guarded))
                stack.append((node.orelse, guarded))
            elif type(node).__name__ == "Match":
                stack.extend((case.body, guarded) for case in node.cases)
    out.sort(key=lambda item: (item[1], item[2]))
    return out


def _collect(ctx: Any) -> Any:
    tree = getattr(ctx, "tree", None)
    if tree is None:
        tree = ast.parse(ctx.source)  # an engine without the ast tier
    return file_imports(tree)


@functools.lru_cache(maxsize=1)
def shipped_map() -> dict[str, tuple[str, ...]]:
    """Return the shipped import-name -> distributions map.

    Returns:
        ``{module: (canonical distribution names)}``.
    """
    from packaging.utils import canonicalize_name

    from ...manifests.pyproject import load_toml_text

    data, error = load_toml_text(MAP_PATH.read_text(encoding="utf-8"))
    if data is None:
        raise ValueError(f"{MAP_PATH}: not valid TOML: {error}")
    return {module: tuple(canonicalize_name(d) for d in dists) for module, dists in data["modules"].items()}


@functools.lru_cache(maxsize=1)
def environment_map() -> dict[str, tuple[str, ...]]:
    """Return ``packages_distributions()`` of the running environment, canonicalised.

    Returns:
        ``{top-level module: (canonical distribution names)}`` (empty if unavailable).
    """
    from packaging.utils import canonicalize_name

    try:
        from importlib.metadata import packages_distributions
    except ImportError:  # pragma: no cover - Python 3.10+ has it
        return {}
    try:
        raw = packages_distributions()
    except Exception:
        return {}
    return {module: tuple(canonicalize_name(d) for d in dists) for module, dists in raw.items()}


def module_map(extra: Iterable[str] = (), environment: bool = True) -> dict[str, tuple[str, ...]]:
    """Return the effective import-name map: environment, shipped data, then options.

    Args:
        extra: ``module=distribution`` pairs from ``dependency-module-map``.
        environment: Include the running environment's ``packages_distributions()``.
            Reading it scans every installed distribution (about a third of a warm
            run's time on timm), and it only ever adds candidates, so a rule may first
            try without it and read it only for an import nothing else covers.

    Returns:
        ``{module or dotted prefix: (canonical distribution names)}``.
    """
    from packaging.utils import canonicalize_name

    out = dict(environment_map()) if environment else {}
    for module, dists in shipped_map().items():
        out[module] = tuple(dict.fromkeys(dists + out.get(module, ())))
    for pair in extra:
        module, _, dist = pair.partition("=")
        if module.strip() and dist.strip():
            out[module.strip()] = (canonicalize_name(dist.strip()),) + out.get(module.strip(), ())
    return out


def distributions_for(module: str, mapping: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Return the distributions that may provide an import.

    Args:
        module: The dotted module name.
        mapping: From :func:`module_map`.

    Returns:
        Canonical names; the longest dotted prefix in the map wins, else the
        top-level name itself (``requests`` -> ``requests``).
    """
    from packaging.utils import canonicalize_name

    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        found = mapping.get(".".join(parts[:i]))
        if found:
            return found
    return (canonicalize_name(parts[0]),)


#: Folders whose code is for developing the project, not shipped with it: it may use
#: test and development dependencies.
DEV_FOLDERS = ("tests", "test", "testing", "benchmarks", "benchmark", "bench", "scripts", "tools", "docs")
DEV_FILES = ("conftest.py", "noxfile.py", "tasks.py", "fabfile.py", "testing.py", "testing_utils.py",
             "test_utils.py")


def is_test_file(rel: str) -> bool:
    """Say whether a file is test or development code (may use test-only dependencies).

    Args:
        rel: The project-relative path.

    Returns:
        ``True`` under a ``tests``, ``benchmarks``, ``scripts``, ``tools`` or ``docs``
        folder, for ``test_*.py``, ``*_test.py``, ``conftest.py`` and ``noxfile.py``.
    """
    parts = rel.split("/")
    name = parts[-1]
    return (any(p in DEV_FOLDERS for p in parts[:-1]) or name.startswith("test_")
            or name.endswith("_test.py") or name in DEV_FILES)


def first_party(files: Iterable[str], configured: Iterable[str] = ()) -> tuple[set[str], dict[str, set[str]]]:
    """Return the project's own importable names.

    Args:
        files: Project-relative Python file paths.
        configured: Package names from configuration.

    Returns:
        ``(top-level names, {folder: names importable from files in that folder})``.
        Sibling names count only in folders that are not packages (no
        ``__init__.py``): a script run from its folder imports its neighbours, a
        module inside a package cannot (Python 3 has no implicit relative import).
    """
    top: set[str] = set(configured)
    local: dict[str, set[str]] = {}
    files = list(files)
    packages = {rel.rsplit("/", 1)[0] if "/" in rel else "" for rel in files
                if rel.rsplit("/", 1)[-1] == "__init__.py"}
    for rel in files:
        parts = rel.split("/")
        if parts[0] in ("src", "lib", "python") and len(parts) > 1:
            parts = parts[1:]
        head = parts[0][:-3] if parts[0].endswith(".py") else parts[0]
        top.add(head)
        folder = rel.rsplit("/", 1)[0] if "/" in rel else ""
        name = rel.rsplit("/", 1)[-1]
        if folder in packages:
            continue
        local.setdefault(folder, set()).add(name[:-3] if name.endswith(".py") else name)
        if "/" in folder:
            parent, sub = folder.rsplit("/", 1)
            local.setdefault(parent, set()).add(sub)
        elif folder:
            local.setdefault("", set()).add(folder)
    return top, local


def _option(project: Any, name: str, default: Any) -> Any:
    try:
        return project.option(name)
    except (KeyError, AttributeError):
        return default


class _Declared:
    """The project's declared distributions, by the kind of code they may serve."""

    def __init__(self, root: Path) -> None:
        self.entries = manifests.declared_requirements(root)
        self.any: set[str] = set()
        self.runtime: set[str] = set()
        self.build: set[str] = set()
        self.groups: dict[str, set[str]] = {}
        for entry in self.entries:
            name = entry.name
            if name is None:
                continue
            self.any.add(name)
            self.groups.setdefault(name, set()).add(entry.group)
            if entry.group == "build-system":
                self.build.add(name)
            elif not common.is_test_group(entry.group):
                self.runtime.add(name)


class _ImportRule(ProjectRule):
    """What the two import rules share: each file's absolute imports are its facts."""

    def collect(self, ctx: Any) -> Any:
        """Return the file's absolute imports.

        Args:
            ctx: The file's context.

        Returns:
            ``[[module, line, col, guarded], ...]``.
        """
        return ctx.cache("deps.imports", lambda: _collect(ctx))

    #: Start from the shipped map and read the environment's only on a miss.
    lazy_environment = False

    def check_project(self, project: Any) -> Iterable[Finding]:
        """Yield the rule's findings once some file's imports were collected.

        Args:
            project: The project context.

        Yields:
            The findings.
        """
        facts = project.facts.get(self.code, {})
        if not facts:
            return
        root = Path(project.root)
        mapping = module_map(_option(project, "dependency-module-map", ()), environment=not self.lazy_environment)
        yield from self._import_findings(project, facts, root, _Declared(root), mapping)

    def _import_findings(self, project: Any, facts: dict[str, Any], root: Path, declared: _Declared,
                         mapping: dict[str, tuple[str, ...]]) -> Iterable[Finding]:
        """Yield the findings from each file's imports (``facts``) and the declarations (override)."""
        return ()


@register
class UndeclaredImport(_ImportRule):
    """A third-party import that no declared dependency provides.

    What it does:
        Compares each absolute import of the project's Python files with the
        distributions its manifests declare (``pyproject.toml``, ``setup.cfg``,
        requirements files, ``environment.yml``), mapping import names to
        distributions (``sklearn`` is scikit-learn, ``cv2`` is opencv-python or
        opencv-python-headless, ``PIL`` is Pillow, ...). Skipped: the standard
        library, the project's own modules, and, for test files, dependencies
        declared only for tests. A guarded import (``try``/``except ImportError``,
        ``if TYPE_CHECKING``, ``if is_torch_available()``) is reported only when the
        module is declared nowhere, not even in an extra.

    Why is this bad?
        It works on your machine because something else installed the package; a
        fresh ``pip install`` of your project then fails with ``ModuleNotFoundError``.

    Example:
        ```python
        import sklearn   # pyproject.toml declares only numpy
        ```

    Use instead:
        ```toml
        dependencies = ["numpy>=1.26", "scikit-learn>=1.4"]
        ```
    """

    code = "MLC205"
    name = "import-not-declared"
    summary = "a third-party import no declared dependency provides"
    lazy_environment = True

    def _import_findings(self, project: Any, facts: dict[str, Any], root: Path, declared: _Declared,
                         mapping: dict[str, tuple[str, ...]]) -> Iterable[Finding]:
        """Yield one finding per file and undeclared top-level module."""
        stdlib = stdlib_names()
        top, local = first_party(project.files, _option(project, "packages", ()) or ())
        sources = sorted({e.path for e in declared.entries}) or ["(no manifest found)"]
        full: dict[str, tuple[str, ...]] | None = None
        for rel in sorted(facts):
            folder = rel.rsplit("/", 1)[0] if "/" in rel else ""
            test = is_test_file(rel)
            reported: set[str] = set()
            for module, line, col, guarded in facts[rel] or ():
                head = module.split(".", 1)[0]
                if head in reported or head in stdlib or head in top or head in local.get(folder, ()):
                    continue
                dists = distributions_for(module, mapping)
                if guarded or test:
                    allowed = declared.any
                elif rel.rsplit("/", 1)[-1] == "setup.py":
                    allowed = declared.runtime | declared.build
                else:
                    allowed = declared.runtime
                if any(d in allowed for d in dists):
                    continue
                if full is None:  # a miss: now the environment's map may name the provider
                    full = module_map(_option(project, "dependency-module-map", ()))
                dists = distributions_for(module, full)
                if any(d in allowed for d in dists):
                    continue
                reported.add(head)
                names = " or ".join(dists)
                only = sorted({g for d in dists for g in declared.groups.get(d, ())})
                if only:
                    why = (f"{names} is declared only for {', '.join(only)}, which does not install "
                           f"with the package, but this is not test code")
                elif guarded:
                    why = f"the import is optional (guarded), yet {names} is declared nowhere, not even in an extra"
                else:
                    why = f"no declared dependency provides it; declare {names}"
                hint = f" (`{head}` is the import name of {names})" if names.replace("-", "_").lower() != head.lower() else ""
                yield Finding(self.code, f"`import {module}`: {why}{hint} (declarations read: {', '.join(sources)})",
                              line, col, path=rel)


@register
class UnusedDeclaration(_ImportRule):
    """A declared runtime dependency that no project file imports.

    What it does:
        Reports requirements of ``[project] dependencies``, non-test extras,
        ``setup.cfg install_requires`` and non-test requirements files whose
        distribution provides no module the project imports. Build tools, CLIs and
        plugins that are used without an import (setuptools, pytest plugins, ruff,
        jupyter, ...) are allowed, and ``dependency-unused-allow`` adds more. Off by
        default: entry points and plugins are often loaded by name.

    Why is this bad?
        An unused dependency costs install time and image size, and widens the
        surface for conflicts and supply-chain attacks.

    Example:
        ```toml
        dependencies = ["numpy>=1.26", "pandas>=2"]   # pandas is never imported
        ```

    Use instead:
        ```toml
        dependencies = ["numpy>=1.26"]
        ```
    """

    code = "MLC206"
    name = "dependency-not-imported"
    summary = "a declared dependency is never imported"
    default = "off"

    def _import_findings(self, project: Any, facts: dict[str, Any], root: Path, declared: _Declared,
                         mapping: dict[str, tuple[str, ...]]) -> Iterable[Finding]:
        """Yield one finding per declared runtime dependency that nothing imports."""
        from packaging.utils import canonicalize_name

        allow = {canonicalize_name(n) for n in _option(project, "dependency-unused-allow", ())} | _NOT_IMPORTED
        provided: set[str] = set()
        for rel, imports in facts.items():
            for module, *_ in imports or ():
                provided.update(distributions_for(module, mapping))
                provided.add(canonicalize_name(module.split(".", 1)[0]))
        pyproject = common.load(root, "pyproject.toml")
        own = None
        if pyproject is not None and isinstance(pyproject.data, dict) and isinstance(pyproject.data.get("project"), dict):
            own = pyproject.data["project"].get("name")
        own = canonicalize_name(own) if own else None
        seen: set[str] = set()
        for entry in declared.entries:
            name = entry.name
            if name is None or name in seen or name == own or entry.group == "build-system" \
                    or common.is_test_group(entry.group) or name in allow or name.startswith(("pytest-", "types-", "mypy-")) \
                    or name.endswith("-stubs"):
                continue
            if name in provided:
                continue
            seen.add(name)
            yield common.finding(self.code, entry, (
                f"{entry.requirement.name} is declared ({entry.group}) but no project file imports a module "
                f"it provides; remove it, or add it to dependency-unused-allow if it is used without an "
                f"import (a plugin, a CLI)"))
