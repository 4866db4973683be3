"""MLC160-MLC162: a Raises section against the exceptions a function raises directly.

The three rules share one ``collect`` (per function: the documented exceptions, the
exceptions raised directly, positions) and one class index, so an exception matches a
documented one through the class hierarchy of the builtins and of every class defined
in the project (``raise ShapeError`` is documented by ``ValueError`` when
``class ShapeError(ValueError)`` is defined anywhere in the linted files).

"Directly" means a ``raise`` statement in the function's own body: not in a nested
function, class or lambda, and not a re-raise (bare ``raise``, or ``raise err`` of the
name an enclosing ``except ... as err`` bound). A raise of anything else than a class
name or a call of one (``raise self.error()``) is opaque: the rules then cannot know
what is raised and stay quiet about that function's undocumented exceptions.
"""

from __future__ import annotations

import ast
import builtins
from typing import Any, Iterable

from ...api import Finding, ProjectRule, register
from .analysis import class_bases, doc_pos, file_docs, name_position, what

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def _raised(node: Any) -> tuple[list[tuple[Any, str]], bool]:
    """Return ``([(exc node, class name)], opaque)`` for a function's direct raises."""
    found: list[tuple[Any, str]] = []
    opaque = False
    stack: list[tuple[Any, frozenset[str]]] = [(stmt, frozenset()) for stmt in reversed(node.body)]
    while stack:
        item, bound = stack.pop()
        if isinstance(item, _SCOPES):
            continue
        if isinstance(item, ast.Raise):
            exc = item.exc
            target = exc.func if isinstance(exc, ast.Call) else exc
            if exc is None or (isinstance(target, ast.Name) and target.id in bound):
                opaque = True  # a re-raise: it propagates whatever was raised elsewhere
            elif isinstance(target, (ast.Name, ast.Attribute)):
                name = target.id if isinstance(target, ast.Name) else target.attr
                if name[:1].isupper():
                    found.append((exc, name))
                else:
                    opaque = True  # ``raise err`` of some variable, ``raise self.error``
            else:
                opaque = True
        if isinstance(item, ast.ExceptHandler) and item.name:
            bound = bound | {item.name}
        children = list(ast.iter_child_nodes(item))
        for child in reversed(children):
            stack.append((child, bound))
    return found, opaque


def _facts(ctx: Any) -> dict[str, Any]:
    fd = file_docs(ctx)
    classes = {}
    functions = []
    for d in fd.defs:
        if d.kind == "class":
            classes[d.name] = [b.rsplit(".", 1)[-1] for b in class_bases(d.node) if b]
            continue
        if d.doc is None or d.generated_doc or d.overload:
            continue
        raised, opaque = _raised(d.node)
        parsed = d.doc.parsed
        documented = []
        for name, line, col in parsed.raises:
            file_line, file_col = doc_pos(ctx, d.doc, line, col)
            documented.append([name, file_line, file_col, file_col + len(name) if d.doc.exact else file_col])
        if not raised and not documented:
            continue
        name_line, name_col, _, name_end = name_position(ctx, d.node)
        functions.append({
            "what": what(d), "public": d.public, "section": "raises" in parsed.sections,
            "documented": documented, "opaque": opaque,
            "raised": [[name, *ctx.position(exc)] for exc, name in raised],
            "name": [name_line, name_col, name_end], "cell": ctx.cell})
    return {"classes": classes, "functions": functions}


def _ancestors(project: Any, code: str, name: str) -> set[str]:
    """Every class name ``name`` derives from: project classes by name, then builtins."""
    index = project.cache(("docs.exception-classes", code), lambda: _class_index(project, code))
    seen = {name}
    todo = [name]
    while todo:
        current = todo.pop()
        builtin = getattr(builtins, current, None)
        if isinstance(builtin, type) and issubclass(builtin, BaseException):
            for base in builtin.__mro__[1:]:
                if base.__name__ not in seen:
                    seen.add(base.__name__)
        for base in index.get(current, ()):
            if base not in seen:
                seen.add(base)
                todo.append(base)
    return seen


def _class_index(project: Any, code: str) -> dict[str, set[str]]:
    index: dict[str, set[str]] = {}
    for facts in project.facts.get(code, {}).values():
        for name, bases in (facts or {}).get("classes", {}).items():
            index.setdefault(name, set()).update(bases)
    return index


class _RaisesRule(ProjectRule):
    """What MLC160-MLC162 share: the facts they collect and the class index."""

    requires_text = ("raise",)

    def collect(self, ctx: Any) -> Any:
        """Return each documented function's documented and directly raised exceptions.

        Args:
            ctx: The file's context.

        Returns:
            JSON-serialisable facts (computed once per file for the three rules).
        """
        return ctx.cache("docs.raises", lambda: _facts(ctx))

    def check_project(self, project: Any) -> Iterable[Finding]:
        """Yield this rule's findings for every collected function.

        Args:
            project: The project's context.

        Returns:
            The findings.
        """
        out: list[Finding] = []
        for path in sorted(project.facts.get(self.code, {})):
            facts = project.facts[self.code][path] or {}
            for fn in facts.get("functions", ()):
                out.extend(self._function_findings(project, path, fn))
        return out

    def covers(self, project: Any, documented: str, raised: str) -> bool:
        """Whether documenting ``documented`` covers raising ``raised`` (same or a base).

        Args:
            project: The project's context.
            documented: A documented exception's class name.
            raised: A raised exception's class name.

        Returns:
            Whether it is covered.
        """
        return documented == raised or documented in _ancestors(project, self.code, raised)

    def _function_findings(self, project: Any, path: str, fn: dict[str, Any]) -> list[Finding]:
        """Return the findings of one function.

        Args:
            project: The project's context.
            path: The file.
            fn: The function's collected facts.

        Returns:
            The findings.
        """
        raise NotImplementedError


