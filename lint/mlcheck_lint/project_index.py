"""Which module of the project defines which names, and what each file imports.

Built from CPython's ``ast`` (nothing is imported or run). :func:`module_facts` is what
one file contributes: its top-level names (functions and classes with their call
signatures, other bound values), what it imports under which local name, its star
imports, and whether it defines names at run time (a module ``__getattr__``,
``sys.modules[__name__] = ...``, ``_LazyModule``). The facts are JSON-serialisable, so
rules return them from ``collect`` and the cache keeps them.

:class:`ProjectIndex` joins every file's facts by dotted module name and resolves
``module.name`` through re-exports, relative and star imports. The README rules
(MLC140, MLC141) use it; so can any rule that asks what the project defines or imports.
"""

from __future__ import annotations

import ast
import re
from typing import Any, Iterable, Iterator

_DYNAMIC_MODULE_RE = re.compile(r"sys\.modules\[\s*__name__\s*\]\s*=|globals\(\)\s*(?:\[|\.update)|_LazyModule")
DATACLASS_DECORATORS = {"dataclass", "dataclasses.dataclass", "attr.s", "attr.attrs", "attrs.define",
                         "attr.define", "define", "frozen", "attrs.frozen", "attr.frozen",
                         "pydantic.dataclasses.dataclass"}
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def dotted(node: Any) -> str:
    """Return ``a.b.c`` for a name, attribute chain, call or subscript of one (else ``""``).

    Args:
        node: An ``ast`` expression.

    Returns:
        The dotted name.
    """
    parts = []
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            return ".".join(reversed(parts))
        else:
            return ""


def _params(node: Any, drop_first: bool) -> dict[str, Any]:
    a = node.args
    positional = [(p.arg, "posonly") for p in a.posonlyargs] + [(p.arg, "normal") for p in a.args]
    if drop_first and positional:
        positional = positional[1:]
    return {"params": [n for n, kind in positional if kind == "normal"] + [p.arg for p in a.kwonlyargs],
            "kwargs": a.kwarg is not None}


def suites(stmt: Any) -> Iterator[list[Any]]:
    """Yield the statement lists nested in a compound statement (bodies, else, handlers).

    Args:
        stmt: An ``ast`` statement.

    Returns:
        An iterator of statement lists.
    """
    for field in ("body", "orelse", "finalbody"):
        value = getattr(stmt, field, None)
        if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
            yield value
    for handler in getattr(stmt, "handlers", ()):
        yield handler.body
    for case in getattr(stmt, "cases", ()):
        yield case.body


def module_facts(tree: Any, source: str) -> dict[str, Any]:
    """Return the top-level names a module defines or imports, with call signatures.

    Args:
        tree: The module's ``ast``.
        source: Its text (to spot run-time definitions).

    Returns:
        ``{"names", "imports", "star", "dynamic"}``, JSON-serialisable: ``names`` maps a
        name to ``{"kind": "function" | "class" | "value", ...}``; ``imports`` maps a
        local name to ``"pkg.mod"`` (a module) or ``"pkg.mod:name"`` (relative modules
        keep their dots).
    """
    names: dict[str, Any] = {}
    imports: dict[str, str] = {}
    star: list[str] = []
    dynamic = False

    def visit(stmts: Iterable[Any]) -> None:
        nonlocal dynamic
        for stmt in stmts:
            if isinstance(stmt, _FUNCTIONS):
                if stmt.name == "__getattr__":
                    dynamic = True
                names[stmt.name] = {"kind": "function", **_params(stmt, False)}
            elif isinstance(stmt, ast.ClassDef):
                names[stmt.name] = class_facts(stmt)
            elif isinstance(stmt, (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.AugAssign)):
                _bind(stmt, names, imports, star)
            elif hasattr(stmt, "body") or hasattr(stmt, "cases"):
                for body in suites(stmt):
                    visit(body)

    visit(tree.body)
    # Lazy packages (transformers' _LazyModule, globals() updates) define names at run time.
    dynamic = dynamic or bool(_DYNAMIC_MODULE_RE.search(source))
    return {"names": names, "imports": imports, "star": star, "dynamic": dynamic}


