"""The per-file analysis every documentation rule reads, built once from the ``ast`` tree.

:func:`file_docs` walks the statements of a file (never expressions), finds every
function and class, parses each docstring in the configured convention and decides
what is public. It is kept in the file's memo (``ctx.cache``), so the module is walked
once whatever documentation rules are on, and no concrete (libcst) tree is needed:
findings and fixes are computed from ``ast`` positions and the source text.

What counts as public API (option ``public-api``):

* a name without a leading underscore, in a module whose path has none (test modules,
  ``test_*.py``, ``*_test.py``, ``conftest.py`` and anything under ``tests/``, are not
  API);
* where a module defines a literal ``__all__``, only the names it lists;
* ``@typing.overload`` stubs, property setters and deleters, nested functions and magic
  methods other than ``__init__`` are exempt;
* an object whose documentation is generated at run time (a decorator whose name
  mentions ``doc``, such as ``add_start_docstrings``, or an ``X.__doc__ = ...``
  assignment) is skipped by every documentation rule.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from typing import Any, Iterable, Iterator

from ...api import Finding, Rule
from ...docstrings import DocParam, Docstring, literal_value, parse_docstring
from ...project_index import DATACLASS_DECORATORS, dotted, suites

STAR_KINDS = ("star", "starstar")
_NESTED_CLASS_EXEMPT = {"Meta", "Config"}
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
#: ``async def name`` / ``def name`` / ``class name``, with line continuations.
_DEF_HEAD = re.compile(r"(?:async(?:[ \t\f]|\\\r?\n|\\\r)+)?(?:def|class)(?:[ \t\f]|\\\r?\n|\\\r)+")
_NAME = re.compile(r"\w+")


@dataclasses.dataclass
class SigParam:
    """One parameter of a signature (or a dataclass field)."""

    name: str
    kind: str  # posonly, normal, star, kwonly, starstar, field
    default: Any = None  # ast expression
    annotation: Any = None  # ast expression


@dataclasses.dataclass
class Doc:
    """A docstring with the information needed to map its raw text back into the file."""

    node: Any
    raw: str
    parsed: Docstring
    exact: bool  # raw text positions map one-to-one onto the file
    fixable: bool  # safe to edit inside (triple-quoted, no escapes)
    quote: str
    prefix: str = ""
    inner: tuple[int, int] | None = None  # file (line, col) where the raw text starts


@dataclasses.dataclass
class Def:
    """One function or class, with its docstring and what the rules decide about it."""

    kind: str  # function or class
    node: Any
    name: str
    qualname: str
    scope: str  # module, class or function
    public: bool
    decorators: list[str]
    doc: Doc | None
    params: list[SigParam] | None = None
    partial: bool = False  # params may be incomplete (inherited dataclass fields)
    owner: "Def | None" = None
    init: "Def | None" = None  # for classes: their __init__
    bases: list[str] = dataclasses.field(default_factory=list)
    generated_doc: bool = False
    overload: bool = False
    accessor: bool = False  # property setter or deleter
    is_property: bool = False
    is_static: bool = False
    abstract: bool = False


def _first_string(body: list[Any]) -> Any:
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, (str, bytes)):
        return body[0].value
    return None


def is_test_module(path: str) -> bool:
    """Whether a path is a test module (``test_*.py``, ``conftest.py``, under ``tests/``).

    Args:
        path: Project-relative path.

    Returns:
        Whether its names are not API.
    """
    parts = path.replace("\\", "/").split("/")
    base = parts[-1]
    return (base.startswith("test_") or base.endswith("_test.py") or base == "conftest.py"
            or any(p in ("tests", "test", "testing") for p in parts[:-1]))


def module_is_public(path: str) -> bool:
    """Whether no component of a path starts with an underscore (``__init__`` aside).

    Args:
        path: Project-relative path.

    Returns:
        Whether the module is public.
    """
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
        value = None
        if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in stmt.targets):
            value, names = stmt.value, set()
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) \
                and stmt.target.id == "__all__" and stmt.value is not None:
            value, names = stmt.value, set()
        elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name) \
                and stmt.target.id == "__all__" and names is not None:
            value = stmt.value
        if value is None:
            continue
        listed = literal_value(value)
        if not isinstance(listed, tuple) or not all(isinstance(x, str) for x in listed):
            return None  # built dynamically: fall back to the underscore rule
        names |= set(listed)
    return names


class FileDocs:
    """Every definition of one file, with its docstring parsed and its publicness decided.

    Args:
        ctx: The file's context.
    """

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.convention = ctx.option("docstring-convention")
        policy = ctx.option("public-api")
        self.is_test = is_test_module(ctx.path)
        self.module_public = (policy == "all" or module_is_public(ctx.path)) and not self.is_test
        self.all_names = _literal_all(ctx.tree) if policy == "auto" else None
        self.policy = policy
        self.generated: set[str] = set()
        if "__doc__" in ctx.source:
            for m in re.finditer(r"([A-Za-z_][\w.]*)\.__doc__\s*(?:\+?=)", ctx.source):
                self.generated.add(m.group(1).split(".")[-1])
        self.module_doc = self._doc(ctx.tree)
        self.defs: list[Def] = []
        self._walk(ctx.tree.body, "module", None, "")

    # -- docstrings -----------------------------------------------------------------
    def _doc(self, owner: Any) -> Doc | None:
        node = _first_string(owner.body)
        if node is None or not isinstance(node.value, str):
            return None  # bytes
        text = self.ctx.segment(node)
        prefix, quote, single = _literal_shape(text)
        if single:
            raw = text[len(prefix) + len(quote):len(text) - len(quote)]
            if "\r" in raw:
                # Python ends lines at \r\n, \r or \n; the docstring parser reads \n. One
                # break stays one break, so raw lines and columns still map onto the file.
                raw = raw.replace("\r\n", "\n").replace("\r", "\n")
            # Positions map one-to-one onto the file; edits only where no escape can shift them.
            exact, fixable = True, len(quote) == 3 and "\\" not in raw
        else:
            raw, quote, prefix, exact, fixable = node.value, "", "", False, False
        try:
            parsed = parse_docstring(raw, self.convention)
        except Exception:  # a docstring we cannot read never breaks linting
            parsed = Docstring(style="none", text=raw)
        return Doc(node, raw, parsed, exact, fixable, quote, prefix)

    # -- walking ----------------------------------------------------------------------
    def _walk(self, stmts: Iterable[Any], scope: str, owner: Def | None, prefix: str) -> None:
        for stmt in stmts:
            if isinstance(stmt, _FUNCTIONS):
                self._function(stmt, scope, owner, prefix)
            elif isinstance(stmt, ast.ClassDef):
                self._class(stmt, scope, owner, prefix)
            elif hasattr(stmt, "body") or hasattr(stmt, "cases"):
                for body in suites(stmt):
                    self._walk(body, scope, owner, prefix)

    def _top_public(self, name: str) -> bool:
        if not self.module_public:
            return False
        if self.policy == "all":
            return True
        if self.all_names is not None:
            return name in self.all_names
        return not name.startswith("_")

    def _function(self, node: Any, scope: str, owner: Def | None, prefix: str) -> None:
        name = node.name
        decorators = [dotted(d) for d in node.decorator_list]
        last = {d.rsplit(".", 1)[-1] for d in decorators}
        if scope == "module":
            public = self._top_public(name)
        elif scope == "class" and owner is not None:
            public = owner.public and (not name.startswith("_") or name == "__init__" or self.policy == "all")
        else:
            public = False
        is_static = "staticmethod" in last
        params = signature(node, drop_first=scope == "class" and not is_static)
        d = Def("function", node, name, prefix + name, scope, public, decorators, self._doc(node), params,
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
        self._walk(node.body, "function", d, prefix + name + ".")

    def _class(self, node: Any, scope: str, owner: Def | None, prefix: str) -> None:
        name = node.name
        decorators = [dotted(d) for d in node.decorator_list]
        if scope == "module":
            public = self._top_public(name)
        elif scope == "class" and owner is not None:
            public = owner.public and not name.startswith("_") and name not in _NESTED_CLASS_EXEMPT
        else:
            public = False
        d = Def("class", node, name, prefix + name, scope, public, decorators, self._doc(node), owner=owner)
        d.bases = class_bases(node)
        d.generated_doc = any("doc" in x.lower() for x in decorators) or name in self.generated
        self.defs.append(d)
        self._walk(node.body, "class", d, prefix + name + ".")
        if d.init is not None:
            d.params = d.init.params
        elif set(decorators) & DATACLASS_DECORATORS or any(b.rsplit(".", 1)[-1] == "NamedTuple" for b in d.bases):
            d.params = fields(node.body)
            d.partial = any(b.rsplit(".", 1)[-1] not in ("object", "NamedTuple", "Generic") for b in d.bases)


def class_bases(node: Any) -> list[str]:
    """Return the dotted names of a class's positional bases.

    Args:
        node: An ``ast.ClassDef``.

    Returns:
        The names (``""`` for a base that is not a dotted name).
    """
    return [dotted(b.value if isinstance(b, ast.Starred) else b) for b in node.bases]


def _literal_shape(text: str) -> tuple[str, str, bool]:
    """Return ``(prefix, quote, single)`` of a string literal's source text.

    ``single`` is false for implicitly concatenated literals (``"a" "b"``), whose raw
    text does not map onto the file one-to-one.
    """
    i = 0
    while i < len(text) and text[i] not in "'\"":
        i += 1
    prefix = text[:i]
    quote = text[i:i + 3] if text[i:i + 3] in ('"""', "'''") else text[i:i + 1]
    j = i + len(quote)
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if text.startswith(quote, j):
            return prefix, quote, j + len(quote) == len(text)
        j += 1
    return prefix, quote, False


