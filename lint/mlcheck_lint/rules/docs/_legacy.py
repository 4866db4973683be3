"""Documentation rules (MLC1xx): missing docstrings and docstrings that drifted from the code.

Every rule reads one shared analysis of the file (:class:`_FileDocs`, built once per
file and kept on the context), so the module is walked once whatever rules are on.
Docstrings are parsed by :mod:`mlcheck_lint.docstrings` in the configured convention
(``auto`` detects Google, NumPy or Sphinx per docstring).

What counts as public API (``Settings.public_api``):

* a name without a leading underscore, in a module whose path has none
  (test modules, ``test_*.py``, ``*_test.py``, ``conftest.py`` and anything under
  ``tests/``, are not API);
* where a module defines a literal ``__all__``, only the names it lists;
* ``@typing.overload`` stubs, property setters and deleters, nested functions and
  magic methods other than ``__init__`` are exempt;
* a method that overrides a documented method of a project base class inherits its
  documentation (MLC103 and MLC130 resolve this across files);
* ``__init__`` parameters may be documented in the class docstring or in ``__init__``;
* an object whose documentation is generated at run time (a decorator whose name
  mentions ``doc``, such as ``add_start_docstrings``, or an ``X.__doc__ = ...``
  assignment) is skipped by every documentation rule.

Drift rules (MLC110-MLC114, MLC120, MLC121) check every docstring, public or not: a
wrong docstring misleads whoever reads it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterable, Iterator

import libcst as cst

from ...api import Edit, Finding, Fix, ProjectRule, Rule, register
from ...docstrings import UNKNOWN, DocParam, Docstring, literal_value, parse_docstring, same_value

# ---------------------------------------------------------------------------------------
# The shared per-file analysis
# ---------------------------------------------------------------------------------------

_DATACLASS_DECORATORS = {"dataclass", "dataclasses.dataclass", "attr.s", "attr.attrs", "attrs.define",
                         "attr.define", "define", "frozen", "attrs.frozen", "attr.frozen",
                         "pydantic.dataclasses.dataclass"}
_STAR_KINDS = ("star", "starstar")
_NESTED_CLASS_EXEMPT = {"Meta", "Config"}


@dataclasses.dataclass
class _SigParam:
    name: str
    kind: str  # posonly, normal, star, kwonly, starstar, field
    default: Any = None
    annotation: Any = None


@dataclasses.dataclass
class _Doc:
    """A docstring with the information needed to map its raw text back into the file."""

    node: Any
    raw: str
    parsed: Docstring
    exact: bool  # raw text positions map one-to-one onto the file
    fixable: bool  # safe to edit inside (triple-quoted, no escapes)
    quote: str
    inner: tuple[int, int] | None = None  # file (line, col) where the raw text starts


@dataclasses.dataclass
class _Def:
    kind: str  # function or class
    node: Any
    name: str
    qualname: str
    scope: str  # module, class or function
    public: bool
    decorators: list[str]
    doc: _Doc | None
    params: list[_SigParam] | None = None
    partial: bool = False  # params may be incomplete (inherited dataclass fields)
    owner: "_Def | None" = None
    init: "_Def | None" = None  # for classes: their __init__
    bases: list[str] = dataclasses.field(default_factory=list)
    generated_doc: bool = False
    overload: bool = False
    accessor: bool = False  # property setter or deleter
    is_property: bool = False
    is_static: bool = False
    abstract: bool = False


def _dotted(node: Any) -> str:
    if isinstance(node, cst.Call):
        return _dotted(node.func)
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        left = _dotted(node.value)
        return f"{left}.{node.attr.value}" if left else ""
    if isinstance(node, cst.Subscript):
        return _dotted(node.value)
    return ""


def _first_string(suite: Any) -> Any:
    if isinstance(suite, cst.SimpleStatementSuite):
        small = suite.body[0] if suite.body else None
    else:
        stmts = suite.body
        if not stmts or not isinstance(stmts[0], cst.SimpleStatementLine) or not stmts[0].body:
            return None
        small = stmts[0].body[0]
    if isinstance(small, cst.Expr) and isinstance(small.value, (cst.SimpleString, cst.ConcatenatedString)):
        return small.value
    return None


def _is_test_module(path: str) -> bool:
    parts = path.replace("\\", "/").split("/")
    base = parts[-1]
    return (base.startswith("test_") or base.endswith("_test.py") or base == "conftest.py"
            or any(p in ("tests", "test", "testing") for p in parts[:-1]))


def _module_is_public(path: str) -> bool:
    for part in path.replace("\\", "/").split("/"):
        stem = part.rsplit(".", 1)[0] if part.endswith((".py", ".pyi", ".ipynb")) else part
        if stem in ("__init__", "", ".", ".."):
            continue
        if stem.startswith("_"):
            return False
    return True


def _literal_all(module: Any) -> set[str] | None:
    names: set[str] | None = None
    for stmt in module.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            value = None
            if isinstance(small, cst.Assign) and any(
                    isinstance(t.target, cst.Name) and t.target.value == "__all__" for t in small.targets):
                value, names = small.value, set()
            elif isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name) \
                    and small.target.value == "__all__" and small.value is not None:
                value, names = small.value, set()
            elif isinstance(small, cst.AugAssign) and isinstance(small.target, cst.Name) \
                    and small.target.value == "__all__" and names is not None:
                value = small.value
            if value is None:
                continue
            listed = literal_value(value)
            if not isinstance(listed, tuple) or not all(isinstance(x, str) for x in listed):
                return None  # built dynamically: fall back to the underscore rule
            names |= set(listed)
    return names


class _FileDocs:
    """Every definition of one file, with its docstring parsed and its publicness decided."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        settings = ctx.settings
        self.convention = settings.docstring_convention
        policy = settings.public_api
        self.is_test = _is_test_module(ctx.path)
        self.module_public = (policy == "all" or _module_is_public(ctx.path)) and not self.is_test
        self.all_names = _literal_all(ctx.module) if policy == "auto" else None
        self.policy = policy
        self.generated: set[str] = set()
        if "__doc__" in ctx.source:
            for m in re.finditer(r"([A-Za-z_][\w.]*)\.__doc__\s*(?:\+?=)", ctx.source):
                self.generated.add(m.group(1).split(".")[-1])
        self.module_doc = self._doc(ctx.module)
        self.defs: list[_Def] = []
        self._walk(ctx.module.body, "module", None, "")

    # -- docstrings -----------------------------------------------------------------
    def _doc(self, owner: Any) -> _Doc | None:
        node = _first_string(owner if isinstance(owner, cst.Module) else owner.body)
        if node is None:
            return None
        if isinstance(node, cst.SimpleString):
            prefix = node.prefix.lower()
            if "b" in prefix:
                return None
            quote = node.quote
            raw = node.value[len(node.prefix) + len(quote):len(node.value) - len(quote)]
            # Positions map one-to-one onto the file; edits only where no escape can shift them.
            exact, fixable = True, len(quote) == 3 and "\\" not in raw
        else:
            value = node.evaluated_value
            if not isinstance(value, str):
                return None  # f-string or bytes parts: not a docstring
            raw, quote, exact, fixable = value, "", False, False
        try:
            parsed = parse_docstring(raw, self.convention)
        except Exception:  # a docstring we cannot read never breaks linting
            parsed = Docstring(style="none", text=raw)
        return _Doc(node, raw, parsed, exact, fixable, quote)

    # -- walking ----------------------------------------------------------------------
    def _walk(self, stmts: Iterable[Any], scope: str, owner: _Def | None, prefix: str) -> None:
        for stmt in stmts:
            if isinstance(stmt, cst.FunctionDef):
                self._function(stmt, scope, owner, prefix)
            elif isinstance(stmt, cst.ClassDef):
                self._class(stmt, scope, owner, prefix)
            elif isinstance(stmt, cst.SimpleStatementLine):
                continue
            elif isinstance(stmt, cst.BaseCompoundStatement):
                for suite in _suites(stmt):
                    self._walk(suite.body, scope, owner, prefix)

    def _top_public(self, name: str) -> bool:
        if not self.module_public:
            return False
        if self.policy == "all":
            return True
        if self.all_names is not None:
            return name in self.all_names
        return not name.startswith("_")

    def _function(self, node: Any, scope: str, owner: _Def | None, prefix: str) -> None:
        name = node.name.value
        decorators = [_dotted(d.decorator) for d in node.decorators]
        last = {d.rsplit(".", 1)[-1] for d in decorators}
        if scope == "module":
            public = self._top_public(name)
        elif scope == "class" and owner is not None:
            public = owner.public and (not name.startswith("_") or name == "__init__" or self.policy == "all")
        else:
            public = False
        is_static = "staticmethod" in last
        params = _signature(node, drop_first=scope == "class" and not is_static)
        d = _Def("function", node, name, prefix + name, scope, public, decorators, self._doc(node), params,
                 owner=owner, is_static=is_static)
        d.overload = "overload" in last
        d.accessor = any(x.endswith((".setter", ".deleter")) for x in decorators)
        d.is_property = bool(last & {"property", "cached_property", "abstractproperty"}) or any(
            x.endswith(".getter") for x in decorators)
        d.abstract = bool(last & {"abstractmethod", "abstractproperty", "abstractclassmethod",
                                  "abstractstaticmethod"})
        d.generated_doc = any("doc" in x.lower() for x in decorators) or name in self.generated or \
            bool(owner is not None and owner.generated_doc and d.doc is None)
        self.defs.append(d)
        if scope == "class" and owner is not None and name == "__init__":
            owner.init = d
        self._walk(node.body.body if isinstance(node.body, cst.IndentedBlock) else (), "function", d,
                   prefix + name + ".")

    def _class(self, node: Any, scope: str, owner: _Def | None, prefix: str) -> None:
        name = node.name.value
        decorators = [_dotted(d.decorator) for d in node.decorators]
        if scope == "module":
            public = self._top_public(name)
        elif scope == "class" and owner is not None:
            public = owner.public and not name.startswith("_") and name not in _NESTED_CLASS_EXEMPT
        else:
            public = False
        d = _Def("class", node, name, prefix + name, scope, public, decorators, self._doc(node), owner=owner)
        d.bases = [_dotted(a.value) for a in node.bases if a.keyword is None]
        d.generated_doc = any("doc" in x.lower() for x in decorators) or name in self.generated
        self.defs.append(d)
        body = node.body.body if isinstance(node.body, cst.IndentedBlock) else ()
        self._walk(body, "class", d, prefix + name + ".")
        if d.init is not None:
            d.params = d.init.params
        elif set(decorators) & _DATACLASS_DECORATORS or any(b.rsplit(".", 1)[-1] == "NamedTuple" for b in d.bases):
            d.params = _fields(body)
            d.partial = any(b.rsplit(".", 1)[-1] not in ("object", "NamedTuple", "Generic") for b in d.bases)