@register
class DocumentedExceptionNotRaised(_RaisesRule):
    """A documented exception is never raised by the function itself.

    What it does:
        Reports an exception listed in the Raises section (Google ``Raises:``, NumPy
        ``Raises``, Sphinx ``:raises X:``) that no ``raise`` statement of the function
        raises, itself or as a subclass (``raise ShapeError`` covers a documented
        ``ValueError`` when ``ShapeError`` derives from it, in the builtins or in the
        project). Functions that re-raise (bare ``raise``) or raise something the rule
        cannot name are skipped, as are stubs and abstract methods.

    Why is this bad?
        A documented ``ValueError`` that the code no longer raises (the check moved,
        or became an ``assert``) makes callers write ``except`` clauses for nothing
        and miss the exception that really comes.

    Example:
        ```python
        def load(path):
            \"\"\"Load a checkpoint.

            Raises:
                ValueError: If the file is not a checkpoint.
            \"\"\"
            return torch.load(path, weights_only=True)
        ```

    Use instead:
        ```python
        def load(path):
            \"\"\"Load a checkpoint.\"\"\"
            return torch.load(path, weights_only=True)
        ```
    """

    code = "MLC160"
    name = "documented-exception-not-raised"
    summary = "a documented exception is never raised by the function itself"
    default = "off"

    def _function_findings(self, project: Any, path: str, fn: dict[str, Any]) -> list[Finding]:
        """Return one finding per documented exception no direct raise covers."""
        if fn["opaque"]:
            return []
        raised = [r[0] for r in fn["raised"]]
        out = []
        for name, line, col, end_col in fn["documented"]:
            if any(self.covers(project, name, r) for r in raised):
                continue
            listed = ", ".join(f"`{r}`" for r in sorted(set(raised))) or "nothing"
            out.append(Finding(self.code, f"docstring of {fn['what']} documents raising `{name}`, but the "
                               f"function itself raises {listed}: remove the entry, or say which call "
                               f"raises it", line, col, line, end_col, path=path, cell=fn["cell"]))
        return out


@register
class RaisedExceptionNotDocumented(_RaisesRule):
    """An exception the function raises is missing from its Raises section.

    What it does:
        In a docstring that has a Raises section, reports each exception a ``raise``
        statement of the function raises directly (not re-raised, not in a nested
        function) that no documented exception covers, by name or through the class
        hierarchy of the builtins and of the project's classes.

    Why is this bad?
        A Raises section reads as the complete list. An exception missing from it is
        the one callers do not catch, and the run dies on it.

    Example:
        ```python
        def resize(img, size):
            \"\"\"Resize.

            Raises:
                ValueError: If ``size`` is not positive.
            \"\"\"
            if img.ndim != 3:
                raise TypeError("expected CHW")
            ...
        ```

    Use instead:
        ```python
        def resize(img, size):
            \"\"\"Resize.

            Raises:
                ValueError: If ``size`` is not positive.
                TypeError: If ``img`` is not CHW.
            \"\"\"
            ...
        ```
    """

    code = "MLC161"
    name = "raised-exception-not-documented"
    summary = "an exception the function raises is missing from its Raises section"
    default = "on"

    def _function_findings(self, project: Any, path: str, fn: dict[str, Any]) -> list[Finding]:
        """Return one finding per raised exception no documented one covers."""
        if not fn["section"]:
            return []
        documented = [d[0] for d in fn["documented"]]
        out, seen = [], set()
        for name, line, col, end_line, end_col in fn["raised"]:
            if name in seen or any(self.covers(project, d, name) for d in documented):
                continue
            seen.add(name)
            out.append(Finding(self.code, f"{fn['what']} raises `{name}`, which its Raises section does not "
                               f"list (documented: {', '.join(documented) or 'none'}): add it",
                               line, col, end_line, end_col, path=path, cell=fn["cell"]))
        return out


@register
class RaisesSectionMissing(_RaisesRule):
    """A public function raises exceptions but its docstring has no Raises section.

    What it does:
        Reports a public function with a docstring whose body raises an exception
        directly (stubs raising ``NotImplementedError`` aside) and whose docstring has
        no Raises section. Off by default: many projects document only parameters.

    Why is this bad?
        The exceptions a function raises are part of its contract, as much as its
        parameters: callers cannot handle what they were never told about.

    Example:
        ```python
        def set_lr(optimizer, lr):
            \"\"\"Set the learning rate of every group.\"\"\"
            if lr <= 0:
                raise ValueError(f"lr must be positive, got {lr}")
        ```

    Use instead:
        ```python
        def set_lr(optimizer, lr):
            \"\"\"Set the learning rate of every group.

            Raises:
                ValueError: If ``lr`` is not positive.
            \"\"\"
        ```
    """

    code = "MLC162"
    name = "raises-section-missing"
    summary = "a public function raises exceptions but its docstring has no Raises section"
    default = "off"

    def _function_findings(self, project: Any, path: str, fn: dict[str, Any]) -> list[Finding]:
        """Return one finding when a public function raises without a Raises section."""
        names = sorted({r[0] for r in fn["raised"]} - {"NotImplementedError"})
        if not fn["public"] or fn["section"] or not names:
            return []
        line, col, end_col = fn["name"]
        return [Finding(self.code, f"{fn['what']} raises {', '.join(f'`{n}`' for n in names)} but its "
                        f"docstring has no Raises section: document when each is raised",
                        line, col, line, end_col, path=path, cell=fn["cell"])]