def signature(node: Any, drop_first: bool) -> list[SigParam]:
    """Return a function's parameters in order (``self``/``cls`` dropped when asked).

    Args:
        node: An ``ast.FunctionDef`` or ``AsyncFunctionDef``.
        drop_first: Drop the first positional parameter (a method's ``self``).

    Returns:
        The parameters.
    """
    a = node.args
    positional = list(a.posonlyargs) + list(a.args)
    defaults: list[Any] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    out = [SigParam(p.arg, "posonly" if i < len(a.posonlyargs) else "normal", defaults[i], p.annotation)
           for i, p in enumerate(positional)]
    if drop_first and out:
        out = out[1:]
    if a.vararg is not None:
        out.append(SigParam(a.vararg.arg, "star", None, a.vararg.annotation))
    out += [SigParam(p.arg, "kwonly", d, p.annotation) for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    if a.kwarg is not None:
        out.append(SigParam(a.kwarg.arg, "starstar", None, a.kwarg.annotation))
    return out


_OBJECT = ast.Name(id="object", ctx=ast.Load())


def fields(body: Iterable[Any]) -> list[SigParam]:
    """Return the ``__init__`` parameters a dataclass, attrs class or NamedTuple body implies.

    Args:
        body: The class body's statements.

    Returns:
        The fields, as ``field`` parameters.
    """
    out = []
    for stmt in body:
        target = annotation = value = None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name) \
                and isinstance(stmt.value, ast.Call) \
                and dotted(stmt.value.func).rsplit(".", 1)[-1] in ("ib", "attrib", "field"):
            target, annotation, value = stmt.targets[0], _OBJECT, stmt.value  # attrs: ``x = attr.ib()``
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            target, annotation, value = stmt.target, stmt.annotation, stmt.value
        if target is None:
            continue
        if dotted(annotation).rsplit(".", 1)[-1] in ("ClassVar", "KW_ONLY"):
            continue
        if isinstance(value, ast.Call) and dotted(value.func).rsplit(".", 1)[-1] in ("field", "ib", "attrib") \
                and any(k.arg == "init" and isinstance(k.value, ast.Constant) and k.value.value is False
                        for k in value.keywords):
            continue
        out.append(SigParam(target.id, "field", value, annotation))
    return out