def _suites(node: Any) -> Iterator[Any]:
    for child in node.children:
        if isinstance(child, cst.IndentedBlock):
            yield child
        elif isinstance(child, (cst.Else, cst.If, cst.ExceptHandler, cst.ExceptStarHandler, cst.Finally,
                                cst.MatchCase)):
            yield from _suites(child)


def _signature(node: Any, drop_first: bool) -> list[_SigParam]:
    ps = node.params
    out = [_SigParam(p.name.value, "posonly", p.default, p.annotation) for p in ps.posonly_params]
    out += [_SigParam(p.name.value, "normal", p.default, p.annotation) for p in ps.params]
    if drop_first and out:
        out = out[1:]
    if isinstance(ps.star_arg, cst.Param):
        out.append(_SigParam(ps.star_arg.name.value, "star", None, ps.star_arg.annotation))
    out += [_SigParam(p.name.value, "kwonly", p.default, p.annotation) for p in ps.kwonly_params]
    if ps.star_kwarg is not None:
        out.append(_SigParam(ps.star_kwarg.name.value, "starstar", None, ps.star_kwarg.annotation))
    return out


def _fields(body: Iterable[Any]) -> list[_SigParam]:
    out = []
    for stmt in body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(
                    small.targets[0].target, cst.Name) and isinstance(small.value, cst.Call) and _dotted(
                    small.value.func).rsplit(".", 1)[-1] in ("ib", "attrib", "field"):
                small = cst.AnnAssign(target=small.targets[0].target,  # attrs: ``x = attr.ib()``
                                      annotation=cst.Annotation(cst.Name("object")), value=small.value)
            if not isinstance(small, cst.AnnAssign) or not isinstance(small.target, cst.Name):
                continue
            ann = _dotted(small.annotation.annotation)
            if ann.rsplit(".", 1)[-1] in ("ClassVar", "KW_ONLY"):
                continue
            value = small.value
            if isinstance(value, cst.Call) and _dotted(value.func).rsplit(".", 1)[-1] in ("field", "ib", "attrib") \
                    and any(
                    a.keyword is not None and a.keyword.value == "init" and isinstance(a.value, cst.Name)
                    and a.value.value == "False" for a in value.args):
                continue
            out.append(_SigParam(small.target.value, "field", value, small.annotation))
    return out


def _analysis(ctx: Any) -> _FileDocs:
    cached = getattr(ctx, "_mlcheck_docs", None)
    if cached is None:
        cached = _FileDocs(ctx)
        ctx._mlcheck_docs = cached
    return cached


# ---------------------------------------------------------------------------------------
# Positions and small helpers
# ---------------------------------------------------------------------------------------

def _doc_pos(ctx: Any, doc: _Doc, line: int | None, col: int) -> tuple[int, int]:
    """Map a (line, col) of a docstring's raw text to the file; the docstring start otherwise."""
    if doc.inner is None:
        sl, sc, _, _ = ctx.position(doc.node)
        if isinstance(doc.node, cst.SimpleString):
            sc += len(doc.node.prefix) + len(doc.quote)
        doc.inner = (sl, sc)
    sl, sc = doc.inner
    if not doc.exact or line is None:
        l0, c0, _, _ = ctx.position(doc.node)
        return l0, c0
    return sl + line, (sc + col) if line == 0 else col


def _finding(ctx: Any, code: str, line: int, col: int, message: str, fix: Fix | None = None,
             end: tuple[int, int] | None = None) -> Finding:
    end_line, end_col = end if end else (line, col)
    return Finding(code=code, message=message, line=line, col=col, end_line=end_line, end_col=end_col,
                   fix=fix, path=ctx.path, cell=ctx.cell)


def _at_name(ctx: Any, d: _Def, code: str, message: str) -> Finding:
    line, col, end_line, end_col = ctx.position(d.node.name)
    return Finding(code=code, message=message, line=line, col=col, end_line=end_line, end_col=end_col,
                   path=ctx.path, cell=ctx.cell)


def _what(d: _Def) -> str:
    if d.kind == "class":
        return f"class `{d.qualname}`"
    return f"{'method' if d.scope == 'class' else 'function'} `{d.qualname}`"


@dataclasses.dataclass
class _Target:
    """One docstring checked against one parameter list."""

    d: _Def
    doc: _Doc
    params: list[_SigParam]
    partial: bool
    also_documented: set[str]  # documented in the companion docstring (class <-> __init__)


def _targets(fd: _FileDocs) -> Iterator[_Target]:
    for d in fd.defs:
        if d.doc is None or d.generated_doc or d.overload or d.accessor or d.params is None:
            continue
        if d.doc.parsed.style == "none":
            continue
        other: _Doc | None = None
        if d.kind == "class" and d.init is not None:
            other = d.init.doc
        elif d.kind == "function" and d.name == "__init__" and d.owner is not None and d.owner.kind == "class":
            other = d.owner.doc
        also = {p.name for p in other.parsed.params} if other is not None else set()
        yield _Target(d, d.doc, d.params, d.partial, also)


def _param_line_text(ctx: Any, doc: _Doc, p: DocParam) -> str:
    lines = doc.raw.splitlines()
    return lines[p.line] if p.line < len(lines) else ""


# ---------------------------------------------------------------------------------------
# MLC101-MLC103: missing docstrings
# ---------------------------------------------------------------------------------------

@register
class ModuleWithoutDocstring(Rule):
    """A public module has no docstring.

    What it does:
        Reports a public module (no path component starts with an underscore, not a
        test module) with code but no module docstring. Empty modules are ignored.

    Why is this bad?
        The module docstring is the first thing ``help()``, IDEs and API docs show; it
        says what the module is for and where its pieces fit in the model code.

    Example:
        ```python
        import torch

        def train_step(model, batch): ...
        ```

    Use instead:
        ```python
        \"\"\"Training loop pieces: one optimisation step and its metrics.\"\"\"
        import torch

        def train_step(model, batch): ...
        ```
    """

    code = "MLC101"
    name = "module-without-docstring"
    summary = "public module without a docstring"
    default = "off"

    def check(self, ctx: Any) -> Iterable[Finding]:
        """Yield a finding for a public module without a docstring.

        Args:
            ctx: The file's context.

        Returns:
            The findings.
        """
        fd = _analysis(ctx)
        if not fd.module_public or fd.module_doc is not None or not ctx.module.body:
            return []
        return [_finding(ctx, self.code, 1, 0, f"public module `{ctx.path}` has no docstring: "
                         "add one at the top saying what the module is for")]


