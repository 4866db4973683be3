"""Loading checkpoints: ``torch.load`` that unpickles arbitrary code."""

from __future__ import annotations

import ast
from typing import Any, Iterable

from ...api import Finding, ProjectRule, register
from ._base import ML_IMPORTS, ScopedSmellRule, has_star_args, is_literal, keyword, qualified_names

_LOADS = {"torch.load", "torch.serialization.load"}
_PARTIALS = {"functools.partial", "functools.partialmethod"}
_UNSAFE = ("unpickles the file, which runs any code a malicious checkpoint contains; load weights "
           "with `weights_only=True` (allow extra types with `torch.serialization.add_safe_globals`)")
#: torch releases before 2.6 (where ``weights_only`` defaulted to False), to test a
#: declared specifier against; one per minor series is enough for ranges.
_UNSAFE_DEFAULT_RELEASES = ("1.0.0", "1.4.0", "1.8.0", "1.10.0", "1.12.1", "1.13.1", "2.0.0", "2.0.1",
                            "2.1.0", "2.1.2", "2.2.0", "2.2.2", "2.3.0", "2.3.1", "2.4.0", "2.4.1", "2.5.0",
                            "2.5.1")


def admits_unsafe_default(requirement: Any) -> bool:
    """Return whether a declared torch requirement allows a release before 2.6.

    Args:
        requirement: A ``packaging.requirements.Requirement``.

    Returns:
        True when some torch release with ``weights_only=False`` as its default satisfies
        the specifier (no specifier at all admits every release).
    """
    spec = requirement.specifier
    return any(spec.contains(v, prereleases=True) for v in _UNSAFE_DEFAULT_RELEASES)