def file_docs(ctx: Any) -> FileDocs:
    """Return the file's documentation analysis, built once per file (``ctx.cache``).

    Args:
        ctx: The file's context.

    Returns:
        The analysis.
    """
    return ctx.cache("docs.analysis", lambda: FileDocs(ctx))


# ---------------------------------------------------------------------------------------
# Positions and small helpers
# ---------------------------------------------------------------------------------------

def doc_pos(ctx: Any, doc: Doc, line: int | None, col: int) -> tuple[int, int]:
    """Map a (line, col) of a docstring's raw text to the file; the docstring start otherwise.

    Args:
        ctx: The file's context.
        doc: The docstring.
        line: 0-based line in the raw text, or ``None`` (an entry spanning lines).
        col: Column in that line.

    Returns:
        ``(line, col)`` in the file.
    """
    if doc.inner is None:
        sl, sc, _, _ = ctx.position(doc.node)
        if doc.exact:
            sc += len(doc.prefix) + len(doc.quote)
        doc.inner = (sl, sc)
    sl, sc = doc.inner
    if not doc.exact or line is None:
        l0, c0, _, _ = ctx.position(doc.node)
        return l0, c0
    return sl + line, (sc + col) if line == 0 else col


def finding(ctx: Any, code: str, line: int, col: int, message: str, fix: Any = None,
            end: tuple[int, int] | None = None) -> Finding:
    """Return a finding at a file position.

    Args:
        ctx: The file's context.
        code: The rule code.
        line: 1-based line.
        col: 0-based column.
        message: What is wrong.
        fix: An optional fix.
        end: ``(end_line, end_col)``, else the start.

    Returns:
        The finding.
    """
    end_line, end_col = end if end else (line, col)
    return Finding(code=code, message=message, line=line, col=col, end_line=end_line, end_col=end_col,
                   fix=fix, path=ctx.path, cell=ctx.cell)