@register
class ClassWithoutDocstring(Rule):
    """A public class has no docstring.

    What it does:
        Reports a public class without a docstring. Classes nested in functions,
        classes of private modules, names left out of a literal ``__all__``, and
        nested ``Meta``/``Config`` classes are not public API.

    Why is this bad?
        A model, dataset or transform class without a docstring leaves its users to
        guess what it computes, which shapes it expects and what its constructor
        arguments mean.

    Example:
        ```python
        class PatchEmbed(nn.Module):
            def __init__(self, patch_size=16): ...
        ```

    Use instead:
        ```python
        class PatchEmbed(nn.Module):
            \"\"\"Split an image into patches and embed each one.

            Args:
                patch_size: Side of a square patch, in pixels.
            \"\"\"
        ```
    """

    code = "MLC102"
    name = "class-without-docstring"
    summary = "public class without a docstring"
    default = "on"
    requires_text = ("class",)

    def check(self, ctx: Any) -> Iterable[Finding]:
        """Yield a finding per public class without a docstring.

        Args:
            ctx: The file's context.

        Returns:
            The findings.
        """
        fd = _analysis(ctx)
        return [_at_name(ctx, d, self.code, f"public class `{d.qualname}` has no docstring: say what it "
                         "represents and document its constructor arguments")
                for d in fd.defs if d.kind == "class" and d.public and d.doc is None and not d.generated_doc]


def _api_facts(ctx: Any) -> dict[str, Any]:
    """Facts MLC103 and MLC130 share: undocumented public callables and class documentation."""
    fd = _analysis(ctx)
    classes = {}
    missing = []
    public = documented = 0
    if fd.module_public and ctx.module.body:
        public += 1
        documented += fd.module_doc is not None
    for d in fd.defs:
        if d.kind == "class":
            classes[d.qualname] = {"name": d.name, "bases": d.bases,
                                   "documented": sorted(m.name for m in fd.defs
                                                        if m.owner is d and m.kind == "function"
                                                        and m.doc is not None)}
        if not d.public or d.generated_doc:
            continue
        if d.kind == "class":
            public += 1
            documented += d.doc is not None
            continue
        if d.overload or d.accessor:
            continue
        if d.scope == "class" and any(x.rsplit(".", 1)[-1] == "override" for x in d.decorators):
            continue  # PEP 698 @override: the documentation lives on the overridden method
        if d.name.startswith("pytest_") or any(x.rsplit(".", 1)[-1] == "hookimpl" for x in d.decorators):
            continue  # a pytest/pluggy hook implementation: its hookspec documents it
        if d.name.startswith("__") and d.name.endswith("__") and d.name != "__init__":
            continue
        if d.name == "__init__":
            # Constructor arguments may be documented in the class docstring, and a class
            # without one is already reported by MLC102, which asks for them.
            continue
        public += 1
        if d.doc is not None:
            documented += 1
            continue
        line, col, end_line, end_col = ctx.position(d.node.name)
        owner_q = d.owner.qualname if d.scope == "class" and d.owner is not None else None
        missing.append({"qualname": d.qualname, "name": d.name, "class": owner_q,
                        "kind": "method" if owner_q else "function",
                        "pos": [line, col, end_line, end_col], "cell": ctx.cell})
    return {"classes": classes, "missing": missing, "public": public, "documented": documented}


def _inherits_doc(project: Any, code: str, path: str, item: dict[str, Any]) -> bool:
    """Whether a method overrides a documented method of a base class defined in the project."""
    facts = project.facts.get(code, {})
    by_name: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    index = getattr(project, "_mlcheck_class_index", {}).get(code)
    if index is None:
        for p, f in facts.items():
            if not f:
                continue
            for cls in f["classes"].values():
                by_name.setdefault(cls["name"], []).append((p, cls))
        cache = getattr(project, "_mlcheck_class_index", {})
        cache[code] = by_name
        try:
            project._mlcheck_class_index = cache
        except AttributeError:
            pass
    else:
        by_name = index
    own = facts.get(path, {}).get("classes", {}).get(item["class"])
    if own is None:
        return False
    seen: set[int] = set()
    stack = [b.rsplit(".", 1)[-1] for b in own["bases"]]
    while stack:
        base = stack.pop()
        for _, cls in by_name.get(base, ()):
            if id(cls) in seen:
                continue
            seen.add(id(cls))
            if item["name"] in cls["documented"]:
                return True
            stack.extend(b.rsplit(".", 1)[-1] for b in cls["bases"])
    return False


@register
class FunctionWithoutDocstring(ProjectRule):
    """A public function or method has no docstring.

    What it does:
        Reports a public function or method without a docstring. Exempt: nested
        functions, ``@typing.overload`` stubs, property setters and deleters, magic
        methods, ``__init__`` (its arguments may be documented in the class docstring,
        and a class without one is reported by MLC102), and a method overriding a
        documented method of a base class defined in the project, which inherits that
        documentation (resolved across files), and a method marked ``@override``
        (PEP 698), which declares that its documentation lives on the base class.
        pytest and pluggy hook implementations (``pytest_*`` functions, ``@hookimpl``)
        are documented by their hook specification and are exempt too.

    Why is this bad?
        Callers of an undocumented ``forward``, ``collate`` or ``load_checkpoint`` learn
        its contract (shapes, units, side effects) only by reading its body.

    Example:
        ```python
        def accuracy(logits, labels):
            return (logits.argmax(-1) == labels).float().mean()
        ```

    Use instead:
        ```python
        def accuracy(logits, labels):
            \"\"\"Top-1 accuracy of ``logits`` (N, C) against integer ``labels`` (N,).\"\"\"
            return (logits.argmax(-1) == labels).float().mean()
        ```
    """

    code = "MLC103"
    name = "function-without-docstring"
    summary = "public function or method without a docstring"
    default = "on"
    requires_text = ("def",)

    def collect(self, ctx: Any) -> Any:
        """Return the file's undocumented public callables and its classes' documented methods.

        Args:
            ctx: The file's context.

        Returns:
            JSON-serialisable facts.
        """
        facts = _api_facts(ctx)
        return {"classes": facts["classes"], "missing": facts["missing"]}

    def check_project(self, project: Any) -> Iterable[Finding]:
        """Yield one finding per undocumented public callable that inherits no documentation.

        Args:
            project: The project's context.

        Returns:
            The findings.
        """
        out = []
        for path in sorted(project.facts.get(self.code, {})):
            facts = project.facts[self.code][path]
            if not facts:
                continue
            for item in facts["missing"]:
                if item["class"] and _inherits_doc(project, self.code, path, item):
                    continue
                line, col, end_line, end_col = item["pos"]
                what = "method" if item["class"] else "function"
                out.append(Finding(self.code, f"public {what} `{item['qualname']}` has no docstring: say what "
                                   "it does, its arguments and what it returns", line, col, end_line, end_col,
                                   path=path, cell=item.get("cell")))
        return out


# ---------------------------------------------------------------------------------------
# MLC110-MLC114: parameters that drifted
# ---------------------------------------------------------------------------------------

@register
class DocumentedParamNotInSignature(Rule):
    """A documented parameter is not in the signature.

    What it does:
        Reports a parameter listed in the docstring's parameters section (Google
        ``Args:``, NumPy ``Parameters``, Sphinx ``:param x:``) that the signature does
        not have, usually left behind by a rename or a removal. ``*args`` may be
        documented as ``*args``, ``args`` or ``\\*args``; a function taking
        ``**kwargs`` may document the keywords it forwards, so it is not checked. A
        class docstring is checked against ``__init__`` (or a dataclass's fields).

    Why is this bad?
        A reader passes ``lr=`` because the docstring says so and gets a
        ``TypeError``, or worse, the value vanishes into ``**kwargs`` elsewhere.

    Example:
        ```python
        def train(model, learning_rate=1e-3):
            \"\"\"Train.

            Args:
                model: The model.
                lr: The learning rate.
            \"\"\"
        ```

    Use instead:
        ```python
        def train(model, learning_rate=1e-3):
            \"\"\"Train.

            Args:
                model: The model.
                learning_rate: The learning rate.
            \"\"\"
        ```

    Fix safety:
        When exactly one documented name is stale, exactly one signature parameter is
        undocumented, and the two names look alike (one is a subsequence of the other,
        as ``lr`` and ``learning_rate``, or they are mostly the same letters), the fix
        renames the stale entry to the new name, keeping its description. It is unsafe: the description may no longer fit the renamed
        parameter, so it is shown by ``--diff`` and applied only with
        ``--fix --unsafe-fixes``.
    """

    code = "MLC110"
    name = "docstring-param-not-in-signature"
    summary = "a documented parameter is not in the signature"
    default = "on"
    fix_safety = "unsafe"
    requires_text = ("def", "class")

    def check(self, ctx: Any) -> Iterable[Finding]:
        """Yield a finding per documented parameter missing from the signature.

        Args:
            ctx: The file's context.

        Returns:
            The findings.
        """
        out = []
        for t in _targets(_analysis(ctx)):
            if t.partial or any(p.kind == "starstar" for p in t.params):
                continue
            names = {p.name for p in t.params}
            documented = {p.name for p in t.doc.parsed.params} | t.also_documented
            stale = [p for p in t.doc.parsed.params if p.name not in names and p.name not in ("self", "cls")]
            if not stale:
                continue
            undocumented = [p for p in t.params if p.name not in documented and p.kind not in _STAR_KINDS
                            and not p.name.startswith("_")]
            for p in stale:
                line, col = _doc_pos(ctx, t.doc, p.line, p.col)
                fix = None
                hint = ""
                if len(stale) == 1 and len(undocumented) == 1 and _looks_renamed(p.name, undocumented[0].name):
                    new = undocumented[0].name
                    hint = f"; if it was renamed, document it as `{new}`"
                    if t.doc.fixable and p.raw_name == p.name and \
                            _param_line_text(ctx, t.doc, p)[p.col:p.col + len(p.name)] == p.name:
                        fix = Fix("unsafe", f"rename documented parameter `{p.name}` to `{new}`",
                                  (Edit(line, col, line, col + len(p.name), new),))
                sig = ", ".join(x.name for x in t.params) or "no parameters"
                out.append(_finding(ctx, self.code, line, col,
                                    f"docstring of {_what(t.d)} documents `{p.raw_name}`, which is not in its "
                                    f"signature ({sig}){hint}; remove or rename the entry",
                                    fix, (line, col + len(p.raw_name))))
        return out