@register
class UnsafeTorchLoad(ScopedSmellRule, ProjectRule):
    """Flags ``torch.load`` that may unpickle arbitrary code.

    What it does:
        Finds ``torch.load(..., weights_only=False)`` everywhere, also when the
        ``False`` comes through ``**{"weights_only": False}``, through ``**kwargs`` where
        the same function (or the module) built ``kwargs`` with ``weights_only=False``
        (a dict literal, ``dict(...)``, ``kwargs["weights_only"] = False`` or
        ``kwargs.update(weights_only=False)``), or through
        ``functools.partial(torch.load, weights_only=False)``. It also finds
        ``torch.load`` without ``weights_only`` when the project's declared torch
        requirement (``pyproject.toml``, ``requirements*.txt``, ``setup.cfg``,
        ``environment.yml``) admits a release before 2.6, where the default was ``False``.
        A ``**kwargs`` it cannot follow is left alone.

    Why is this bad?
        With ``weights_only=False``, ``torch.load`` is ``pickle.load``: a checkpoint
        downloaded from a hub or shared by a colleague runs any code its author put in
        it, with your permissions. Before torch 2.6 this was the default.

    Example:
        ```python
        state = torch.load("model.pt")
        ```

    Use instead:
        ```python
        state = torch.load("model.pt", weights_only=True)
        ```
    """

    code = "MLC308"
    name = "unsafe-torch-load"
    summary = "torch.load may unpickle arbitrary code (weights_only not True)"
    requires_text = ("load",) + ML_IMPORTS

    def begin_file(self, ctx: Any) -> None:
        """Start a file.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.implicit: list[list[int]] = []

    def _new_scope(self) -> dict[str, ast.expr | None]:
        # Per function: a local dict's `weights_only` value (None: built without one).
        return {}

    def _options(self, node: ast.expr) -> tuple[bool, ast.expr | None]:
        """Return ``(known, weights_only value)`` for the ``X`` of a ``**X`` argument."""
        if type(node) is ast.Dict:
            if any(k is None for k in node.keys):  # {**other}: unknown contents
                return False, None
            for key, value in zip(node.keys, node.values):
                if is_literal(key, "weights_only"):
                    return True, value
            return True, None
        if type(node) is ast.Name:
            for scope in (self.scopes[-1], self.scopes[0]):
                if node.id in scope:
                    return True, scope[node.id]
        return False, None

    def _built_dict(self, value: ast.expr) -> tuple[bool, ast.expr | None]:
        if type(value) is ast.Call and type(value.func) is ast.Name and value.func.id == "dict":
            if value.args or has_star_args(value):
                return False, None
            given = keyword(value, "weights_only")
            return True, None if given is None else given.value
        if type(value) is ast.Dict:
            return self._options(value)
        return False, None

    def visit_Assign(self, node: ast.Assign) -> None:
        """Follow dicts that may become ``**kwargs`` of ``torch.load``.

        Args:
            node: The assignment.
        """
        scope = self.scopes[-1]
        for target in node.targets:
            if type(target) is ast.Name:
                known, value = self._built_dict(node.value)
                if known:
                    scope[target.id] = value
                else:
                    scope.pop(target.id, None)
            elif type(target) is ast.Subscript and type(target.value) is ast.Name:
                if is_literal(target.slice, "weights_only"):
                    scope[target.value.id] = node.value
                elif type(target.slice) is not ast.Constant:  # opts[key] = ...: unknown now
                    scope.pop(target.value.id, None)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        """Forget a followed dict that ``|=`` changes.

        Args:
            node: The augmented assignment.
        """
        if type(node.target) is ast.Name:
            self.scopes[-1].pop(node.target.id, None)

    def visit_Call(self, node: ast.Call) -> None:
        """Check a call.

        Args:
            node: The call.
        """
        func = node.func
        if type(func) is ast.Attribute:
            if func.attr in ("update", "setdefault") and type(func.value) is ast.Name:
                given = keyword(node, "weights_only")
                if given is not None and func.attr == "update":
                    self.scopes[-1][func.value.id] = given.value
                elif node.args or has_star_args(node):  # opts.update(other): unknown now
                    self.scopes[-1].pop(func.value.id, None)
                return
            if func.attr not in ("load", "partial", "partialmethod"):
                return
        resolved = qualified_names(self.ctx).resolve(func)
        if resolved in _PARTIALS:
            if node.args and qualified_names(self.ctx).resolve(node.args[0]) in _LOADS:
                given = keyword(node, "weights_only")
                if given is not None and is_literal(given.value, False):
                    self.report(node, f"`functools.partial(torch.load, weights_only=False)` {_UNSAFE}")
            return
        if resolved not in _LOADS:
            return
        given = keyword(node, "weights_only")
        if given is None:
            unknown = any(type(a) is ast.Starred for a in node.args)
            for kw in node.keywords:
                if kw.arg is None:
                    known, value = self._options(kw.value)
                    if known and is_literal(value, False):
                        self.report(node, f"`torch.load(..., **{self._shown(kw.value)})` passes "
                                          f"`weights_only=False`: it {_UNSAFE}")
                        return
                    unknown = unknown or not known or value is not None
            if not unknown:  # no weights_only, also in the dicts it unpacks
                self.implicit.append(list(self.ctx.position(node)))
            return
        if is_literal(given.value, False):
            self.report(node, f"`torch.load(..., weights_only=False)` {_UNSAFE}")

    @staticmethod
    def _shown(node: ast.expr) -> str:
        return node.id if type(node) is ast.Name else "{...}"

    def collect(self, ctx: Any) -> list[list[int]]:
        """Return where ``torch.load`` is called without ``weights_only``.

        Args:
            ctx: The file context.

        Returns:
            ``[[line, col, end_line, end_col], ...]``.
        """
        return self.implicit

    def check_project(self, project: Any) -> Iterable[Finding]:
        """Flag implicit ``weights_only`` when the declared torch admits a release before 2.6.

        Args:
            project: The project context.

        Yields:
            The findings.
        """
        facts = project.facts.get(self.code, {})
        if not any(facts.values()):
            return
        from ...manifests import declared_requirements

        declared = [d for d in declared_requirements(project.root)
                    if d.requirement is not None and d.requirement.name.lower() == "torch"]
        unsafe = [d for d in declared if admits_unsafe_default(d.requirement)]
        if not unsafe:
            return
        where = f"{unsafe[0].path}:{unsafe[0].line}"
        for path in sorted(facts):
            for line, col, end_line, end_col in facts[path]:
                yield Finding(self.code, f"`torch.load` without `weights_only`: the declared requirement "
                                         f"`{unsafe[0].requirement}` ({where}) admits torch < 2.6, where it "
                                         f"unpickles the file and runs any code in it; pass "
                                         f"`weights_only=True`", line, col, end_line, end_col, path=path)