def name_position(ctx: Any, node: Any) -> tuple[int, int, int, int]:
    """Return the span of a function's or class's name (``ast`` gives only the keyword's).

    Args:
        ctx: The file's context.
        node: An ``ast`` function or class definition.

    Returns:
        ``(line, col, end_line, end_col)`` of the name.
    """
    lines = ctx.lines
    line, col, _, _ = ctx.position(node)
    start = lines.offset(line, col)
    head = _DEF_HEAD.match(ctx.source, start)
    at = head.end() if head else start
    word = _NAME.match(ctx.source, at)
    if word is None or word.group(0) != node.name:
        found = ctx.source.find(node.name, at)
        at = found if found >= 0 else at
    name_line, name_col = lines.position(at)
    return name_line, name_col, name_line, name_col + len(node.name)


def at_name(ctx: Any, d: Def, code: str, message: str) -> Finding:
    """Return a finding on a definition's name.

    Args:
        ctx: The file's context.
        d: The definition.
        code: The rule code.
        message: What is wrong.

    Returns:
        The finding.
    """
    line, col, end_line, end_col = name_position(ctx, d.node)
    return Finding(code=code, message=message, line=line, col=col, end_line=end_line, end_col=end_col,
                   path=ctx.path, cell=ctx.cell)


def code_text(ctx: Any, node: Any) -> str:
    """Return an expression's source text with the parentheses around it, as written.

    Args:
        ctx: The file's context.
        node: An ``ast`` expression with positions (a synthetic one gives its name).

    Returns:
        The text.
    """
    if getattr(node, "end_lineno", None) is None:
        return node.id if isinstance(node, ast.Name) else ""
    lines, source = ctx.lines, ctx.source
    line, col, end_line, end_col = ctx.position(node)
    start, end = lines.offset(line, col), lines.offset(end_line, end_col)
    # ast positions exclude redundant parentheses; the written default includes them.
    while True:
        before = start
        while before > 0 and source[before - 1] in " \t\r\n\f\\":
            before -= 1
        after = end
        while after < len(source) and source[after] in " \t\r\n\f\\":
            after += 1
        if before > 0 and after < len(source) and source[before - 1] == "(" and source[after] == ")":
            start, end = before - 1, after + 1
            continue
        return source[start:end]


def what(d: Def) -> str:
    """Return how a message names a definition: ``function `f```, ``method `C.m```...

    Args:
        d: The definition.

    Returns:
        The words.
    """
    if d.kind == "class":
        return f"class `{d.qualname}`"
    return f"{'method' if d.scope == 'class' else 'function'} `{d.qualname}`"


@dataclasses.dataclass
class Target:
    """One docstring checked against one parameter list."""

    d: Def
    doc: Doc
    params: list[SigParam]
    partial: bool
    also_documented: set[str]  # documented in the companion docstring (class <-> __init__)


def _sectioned_defs(fd: FileDocs) -> Iterator[Def]:
    """Yield the definitions whose own docstring the rules read: written out, not an
    overload stub or an accessor, and in a convention with sections."""
    for d in fd.defs:
        if d.doc is not None and not d.generated_doc and not d.overload and not d.accessor \
                and d.doc.parsed.style != "none":
            yield d


def targets(fd: FileDocs) -> Iterator[Target]:
    """Yield every sectioned docstring with the parameter list it documents.

    Args:
        fd: The file's analysis.

    Returns:
        An iterator of targets.
    """
    for d in _sectioned_defs(fd):
        if d.params is None:
            continue
        other: Doc | None = None
        if d.kind == "class" and d.init is not None:
            other = d.init.doc
        elif d.kind == "function" and d.name == "__init__" and d.owner is not None and d.owner.kind == "class":
            other = d.owner.doc
        also = {p.name for p in other.parsed.params} if other is not None else set()
        yield Target(d, d.doc, d.params, d.partial, also)


def signature_pairs(t: Target) -> Iterator[tuple[DocParam, SigParam]]:
    """Yield each documented parameter of a target with the signature parameter of its name.

    Args:
        t: The target.

    Returns:
        An iterator of ``(documented, signature)`` pairs, in documented order; entries
        the signature does not have are left out.
    """
    sig = {p.name: p for p in t.params}
    for dp in t.doc.parsed.params:
        sp = sig.get(dp.name)
        if sp is not None:
            yield dp, sp