def class_facts(node: Any) -> dict[str, Any]:
    """Return a class's constructor signature, methods and attributes.

    Args:
        node: An ``ast.ClassDef``.

    Returns:
        ``{"kind": "class", "init", "methods", "attrs", "closed"}``; ``closed`` is true
        for a class without bases (nothing inherited can add attributes).
    """
    decorators = {dotted(d) for d in node.decorator_list}
    bases = [dotted(b) for b in node.bases]
    methods: dict[str, Any] = {}
    attrs: list[str] = []
    init = None
    for stmt in node.body:
        if isinstance(stmt, _FUNCTIONS):
            last = {dotted(d).rsplit(".", 1)[-1] for d in stmt.decorator_list}
            facts = _params(stmt, drop_first="staticmethod" not in last)
            methods[stmt.name] = facts
            if stmt.name == "__init__":
                init = facts
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            attrs.append(stmt.target.id)
        elif isinstance(stmt, ast.Assign):
            attrs += [t.id for t in stmt.targets if isinstance(t, ast.Name)]
    if init is None and decorators & DATACLASS_DECORATORS and not bases:
        init = {"params": _field_names(node.body), "kwargs": False}
    if init is not None and (bases and "__init__" not in methods):
        init = None
    return {"kind": "class", "init": init, "methods": methods, "attrs": attrs, "closed": not bases}


def _field_names(body: list[Any]) -> list[str]:
    out = []
    for stmt in body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name) \
                and isinstance(stmt.value, ast.Call) \
                and dotted(stmt.value.func).rsplit(".", 1)[-1] in ("ib", "attrib", "field"):
            target, annotation, value = stmt.targets[0], None, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            target, annotation, value = stmt.target, stmt.annotation, stmt.value
        else:
            continue
        if annotation is not None and dotted(annotation).rsplit(".", 1)[-1] in ("ClassVar", "KW_ONLY"):
            continue
        if isinstance(value, ast.Call) and dotted(value.func).rsplit(".", 1)[-1] in ("field", "ib", "attrib") \
                and any(k.arg == "init" and isinstance(k.value, ast.Constant) and k.value.value is False
                        for k in value.keywords):
            continue
        out.append(target.id)
    return out