def _looks_renamed(old: str, new: str) -> bool:
    """Whether ``new`` plausibly renames ``old``: ``lr`` -> ``learning_rate``, ``q_vec`` ->
    ``q_update_vec``, ``dropout`` -> ``drop_rate``; not ``max_num_bins`` -> ``config``."""
    import difflib

    def subsequence(short: str, long: str) -> bool:
        it = iter(long)
        return all(ch in it for ch in short)

    a, b = old.lower(), new.lower()
    return subsequence(a, b) or subsequence(b, a) or difflib.SequenceMatcher(None, a, b).ratio() >= 0.5


@register
class SignatureParamNotDocumented(Rule):
    """A signature parameter is missing from a docstring that has a parameters section.

    What it does:
        Reports parameters absent from a docstring that documents parameters at all
        (so a one-line docstring is never asked for a full ``Args:`` section).
        ``self``/``cls``, ``*args``/``**kwargs`` and underscore-prefixed parameters
        need no entry; ``__init__`` parameters documented in the class docstring
        count. A section with a line that cannot be read as an entry is skipped.

    Why is this bad?
        A new parameter (``label_smoothing``, ``drop_path_rate``) that is not
        documented is invisible to users, and its meaning and units get guessed.

    Example:
        ```python
        def loss(logits, target, label_smoothing=0.0):
            \"\"\"Cross-entropy.

            Args:
                logits: Scores (N, C).
                target: Class indices (N,).
            \"\"\"
        ```

    Use instead:
        ```python
        def loss(logits, target, label_smoothing=0.0):
            \"\"\"Cross-entropy.

            Args:
                logits: Scores (N, C).
                target: Class indices (N,).
                label_smoothing: Mass moved from the target class to the others.
            \"\"\"
        ```
    """

    code = "MLC111"
    name = "signature-param-not-documented"
    summary = "a signature parameter is missing from a docstring that has a parameters section"
    default = "on"
    requires_text = ("def", "class")

    def check(self, ctx: Any) -> Iterable[Finding]:
        """Yield one finding per docstring that misses signature parameters.

        Args:
            ctx: The file's context.

        Returns:
            The findings.
        """
        out = []
        for t in _targets(_analysis(ctx)):
            parsed = t.doc.parsed
            if not parsed.has_params_section or parsed.uncertain:
                continue
            documented = {p.name for p in parsed.params} | t.also_documented
            missing = [p.name for p in t.params if p.kind not in _STAR_KINDS and not p.name.startswith("_")
                       and p.name not in documented and p.name not in ("self", "cls")]
            if missing:
                names = ", ".join(f"`{m}`" for m in missing)
                out.append(_at_name(ctx, t.d, self.code,
                                    f"docstring of {_what(t.d)} does not document parameter"
                                    f"{'s' if len(missing) > 1 else ''} {names}: add "
                                    f"{'them' if len(missing) > 1 else 'it'} to its parameters section"))
        return out


@register
class DocumentedParamsOutOfOrder(Rule):
    """Documented parameters are in a different order than the signature.

    What it does:
        Reports a parameters section whose entries (those in the signature) are not
        in signature order. NumPy's ``x, y : float`` counts as ``x`` then ``y``.

    Why is this bad?
        Readers match the documentation to positional arguments by order; a swapped
        ``height``/``width`` pair in the docs produces transposed images in user code.

    Example:
        ```python
        def resize(img, height, width):
            \"\"\"Resize.

            Args:
                img: Image.
                width: Target width.
                height: Target height.
            \"\"\"
        ```

    Use instead:
        ```python
        def resize(img, height, width):
            \"\"\"Resize.

            Args:
                img: Image.
                height: Target height.
                width: Target width.
            \"\"\"
        ```
    """

    code = "MLC112"
    name = "docstring-params-out-of-order"
    summary = "documented parameters are in a different order than the signature"
    default = "on"
    requires_text = ("def", "class")

    def check(self, ctx: Any) -> Iterable[Finding]:
        """Yield a finding per parameters section that is out of signature order.

        Args:
            ctx: The file's context.

        Returns:
            The findings.
        """
        out = []
        for t in _targets(_analysis(ctx)):
            order = {p.name: i for i, p in enumerate(t.params)}
            entries = [p for p in t.doc.parsed.params if p.section == "params" and p.name in order]
            seen: set[str] = set()
            unique = []
            for p in entries:
                if p.name not in seen:
                    seen.add(p.name)
                    unique.append(p)
            for prev, cur in zip(unique, unique[1:]):
                if order[cur.name] < order[prev.name]:
                    line, col = _doc_pos(ctx, t.doc, prev.line, prev.col)
                    documented = ", ".join(p.name for p in unique)
                    expected = ", ".join(p.name for p in sorted(unique, key=lambda p: order[p.name]))
                    out.append(_finding(ctx, self.code, line, col,
                                        f"docstring of {_what(t.d)} documents `{prev.name}` before `{cur.name}`, "
                                        f"but the signature has them the other way round: documented order "
                                        f"({documented}), signature order ({expected})"))
                    break
        return out


@register
class DocumentedDefaultDiffers(Rule):
    """A documented default differs from the signature's default.

    What it does:
        Reads the default a docstring states (``Defaults to 1e-3.``, ``default:
        0.001``, NumPy ``lr : float, default 1e-3``, Sphinx ``(default: ...)``,
        transformers' ``(`float`, *optional*, defaults to 0.1)``) and compares it with
        the signature's default *as values*, so ``1e-3`` equals ``0.001`` and
        ``(1, 2)`` equals ``[1, 2]``. Only plain literals are compared; a default of
        ``None`` in the signature is taken as a sentinel whose documented effective
        value may differ, and is not checked. A statement such as "defaults to 1 for
        regression" is not read as a default.

    Why is this bad?
        A learning rate, epsilon or dropout whose default changed while the docstring
        still states the old value silently changes everyone's experiments: users who
        trust the docs believe they run with the documented value.

    Example:
        ```python
        def adamw(params, lr=3e-4, eps=1e-8):
            \"\"\"AdamW.

            Args:
                params: Parameters to optimise.
                lr: Learning rate. Defaults to 1e-3.
                eps: Added to the denominator. Defaults to 1e-8.
            \"\"\"
        ```

    Use instead:
        ```python
        def adamw(params, lr=3e-4, eps=1e-8):
            \"\"\"AdamW.

            Args:
                params: Parameters to optimise.
                lr: Learning rate. Defaults to 3e-4.
                eps: Added to the denominator. Defaults to 1e-8.
            \"\"\"
        ```

    Fix safety:
        Safe: the fix rewrites the documented value to the signature's default, as
        written in the code; the signature is what actually runs. It is offered only
        for triple-quoted docstrings without backslash escapes.
    """

    code = "MLC113"
    name = "docstring-default-differs"
    summary = "a documented default differs from the signature's default"
    default = "on"
    fix_safety = "safe"
    requires_text = ("efault",)

    def check(self, ctx: Any) -> Iterable[Finding]:
        """Yield a finding (with a safe fix where possible) per stale documented default.

        Args:
            ctx: The file's context.

        Returns:
            The findings.
        """
        out = []
        for t in _targets(_analysis(ctx)):
            sig = {p.name: p for p in t.params}
            for dp in t.doc.parsed.params:
                sp = sig.get(dp.name)
                if dp.default is None or sp is None or sp.default is None:
                    continue
                documented = literal_value(dp.default.text)
                actual = literal_value(sp.default)
                if documented is UNKNOWN or actual is UNKNOWN or actual is None:
                    continue
                if same_value(documented, actual):
                    continue
                code_text = ctx.module.code_for_node(sp.default).strip()
                if dp.default.line is not None:
                    line, col = _doc_pos(ctx, t.doc, dp.default.line, dp.default.col)
                    located = t.doc.exact
                else:
                    line, col = _doc_pos(ctx, t.doc, dp.line, dp.col)
                    located = False
                fix = None
                closes_docstring = code_text.endswith(t.doc.quote[:1]) and dp.default.line is not None and \
                    dp.default.line == len(t.doc.raw.splitlines()) - 1 and \
                    t.doc.raw.rstrip().endswith(dp.default.text)
                if located and t.doc.fixable and "\n" not in code_text and "\\" not in code_text \
                        and t.doc.quote not in code_text and not closes_docstring:
                    raw_line = t.doc.raw.splitlines()[dp.default.line]
                    if raw_line[dp.default.col:dp.default.col + len(dp.default.text)] == dp.default.text:
                        fix = Fix("safe", f"document the default of `{dp.name}` as {code_text}",
                                  (Edit(line, col, line, col + len(dp.default.text), code_text),))
                out.append(_finding(ctx, self.code, line, col,
                                    f"docstring of {_what(t.d)} says `{dp.name}` defaults to {dp.default.text}, "
                                    f"but the signature's default is {code_text}: users who trust the docs "
                                    f"run with a different value; update the docstring (or the default)",
                                    fix, (line, col + len(dp.default.text)) if located else None))
        return out