def param_line_text(doc: Doc, p: DocParam) -> str:
    """Return the raw docstring line a documented parameter sits on.

    Args:
        doc: The docstring.
        p: The parameter entry.

    Returns:
        The line ("" when out of range).
    """
    lines = doc.raw.splitlines()
    return lines[p.line] if p.line < len(lines) else ""


# ---------------------------------------------------------------------------------------
# Function bodies
# ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class BodyFacts:
    """What a function body does directly (nested functions, classes, lambdas aside)."""

    returns_value: bool = False
    yields: bool = False
    raises: list[Any] = dataclasses.field(default_factory=list)  # ast.Raise nodes


def body_facts(ctx: Any, d: Def) -> BodyFacts:
    """Return a function's return/yield/raise facts, computed once per function.

    Args:
        ctx: The file's context.
        d: The function.

    Returns:
        The facts.
    """
    return ctx.cache(("docs.body", id(d.node)), lambda: _body_facts(d.node))


def _body_facts(node: Any) -> BodyFacts:
    facts = BodyFacts()
    stack = list(reversed(node.body))
    while stack:
        item = stack.pop()
        if isinstance(item, _SCOPES):
            continue
        if isinstance(item, ast.Return):
            value = item.value
            if value is not None and not (isinstance(value, ast.Constant) and value.value is None):
                facts.returns_value = True
        elif isinstance(item, (ast.Yield, ast.YieldFrom)):
            facts.yields = True
        elif isinstance(item, ast.Raise):
            facts.raises.append(item)
        children = list(ast.iter_child_nodes(item))
        children.reverse()
        stack.extend(children)
    return facts


_STUB_CALL_RE = re.compile(r"warn|deprecat|not_?implemented", re.I)


def is_stub(d: Def) -> bool:
    """A body that is only a docstring, ``pass``, ``...`` or ``raise``: an interface to override.

    Args:
        d: The function.

    Returns:
        Whether it is a stub.
    """
    for stmt in d.node.body:
        if isinstance(stmt, (ast.Pass, ast.Raise)):
            continue
        if isinstance(stmt, ast.Expr):
            value = stmt.value
            if isinstance(value, ast.Constant) and (isinstance(value.value, (str, bytes)) or value.value is ...):
                continue
            if isinstance(value, ast.Call) and _STUB_CALL_RE.search(dotted(value.func).rsplit(".", 1)[-1]):
                continue  # a hook to override that only warns: "`training_step` must be implemented"
        return False
    return True


def function_targets(fd: FileDocs) -> Iterator[Def]:
    """Yield the documented, sectioned, concrete functions (what the return rules check).

    Args:
        fd: The file's analysis.

    Returns:
        An iterator of definitions.
    """
    for d in _sectioned_defs(fd):
        if d.kind == "function" and not d.abstract and not is_stub(d):
            yield d


def lead_col(doc: Doc, raw_line: int, col: int) -> int:
    """Return the indentation of a raw docstring line (where a section header starts).

    Args:
        doc: The docstring.
        raw_line: 0-based line in its raw text.
        col: The column to keep when the line cannot be mapped.

    Returns:
        The column.
    """
    if not doc.exact:
        return col
    lines = doc.raw.splitlines()
    if raw_line < len(lines) and raw_line > 0:
        return len(lines[raw_line]) - len(lines[raw_line].lstrip())
    return col


# ---------------------------------------------------------------------------------------
# Rule bases
# ---------------------------------------------------------------------------------------

class TargetRule(Rule):
    """A documentation rule checked docstring by docstring.

    ``check`` hands each :func:`targets` entry of the file (a docstring with the
    parameter list it documents) to ``_target_findings`` and returns the findings in
    order. :class:`FunctionRule` hands it the :func:`function_targets` instead.
    """

    def _targets(self, fd: FileDocs) -> Iterable[Any]:
        """Return what ``check`` walks."""
        return targets(fd)

    def _target_findings(self, ctx: Any, t: Any) -> list[Finding]:
        """Return the findings of one target (override)."""
        raise NotImplementedError

    def check(self, ctx: Any) -> Iterable[Finding]:
        """Return the findings of every target of the file, in order.

        Args:
            ctx: The file's context.

        Returns:
            The findings.
        """
        out: list[Finding] = []
        for t in self._targets(file_docs(ctx)):
            out += self._target_findings(ctx, t)
        return out


class FunctionRule(TargetRule):
    """A :class:`TargetRule` over the documented concrete functions (:func:`function_targets`)."""

    def _targets(self, fd: FileDocs) -> Iterable[Any]:
        """Return what ``check`` walks."""
        return function_targets(fd)