def _bind(stmt: Any, names: dict[str, Any], imports: dict[str, str], star: list[str]) -> None:
    if isinstance(stmt, ast.Import):
        for alias in stmt.names:
            if alias.asname is not None:
                imports[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                imports.setdefault(top, top)
    elif isinstance(stmt, ast.ImportFrom):
        module = "." * (stmt.level or 0) + (stmt.module or "")
        if any(alias.name == "*" for alias in stmt.names):
            star.append(module)
            return
        for alias in stmt.names:
            imports[alias.asname or alias.name] = f"{module}:{alias.name}"
    else:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        for target in targets:
            for name in _target_names(target):
                names.setdefault(name, {"kind": "value"})


def _target_names(target: Any) -> Iterator[str]:
    stack = [target]
    while stack:
        node = stack.pop(0)
        if isinstance(node, ast.Name):
            yield node.id
        elif isinstance(node, ast.Starred):
            stack.insert(0, node.value)
        elif isinstance(node, (ast.Tuple, ast.List)):
            stack[0:0] = list(node.elts)


def module_name(path: str, paths: set[str]) -> str | None:
    """Return the dotted module name of a project file, rooted at its outermost package.

    Args:
        path: Project-relative path of a ``.py`` file.
        paths: Every project-relative path linted (to find the ``__init__.py`` files).

    Returns:
        The module name, or ``None`` for a loose script or a non-Python file.
    """
    if not path.endswith(".py"):
        return None
    parts = path.split("/")
    i = len(parts) - 1
    while i > 0 and "/".join(parts[:i] + ["__init__.py"]) in paths:
        i -= 1
    mod = parts[i:]
    if len(mod) == 1 and i == len(parts) - 1 and "/".join(parts[:-1] + ["__init__.py"]) not in paths:
        return None  # a loose script, not part of a package
    mod[-1] = mod[-1][:-3]
    if mod[-1] == "__init__":
        mod = mod[:-1]
    return ".".join(mod) or None


def resolve_relative(module: str, target: str, is_package: bool) -> str | None:
    """Resolve a relative import target (``..models``) from inside ``module``.

    Args:
        module: The importing module's dotted name.
        target: The imported module as written (leading dots for relative imports).
        is_package: Whether ``module`` is a package (its ``__init__``).

    Returns:
        The absolute dotted name, or ``None`` when it climbs above the top package.
    """
    if not target.startswith("."):
        return target
    dots = len(target) - len(target.lstrip("."))
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    if dots - 1 > len(base):
        return None
    base = base[:len(base) - (dots - 1)]
    rest = target[dots:]
    return ".".join(base + ([rest] if rest else [])) or None


class ProjectIndex:
    """The project's modules by dotted name, joined from every file's :func:`module_facts`.

    Args:
        facts: ``{path: module facts}`` (``None`` for a file that gave none).
        files: Every linted Python file's project-relative path.
        packages: The project's own top-level packages (derived from the modules when
            empty).
    """

    def __init__(self, facts: dict[str, Any], files: Iterable[str], packages: Iterable[str] = ()) -> None:
        self.facts = facts
        self.modules: dict[str, dict[str, Any]] = {}
        paths = set(files) | set(facts)
        for path in paths:
            dotted = module_name(path, paths)
            if dotted and facts.get(path) is not None:
                self.modules[dotted] = facts[path]
        self.packages = set(packages) or {m.split(".")[0] for m in self.modules}

    def module(self, dotted: str) -> dict[str, Any] | None:
        """Return a module's facts, or ``None`` when the project has no such module.

        Args:
            dotted: The module's dotted name.

        Returns:
            Its facts.
        """
        return self.modules.get(dotted)

    def lookup(self, module: str, name: str, depth: int = 0) -> tuple[str, Any]:
        """Resolve ``module.name`` through re-exports, relative and star imports.

        Args:
            module: A dotted module name.
            name: The attribute looked up.
            depth: Re-export hops so far (cycles stop at 8).

        Returns:
            ``("module", dotted)``, ``("def", facts)``, ``("unknown", None)`` (cannot
            tell statically) or ``("missing", None)``.
        """
        if depth > 8:
            return "unknown", None
        sub = f"{module}.{name}"
        facts = self.modules.get(module)
        if facts is None:
            return ("module", sub) if sub in self.modules else ("unknown", None)
        # A name bound in the package (``from .train import train``) shadows the submodule.
        if name in facts["names"]:
            return "def", facts["names"][name]
        if name in facts["imports"]:
            target = facts["imports"][name]
            if ":" not in target:
                return ("module", target) if target in self.modules else ("unknown", None)
            mod, _, attr = target.partition(":")
            mod = resolve_relative(module, mod, self.is_package(module))
            if mod is None:
                return "unknown", None
            return self.lookup(mod, attr, depth + 1)
        if sub in self.modules:
            return "module", sub
        if facts["dynamic"]:
            return "unknown", None
        for star_mod in facts["star"]:
            mod = resolve_relative(module, star_mod, self.is_package(module))
            if mod is None or mod not in self.modules:
                return "unknown", None
            kind, value = self.lookup(mod, name, depth + 1)
            if kind != "missing":
                return kind, value
        return "missing", None

    def is_package(self, module: str) -> bool:
        """Whether a module has submodules in the project.

        Args:
            module: A dotted module name.

        Returns:
            Whether it is a package.
        """
        return any(m.startswith(module + ".") for m in self.modules)

    def resolve_chain(self, bound: str, rest: list[str]) -> tuple[str, Any, str]:
        """Resolve a bound name plus attributes (``pkg.models.build``).

        Args:
            bound: What the first name is bound to: ``"pkg.mod"`` or ``"pkg.mod:name"``.
            rest: The attribute names after it.

        Returns:
            ``(kind, facts, dotted name reached)``; kind as :meth:`lookup`, plus
            ``method`` and ``missing-attr`` (a closed class without that attribute).
        """
        if ":" in bound:
            module, _, name = bound.partition(":")
            kind, value = self.lookup(module, name)
            where = f"{module}.{name}"
        else:
            kind, value, where = ("module", bound, bound) if bound in self.modules else ("unknown", None, bound)
        for attr in rest:
            if kind == "module":
                kind, value = self.lookup(value, attr)
                where = f"{where}.{attr}"
            elif kind == "def" and value.get("kind") == "class":
                if attr in value["methods"]:
                    kind, value = "method", value["methods"][attr]
                elif attr in value["attrs"] or not value["closed"]:
                    return "unknown", None, where
                else:
                    return "missing-attr", None, f"{where}.{attr}"
                where = f"{where}.{attr}"
            else:
                return "unknown", None, where
            if kind == "missing":
                return "missing", None, where
        return kind, value, where

    def missing_module(self, module: str) -> bool:
        """Whether ``module``'s parent is a static project module that lacks it.

        Args:
            module: A dotted module name the code imports.

        Returns:
            Whether it is certainly missing (only then is it worth reporting).
        """
        parent = module.rsplit(".", 1)[0] if "." in module else None
        if parent is None or self.module(parent) is None:
            return False
        kind, _ = self.lookup(parent, module.rsplit(".", 1)[1])
        return kind == "missing"