_TYPE_SYNONYMS = {"integer": "int", "boolean": "bool", "string": "str", "dictionary": "dict",
                  "double": "float", "tensor": "tensor", "ndarray": "array", "array": "array",
                  "array_like": "array", "arraylike": "array", "sequence": "list", "iterable": "list",
                  "mapping": "dict", "callable": "callable", "list": "list", "tuple": "tuple",
                  "dict": "dict", "int": "int", "float": "float", "str": "str", "bool": "bool",
                  "bytes": "bytes", "set": "set", "module": "module"}
_TYPE_IGNORED = {"optional", "union", "none", "default", "or", "of", "type", "typing", "torch", "np", "numpy",
                 "nn", "keyword", "only", "positional"}
_TYPE_COMPAT = {("list", "tuple"), ("tuple", "list"), ("array", "list"), ("list", "array"),
                ("array", "tensor"), ("tensor", "array")}


def _type_words(text: str) -> set[str] | None:
    """Known type names in a type text, or ``None`` when it mentions something unknown."""
    words = set()
    for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text.lower()):
        if w in _TYPE_IGNORED or w.isdigit():
            continue
        if w in _TYPE_SYNONYMS:
            words.add(_TYPE_SYNONYMS[w])
        elif w.endswith("tensor"):
            words.add("tensor")
        else:
            return None
    return words or None


@register
class DocumentedTypeConflicts(Rule):
    """A documented type conflicts with the annotation.

    What it does:
        Compares a parameter's documented type with its annotation when both use only
        well-known names (``int``, ``float``, ``str``, ``bool``, ``list``, ``tuple``,
        ``dict``, tensors, arrays, ``Optional``/``Union``) and reports them when they
        share no type. ``float`` accepts ``int``, lists and tuples are interchangeable,
        and anything the rule does not know is left alone.

    Why is this bad?
        ``dropout (int)`` next to ``dropout: float`` leaves readers unsure whether the
        value is a probability or a count; usually one of the two went stale.

    Example:
        ```python
        def block(dim: int, dropout: float = 0.1):
            \"\"\"Args:
                dim (int): Width.
                dropout (int): Dropout.
            \"\"\"
        ```

    Use instead:
        ```python
        def block(dim: int, dropout: float = 0.1):
            \"\"\"Args:
                dim (int): Width.
                dropout (float): Dropout probability.
            \"\"\"
        ```
    """

    code = "MLC114"
    name = "docstring-type-conflicts"
    summary = "a documented type conflicts with the annotation"
    default = "off"
    requires_text = (":",)

    def check(self, ctx: Any) -> Iterable[Finding]:
        """Yield a finding per documented type that shares nothing with the annotation.

        Args:
            ctx: The file's context.

        Returns:
            The findings.
        """
        out = []
        for t in _targets(_analysis(ctx)):
            sig = {p.name: p for p in t.params}
            for dp in t.doc.parsed.params:
                sp = sig.get(dp.name)
                if sp is None or sp.annotation is None or not dp.type:
                    continue
                doc_type = re.split(r",\s*(?:optional|default)", dp.type, maxsplit=1)[0]
                documented = _type_words(doc_type.replace("`", "").replace("*", ""))
                annotated_text = ctx.module.code_for_node(sp.annotation.annotation)
                annotated = _type_words(annotated_text)
                if not documented or not annotated or documented & annotated:
                    continue
                if "callable" in documented | annotated:  # classes and modules are callables too
                    continue
                if any((a, b) in _TYPE_COMPAT for a in annotated for b in documented):
                    continue
                line, col = _doc_pos(ctx, t.doc, dp.line, dp.col)
                out.append(_finding(ctx, self.code, line, col,
                                    f"docstring of {_what(t.d)} documents `{dp.name}` as {doc_type.strip()}, but "
                                    f"it is annotated {annotated_text.strip()}: one of them is stale"))
        return out


# ---------------------------------------------------------------------------------------
# MLC120, MLC121: returns and yields
# ---------------------------------------------------------------------------------------

class _BodyFacts(cst.CSTVisitor):
    """Return/yield facts of one function body, not looking into nested scopes."""

    def __init__(self) -> None:
        super().__init__()
        self.returns_value = False
        self.yields = False

    def visit_FunctionDef(self, node: Any) -> bool:
        return False

    def visit_ClassDef(self, node: Any) -> bool:
        return False

    def visit_Lambda(self, node: Any) -> bool:
        return False

    def visit_Return(self, node: Any) -> None:
        if node.value is not None and not (isinstance(node.value, cst.Name) and node.value.value == "None"):
            self.returns_value = True

    def visit_Yield(self, node: Any) -> None:
        self.yields = True


def _body_facts(d: _Def) -> _BodyFacts:
    facts = _BodyFacts()
    body = d.node.body
    for stmt in getattr(body, "body", ()):
        stmt.visit(facts)
    return facts


def _is_stub(d: _Def) -> bool:
    """A body that is only a docstring, ``pass``, ``...`` or ``raise``: an interface to override."""
    body = d.node.body
    stmts = list(body.body) if isinstance(body, cst.IndentedBlock) else [body]
    for stmt in stmts:
        smalls = stmt.body if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)) else None
        if smalls is None:
            return False
        for small in smalls:
            if isinstance(small, (cst.Pass, cst.Raise)):
                continue
            if isinstance(small, cst.Expr) and isinstance(small.value, (cst.SimpleString, cst.ConcatenatedString,
                                                                        cst.Ellipsis)):
                continue
            if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call) and _STUB_CALL_RE.search(
                    _dotted(small.value.func).rsplit(".", 1)[-1]):
                continue  # a hook to override that only warns: "`training_step` must be implemented"
            return False
    return True


_STUB_CALL_RE = re.compile(r"warn|deprecat|not_?implemented", re.I)


def _function_targets(fd: _FileDocs) -> Iterator[_Def]:
    for d in fd.defs:
        if d.kind != "function" or d.doc is None or d.generated_doc or d.overload or d.accessor:
            continue
        if d.doc.parsed.style == "none" or d.abstract or _is_stub(d):
            continue
        yield d


@register
class ReturnsSectionWithoutReturn(Rule):
    """A Returns or Yields section on a function that never returns or yields a value.

    What it does:
        Reports a documented ``Returns`` (or ``:returns:``) on a function whose body
        has no ``return <value>`` and no ``yield``, and a ``Yields`` section on a
        function that never yields. Nested functions' returns do not count. Abstract
        methods and stubs (only ``pass``, ``...``, ``raise`` or a warning call, as in a
        hook meant to be overridden), a Returns section
        saying ``None`` and generators documented with Returns are not reported.

    Why is this bad?
        The function was changed to work in place (``normalize_(x)``) or to write to a
        file, but callers are told to use a return value that is now ``None``.

    Example:
        ```python
        def normalize_(x):
            \"\"\"Normalise in place.

            Returns:
                The normalised tensor.
            \"\"\"
            x.sub_(x.mean()).div_(x.std())
        ```

    Use instead:
        ```python
        def normalize_(x):
            \"\"\"Normalise ``x`` in place.\"\"\"
            x.sub_(x.mean()).div_(x.std())
        ```
    """

    code = "MLC120"
    name = "returns-section-without-return"
    summary = "a Returns/Yields section on a function that never returns or yields a value"
    default = "on"
    requires_text = ("eturn", "ield")

    def check(self, ctx: Any) -> Iterable[Finding]:
        """Yield a finding per Returns/Yields section the body does not honour.

        Args:
            ctx: The file's context.

        Returns:
            The findings.
        """
        out = []
        for d in _function_targets(_analysis(ctx)):
            parsed = d.doc.parsed
            if parsed.returns_line is None and parsed.yields_line is None:
                continue
            facts = _body_facts(d)
            if parsed.returns_line is not None and not facts.returns_value and not facts.yields \
                    and not parsed.returns_text.strip().strip("`*:").lower().startswith("none"):
                line, col = _doc_pos(ctx, d.doc, parsed.returns_line, 0)
                col = _lead_col(d.doc, parsed.returns_line, col)
                out.append(_finding(ctx, self.code, line, col,
                                    f"docstring of {_what(d)} has a Returns section, but the function never "
                                    "returns a value (callers get None): remove the section or return the value"))
            if parsed.yields_line is not None and not facts.yields:
                line, col = _doc_pos(ctx, d.doc, parsed.yields_line, 0)
                col = _lead_col(d.doc, parsed.yields_line, col)
                out.append(_finding(ctx, self.code, line, col,
                                    f"docstring of {_what(d)} has a Yields section, but the function never "
                                    "yields: it is not a generator; document what it returns instead"))
        return out


def _lead_col(doc: _Doc, raw_line: int, col: int) -> int:
    if not doc.exact:
        return col
    lines = doc.raw.splitlines()
    if raw_line < len(lines) and raw_line > 0:
        return len(lines[raw_line]) - len(lines[raw_line].lstrip())
    return col


@register
class ReturnWithoutReturnsSection(Rule):
    """A function returns a value but its sectioned docstring has no Returns section.

    What it does:
        Reports a function that has ``return <value>``, is not a generator, and whose
        docstring has sections (``Args:``, ``Parameters``, ``:param:``...) but no
        Returns, Yields or ``:rtype:``. Properties, ``__init__`` and other magic
        methods are skipped.

    Why is this bad?
        A docstring that documents every argument but not the result leaves the most
        important part (shape, dtype, units of what comes back) to guesswork.

    Example:
        ```python
        def iou(a, b):
            \"\"\"Intersection over union.

            Args:
                a: Boxes (N, 4).
                b: Boxes (M, 4).
            \"\"\"
            return box_iou(a, b)
        ```

    Use instead:
        ```python
        def iou(a, b):
            \"\"\"Intersection over union.

            Args:
                a: Boxes (N, 4).
                b: Boxes (M, 4).

            Returns:
                IoU matrix (N, M).
            \"\"\"
            return box_iou(a, b)
        ```
    """

    code = "MLC121"
    name = "return-without-returns-section"
    summary = "a function returns a value but its sectioned docstring has no Returns"
    default = "off"
    requires_text = ("return",)

    def check(self, ctx: Any) -> Iterable[Finding]:
        """Yield a finding per sectioned docstring missing its Returns section.

        Args:
            ctx: The file's context.

        Returns:
            The findings.
        """
        out = []
        for d in _function_targets(_analysis(ctx)):
            parsed = d.doc.parsed
            if d.is_property or d.name.startswith("__"):
                continue
            if parsed.returns_line is not None or parsed.yields_line is not None or parsed.rtype:
                continue
            facts = _body_facts(d)
            if facts.returns_value and not facts.yields:
                out.append(_at_name(ctx, d, self.code,
                                    f"{_what(d)} returns a value, but its docstring has no Returns section: "
                                    "document what it returns (shape, dtype, meaning)"))
        return out


# ---------------------------------------------------------------------------------------
# MLC150: tensor shapes
# ---------------------------------------------------------------------------------------

_ARRAY_ANNOTATION_RE = re.compile(r"\b(?:\w*Tensor|ndarray|NDArray|ArrayLike|Array)\b")
_SHAPE_RE = re.compile(
    r"shape|dimension|\bdims?\b|\bndim\b|\brank\b|"
    r"[(\[]\s*[A-Za-z_*.\d][\w*.+\- ]*\s*,[^()\[\]\n]*[)\]]|"
    r"[(\[]\s*[A-Za-z_]\w*\s*,?\s*[)\]]|\bscalar\b", re.I)


@register
class TensorShapesUndocumented(Rule):
    """A public function annotated with tensors or arrays does not state their shapes.

    What it does:
        Reports a public, documented function whose parameter or return annotations
        mention ``Tensor``, ``ndarray``, ``NDArray`` or ``ArrayLike`` while its
        docstring states no shape: no word "shape"/"dimension", and no shape tuple
        such as ``(N, C, H, W)`` or ``[B, T]``. Annotations that carry shapes
        themselves (jaxtyping strings such as ``Float[Tensor, "b c"]``) count as
        stated.

    Why is this bad?
        Most silent ML bugs are shape bugs: a ``(B, T, C)`` tensor passed where
        ``(T, B, C)`` is expected broadcasts or transposes without an error.

    Example:
        ```python
        def attention(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            \"\"\"Scaled dot-product attention scores.\"\"\"
        ```

    Use instead:
        ```python
        def attention(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            \"\"\"Scaled dot-product attention scores.

            Args:
                q: Queries (B, H, T, D).
                k: Keys (B, H, S, D).

            Returns:
                Scores (B, H, T, S).
            \"\"\"
        ```
    """

    code = "MLC150"
    name = "tensor-shapes-undocumented"
    summary = "a public function annotated with tensors or arrays does not state their shapes"
    default = "off"
    requires_text = ("Tensor", "ndarray", "NDArray", "ArrayLike", "Array")

    def check(self, ctx: Any) -> Iterable[Finding]:
        """Yield a finding per public tensor-typed function whose docstring states no shape.

        Args:
            ctx: The file's context.

        Returns:
            The findings.
        """
        out = []
        for d in _analysis(ctx).defs:
            if d.kind != "function" or not d.public or d.doc is None or d.generated_doc or d.overload:
                continue
            if d.name.startswith("__") and d.name != "__init__":
                continue
            annotations = [p.annotation for p in d.params or () if p.annotation is not None]
            if d.node.returns is not None:
                annotations.append(d.node.returns)
            texts = [ctx.module.code_for_node(a.annotation) for a in annotations]
            array_texts = [t for t in texts if _ARRAY_ANNOTATION_RE.search(t)]
            if not array_texts or any(re.search(r"[\"']", t) for t in array_texts):
                continue
            if _SHAPE_RE.search(d.doc.raw):
                continue
            out.append(_at_name(ctx, d, self.code,
                                f"{_what(d)} takes or returns {array_texts[0].strip()} but its docstring states "
                                "no shape: document each tensor's shape, e.g. `x: Input (B, C, H, W).`"))
        return out


# ---------------------------------------------------------------------------------------
# MLC130: coverage
# ---------------------------------------------------------------------------------------

@register
class DocstringCoverage(ProjectRule):
    """Project docstring coverage is below the ``docstring-coverage`` threshold.

    What it does:
        Counts public modules, classes, functions and methods (the same public-API
        policy as MLC101-MLC103, methods inheriting a project base class's
        documentation counted as documented), and reports once when the percentage
        with a docstring is below ``docstring-coverage`` (default 80). The finding
        names the percentage and the least documented files, and sits on line 1 of
        the worst one.

    Why is this bad?
        Coverage is the trend to watch on a growing model zoo: a team that lets it
        slide ends up with modules nobody but their author can safely change.

    Example:
        ```toml
        [tool.mlcheck.lint]
        extend-select = ["MLC130"]
        docstring-coverage = 90
        ```

    Use instead:
        Document the files the finding lists first; they are the least covered.
    """

    code = "MLC130"
    name = "docstring-coverage"
    summary = "project docstring coverage is below docstring-coverage"
    default = "off"

    def collect(self, ctx: Any) -> Any:
        """Return the file's public-object counts and the facts to resolve inherited docs.

        Args:
            ctx: The file's context.

        Returns:
            JSON-serialisable facts.
        """
        return _api_facts(ctx)

    def check_project(self, project: Any) -> Iterable[Finding]:
        """Yield one finding when coverage is below the threshold.

        Args:
            project: The project's context.

        Returns:
            The findings (at most one).
        """
        facts = project.facts.get(self.code, {})
        total = documented = 0
        per_file = []
        for path, f in facts.items():
            if not f or not f["public"]:
                continue
            inherited = sum(1 for item in f["missing"]
                            if item["class"] and _inherits_doc(project, self.code, path, item))
            docs = f["documented"] + inherited
            total += f["public"]
            documented += docs
            per_file.append((docs / f["public"], -(f["public"] - docs), path, f["public"] - docs))
        if not total:
            return []
        percent = 100.0 * documented / total
        threshold = float(project.settings.docstring_coverage)
        if percent >= threshold:
            return []
        per_file.sort()
        worst = [x for x in per_file if x[3]][:5]
        listing = ", ".join(f"{p} ({100 * r:.0f}%, {n} undocumented)" for r, _, p, n in worst)
        path = worst[0][2] if worst else per_file[0][2]
        return [Finding(self.code, f"docstring coverage is {percent:.1f}% ({documented} of {total} public "
                        f"modules, classes and functions), below the {threshold:g}% threshold "
                        f"(docstring-coverage); least documented files: {listing}", 1, 0, 1, 0, path=path)]


# ---------------------------------------------------------------------------------------
# MLC140, MLC141: README and docs code blocks
# ---------------------------------------------------------------------------------------

def _callable_facts(node: Any, drop_first: bool) -> dict[str, Any]:
    params = _signature(node, drop_first)
    return {"params": [p.name for p in params if p.kind in ("normal", "kwonly", "field")],
            "kwargs": any(p.kind == "starstar" for p in params)}


def _module_facts(ctx: Any) -> dict[str, Any]:
    """Top-level names a module defines or imports, with call signatures where known.

    MLC140 and MLC141 both need these facts; they are computed once per file context.
    """
    cached = getattr(ctx, "_mlc14x_module_facts", None)
    if cached is None:
        cached = _compute_module_facts(ctx)
        ctx._mlc14x_module_facts = cached
    return cached


def _compute_module_facts(ctx: Any) -> dict[str, Any]:
    names: dict[str, Any] = {}
    imports: dict[str, str] = {}
    star: list[str] = []
    dynamic = False

    def visit(stmts: Iterable[Any]) -> None:
        nonlocal dynamic
        for stmt in stmts:
            if isinstance(stmt, cst.FunctionDef):
                if stmt.name.value == "__getattr__":
                    dynamic = True
                names[stmt.name.value] = {"kind": "function", **_callable_facts(stmt, False)}
            elif isinstance(stmt, cst.ClassDef):
                names[stmt.name.value] = _class_facts(stmt)
            elif isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    _bind_small(small, names, imports, star)
            elif isinstance(stmt, cst.BaseCompoundStatement):
                for suite in _suites(stmt):
                    visit(suite.body)

    visit(ctx.module.body)
    # Lazy packages (transformers' _LazyModule, globals() updates) define names at run time.
    dynamic = dynamic or bool(_DYNAMIC_MODULE_RE.search(ctx.source))
    return {"names": names, "imports": imports, "star": star, "dynamic": dynamic}


_DYNAMIC_MODULE_RE = re.compile(r"sys\.modules\[\s*__name__\s*\]\s*=|globals\(\)\s*(?:\[|\.update)|_LazyModule")


def _class_facts(node: Any) -> dict[str, Any]:
    body = node.body.body if isinstance(node.body, cst.IndentedBlock) else ()
    decorators = {_dotted(d.decorator) for d in node.decorators}
    bases = [_dotted(a.value) for a in node.bases if a.keyword is None]
    methods: dict[str, Any] = {}
    attrs: list[str] = []
    init = None
    for stmt in body:
        if isinstance(stmt, cst.FunctionDef):
            last = {_dotted(d.decorator).rsplit(".", 1)[-1] for d in stmt.decorators}
            facts = _callable_facts(stmt, drop_first="staticmethod" not in last)
            methods[stmt.name.value] = facts
            if stmt.name.value == "__init__":
                init = facts
        elif isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
                    attrs.append(small.target.value)
                elif isinstance(small, cst.Assign):
                    attrs += [t.target.value for t in small.targets if isinstance(t.target, cst.Name)]
    if init is None and decorators & _DATACLASS_DECORATORS and not bases:
        fields = _fields(body)
        init = {"params": [f.name for f in fields], "kwargs": False}
    if init is not None and (bases and "__init__" not in methods):
        init = None
    return {"kind": "class", "init": init, "methods": methods, "attrs": attrs, "closed": not bases}


def _bind_small(small: Any, names: dict[str, Any], imports: dict[str, str], star: list[str]) -> None:
    if isinstance(small, cst.Import):
        for alias in small.names:
            dotted = _dotted(alias.name)
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                imports[alias.asname.name.value] = dotted
            else:
                imports.setdefault(dotted.split(".")[0], dotted.split(".")[0])
    elif isinstance(small, cst.ImportFrom):
        module = ("." * len(small.relative)) + (_dotted(small.module) if small.module is not None else "")
        if isinstance(small.names, cst.ImportStar):
            star.append(module)
            return
        for alias in small.names:
            name = _dotted(alias.name)
            bound = alias.asname.name.value if alias.asname is not None and isinstance(
                alias.asname.name, cst.Name) else name
            imports[bound] = f"{module}:{name}"
    elif isinstance(small, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
        targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
        for target in targets:
            for n in _target_names(target):
                names.setdefault(n, {"kind": "value"})


def _target_names(target: Any) -> Iterator[str]:
    if isinstance(target, cst.Name):
        yield target.value
    elif isinstance(target, (cst.Tuple, cst.List)):
        for el in target.elements:
            yield from _target_names(el.value)


class _Project:
    """The project's modules by dotted name, built from MLC140/MLC141 facts."""

    def __init__(self, project: Any, code: str) -> None:
        self.facts = project.facts.get(code, {})
        self.modules: dict[str, dict[str, Any]] = {}
        paths = set(project.files) | set(self.facts)
        for path in paths:
            dotted = _module_name(path, paths)
            if dotted and self.facts.get(path) is not None:
                self.modules[dotted] = self.facts[path]
        self.packages = set(project.settings.packages) or {m.split(".")[0] for m in self.modules}

    def module(self, dotted: str) -> dict[str, Any] | None:
        return self.modules.get(dotted)

    def lookup(self, module: str, name: str, depth: int = 0) -> tuple[str, Any]:
        """Resolve ``module.name``: ``("module", dotted)``, ``("def", facts)``, ``("unknown", None)``
        or ``("missing", None)``."""
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
            mod = _resolve_relative(module, mod, self._is_package(module))
            if mod is None:
                return "unknown", None
            return self.lookup(mod, attr, depth + 1)
        if sub in self.modules:
            return "module", sub
        if facts["dynamic"]:
            return "unknown", None
        for star_mod in facts["star"]:
            mod = _resolve_relative(module, star_mod, self._is_package(module))
            if mod is None or mod not in self.modules:
                return "unknown", None
            kind, value = self.lookup(mod, name, depth + 1)
            if kind != "missing":
                return kind, value
        return "missing", None

    def _is_package(self, module: str) -> bool:
        return any(m.startswith(module + ".") for m in self.modules)


def _resolve_relative(module: str, target: str, is_package: bool) -> str | None:
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


def _module_name(path: str, paths: set[str]) -> str | None:
    """Dotted module name of a project file: rooted at its outermost package directory."""
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


_FENCE_RE = re.compile(r"^([ \t]*)(`{3,}|~{3,})[ \t]*\{?\.?([A-Za-z0-9_+-]*)\}?[^\n]*$")
_RST_DIRECTIVE_RE = re.compile(r"^([ \t]*)\.\.\s+(?:code-block|code|sourcecode)::\s*(python3?|py|pycon|ipython3?)\s*$")


def _doc_files(project: Any) -> list[str]:
    root = project.root
    out = []
    for name in ("README.md", "README.rst"):
        if (root / name).is_file():
            out.append(name)
    docs = root / "docs"
    if docs.is_dir():
        for p in sorted(docs.rglob("*")):
            if p.suffix in (".md", ".rst") and p.is_file() and not any(part.startswith(".") or part == "_build"
                                                                         for part in p.relative_to(root).parts):
                out.append(p.relative_to(root).as_posix())
    return out


def _code_blocks(text: str, rst: bool) -> Iterator[tuple[int, list[tuple[int, str]]]]:
    """Yield ``(first line, [(column offset, code line)])`` for each Python code block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if rst:
            m = _RST_DIRECTIVE_RE.match(lines[i])
            if not m:
                i += 1
                continue
            base = len(m.group(1).expandtabs(8))
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or lines[j].lstrip().startswith(":")
                                      and len(lines[j]) - len(lines[j].lstrip()) > base and j == i + 1):
                j += 1
            body: list[int] = []
            k = j
            while k < len(lines) and (not lines[k].strip() or len(lines[k].expandtabs(8)) - len(
                    lines[k].expandtabs(8).lstrip()) > base):
                body.append(k)
                k += 1
            indents = [len(lines[b]) - len(lines[b].lstrip()) for b in body if lines[b].strip()]
            cut = min(indents) if indents else 0
            yield j + 1, _prompts([(cut, lines[b][cut:]) for b in body], j + 1)
            i = k
            continue
        m = _FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(2), m.group(3).lower()
        indent = len(m.group(1))
        j = i + 1
        body = []
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(j)
            j += 1
        if lang in ("python", "py", "python3", "pycon", "ipython", "ipython3"):
            yield i + 2, _prompts([(min(indent, len(lines[b]) - len(lines[b].lstrip())),
                                    lines[b][min(indent, len(lines[b]) - len(lines[b].lstrip())):]) for b in body],
                                  i + 2)
        i = j + 1


def _prompts(block: list[tuple[int, str]], first: int) -> list[tuple[int, str]]:
    """Strip ``>>>``/``...`` prompts (dropping output lines) when the block is a console session."""
    del first
    if not any(line.lstrip().startswith(">>>") for _, line in block):
        return block
    out = []
    for col, line in block:
        stripped = line.lstrip()
        lead = len(line) - len(stripped)
        if stripped.startswith(">>> ") or stripped == ">>>":
            out.append((col + lead + 4, stripped[4:]))
        elif stripped.startswith("... ") or stripped == "...":
            out.append((col + lead + 4, stripped[4:]))
        else:
            out.append((col, ""))  # output line: keep numbering, drop the text
    return out


def _blank_shell(line: str) -> str:
    stripped = line.lstrip()
    return "" if stripped.startswith(("!", "%", "$ ")) else line


class _BlockRefs(cst.CSTVisitor):
    """Project imports, attribute chains and keyword calls in one code block."""

    METADATA_DEPENDENCIES = ()

    def __init__(self, packages: set[str]) -> None:
        super().__init__()
        self.packages = packages
        self.imports: list[tuple[Any, str, str | None]] = []  # node, module, name
        self.bound: dict[str, str] = {}  # local name -> "module" dotted or "module:name"
        self.chains: list[tuple[Any, list[str]]] = []
        self.calls: list[tuple[Any, list[str], list[tuple[Any, str]]]] = []

    def visit_Import(self, node: Any) -> None:
        for alias in node.names:
            dotted = _dotted(alias.name)
            if dotted.split(".")[0] not in self.packages:
                continue
            self.imports.append((alias.name, dotted, None))
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.bound[alias.asname.name.value] = dotted
            else:
                self.bound[dotted.split(".")[0]] = dotted.split(".")[0]

    def visit_ImportFrom(self, node: Any) -> None:
        if node.relative or node.module is None:
            return
        module = _dotted(node.module)
        if module.split(".")[0] not in self.packages:
            return
        self.imports.append((node.module, module, None))
        if isinstance(node.names, cst.ImportStar):
            return
        for alias in node.names:
            name = _dotted(alias.name)
            self.imports.append((alias.name, module, name))
            bound = alias.asname.name.value if alias.asname is not None and isinstance(
                alias.asname.name, cst.Name) else name
            self.bound[bound] = f"{module}:{name}"

    def visit_Attribute(self, node: Any) -> bool:
        chain = _chain(node)
        if chain and chain[0] in self.bound:
            self.chains.append((node, chain))
            return False
        return True

    def visit_Call(self, node: Any) -> None:
        chain = _chain(node.func)
        if chain and chain[0] in self.bound:
            kws = [(a.keyword, a.keyword.value) for a in node.args if a.keyword is not None]
            if kws and not any(a.star == "**" for a in node.args):
                self.calls.append((node, chain, kws))


def _chain(node: Any) -> list[str] | None:
    parts = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        parts.append(node.value)
        return parts[::-1]
    return None


def _resolve_chain(proj: _Project, bound: str, rest: list[str]) -> tuple[str, Any, str]:
    """Resolve a bound name plus attributes; returns (kind, facts, dotted name reached)."""
    if ":" in bound:
        module, _, name = bound.partition(":")
        kind, value = proj.lookup(module, name)
        where = f"{module}.{name}"
    else:
        kind, value, where = ("module", bound, bound) if bound in proj.modules else ("unknown", None, bound)
    for attr in rest:
        if kind == "module":
            kind, value = proj.lookup(value, attr)
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


def _block_findings(project: Any, code: str, want: str) -> list[Finding]:
    proj = _Project(project, code)
    if not proj.modules:
        return []
    out: list[Finding] = []
    for rel in _doc_files(project):
        text = project.read_text(rel)
        if not text:
            continue
        for first, block in _code_blocks(text, rel.endswith(".rst")):
            source = "\n".join(_blank_shell(line) for _, line in block) + "\n"
            if not any(pkg in source for pkg in proj.packages):
                continue
            try:
                wrapper = cst.MetadataWrapper(cst.parse_module(source), unsafe_skip_copy=True)
            except Exception:  # pseudo-code or a console transcript: not checkable
                continue
            from libcst.metadata import PositionProvider

            refs = _BlockRefs(proj.packages)
            wrapper.module.visit(refs)
            positions = wrapper.resolve(PositionProvider)

            def at(node: Any, message: str) -> Finding:
                pos = positions[node]
                li = pos.start.line - 1
                col_off = block[li][0] if li < len(block) else 0
                return Finding(code, message, first + li, col_off + pos.start.column, first + li,
                               col_off + pos.start.column + (pos.end.column - pos.start.column
                                                             if pos.end.line == pos.start.line else 0),
                               path=rel)

            if want == "names":
                reported: set[str] = set()
                for node, module, name in refs.imports:
                    if name is None:
                        if module not in proj.modules and _module_prefix_known(proj, module):
                            key = module
                            if key not in reported:
                                reported.add(key)
                                out.append(at(node, f"code block imports `{module}`, but the project has no "
                                              f"such module: the example no longer runs; update it"))
                        continue
                    if module not in proj.modules:
                        continue
                    kind, _ = proj.lookup(module, name)
                    if kind == "missing" and f"{module}.{name}" not in reported:
                        reported.add(f"{module}.{name}")
                        out.append(at(node, f"code block imports `{name}` from `{module}`, which does not "
                                      f"define it: the example no longer runs; update it to the current API"))
                for node, chain in refs.chains:
                    kind, _, where = _resolve_chain(proj, refs.bound[chain[0]], chain[1:])
                    if kind in ("missing", "missing-attr") and where not in reported:
                        reported.add(where)
                        out.append(at(node, f"code block uses `{'.'.join(chain)}`, but `{where}` does not "
                                      f"exist in the project: the example no longer runs; update it"))
            else:
                for node, chain, kws in refs.calls:
                    kind, value, where = _resolve_chain(proj, refs.bound[chain[0]], chain[1:])
                    sig = None
                    if kind == "def" and value.get("kind") == "function":
                        sig = value
                    elif kind == "def" and value.get("kind") == "class":
                        sig = value.get("init")
                    elif kind == "method":
                        sig = value
                    if not sig or sig["kwargs"]:
                        continue
                    for kw_node, kw in kws:
                        if kw not in sig["params"]:
                            accepted = ", ".join(sig["params"]) or "none"
                            out.append(at(kw_node, f"code block calls `{where}` with keyword `{kw}=`, which "
                                          f"its signature does not accept (keywords: {accepted}): the example "
                                          f"raises TypeError; update it"))
    return out


def _module_prefix_known(proj: _Project, module: str) -> bool:
    """Only report a missing module when its parent package is in the project and static."""
    parent = module.rsplit(".", 1)[0] if "." in module else None
    if parent is None:
        return False
    facts = proj.module(parent)
    if facts is None:
        return False
    name = module.rsplit(".", 1)[1]
    kind, _ = proj.lookup(parent, name)
    return kind == "missing"


@register
class ReadmeNameMissing(ProjectRule):
    """A Python code block in the README or docs references a project name that does not exist.

    What it does:
        Reads the ```` ```python ```` (and ``py``, ``pycon``) blocks of ``README.md``
        and ``docs/**/*.md``, and ``.. code-block:: python`` blocks of ``.rst`` files,
        without running them. It reports an ``import`` or ``from ... import`` of the
        project's own packages, or an attribute chain through them (``pkg.models.
        build``), that names a module, function or class the project no longer has.
        Modules with a module-level ``__getattr__`` and unresolvable star imports are
        treated as defining anything. Blocks that do not parse are skipped. The
        finding points at the markdown file and line.

    Why is this bad?
        The README is the first code users run. After a rename it fails on the first
        line, and users conclude the project is broken.

    Example:
        ```python
        from mypkg.models import build_resnet   # renamed to create_model
        ```

    Use instead:
        ```python
        from mypkg.models import create_model
        ```
    """

    code = "MLC140"
    name = "readme-name-missing"
    summary = "a README/docs code block references a project name that does not exist"
    default = "on"

    def collect(self, ctx: Any) -> Any:
        """Return the module's top-level names, imports and signatures.

        Args:
            ctx: The file's context.

        Returns:
            JSON-serialisable facts.
        """
        return _module_facts(ctx)

    def check_project(self, project: Any) -> Iterable[Finding]:
        """Yield a finding per stale project reference in README and docs code blocks.

        Args:
            project: The project's context.

        Returns:
            The findings.
        """
        return _block_findings(project, self.code, "names")


@register
class ReadmeBadKeyword(ProjectRule):
    """A README or docs code block calls a project callable with a keyword it does not accept.

    What it does:
        In the same code blocks as MLC140, resolves calls to the project's functions,
        classes (their ``__init__``, or a dataclass's fields) and class methods, and
        reports a keyword argument that is not in the signature. Callables taking
        ``**kwargs``, classes inheriting their ``__init__``, and calls with ``**opts``
        are not checked.

    Why is this bad?
        ``train(model, learning_rate=3e-4)`` in the README after the parameter became
        ``lr`` raises ``TypeError`` for every new user, and silently drops the value if
        the callable forwards unknown keywords.

    Example:
        ```python
        from mypkg import train
        train(model, learning_rate=3e-4)
        ```

    Use instead:
        ```python
        from mypkg import train
        train(model, lr=3e-4)
        ```
    """

    code = "MLC141"
    name = "readme-bad-keyword"
    summary = "a README/docs code block calls a project callable with an unknown keyword"
    default = "on"

    def collect(self, ctx: Any) -> Any:
        """Return the module's top-level names, imports and signatures.

        Args:
            ctx: The file's context.

        Returns:
            JSON-serialisable facts.
        """
        return _module_facts(ctx)

    def check_project(self, project: Any) -> Iterable[Finding]:
        """Yield a finding per unknown keyword in a README or docs call.

        Args:
            project: The project's context.

        Returns:
            The findings.
        """
        return _block_findings(project, self.code, "keywords")
