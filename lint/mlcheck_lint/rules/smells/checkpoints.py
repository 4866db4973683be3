"""Loading checkpoints: ``torch.load`` that unpickles arbitrary code."""

from __future__ import annotations

import ast
from typing import Any, Iterable

from ...api import Finding, ProjectRule, register
from ._base import ML_IMPORTS, SmellRule, has_star_args, is_literal, keyword, qualified_names

_LOADS = {"torch.load", "torch.serialization.load"}
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
class UnsafeTorchLoad(SmellRule, ProjectRule):
    """Flags ``torch.load`` that may unpickle arbitrary code.

    What it does:
        Finds ``torch.load(..., weights_only=False)`` everywhere, and ``torch.load``
        without ``weights_only`` when the project's declared torch requirement
        (``pyproject.toml``, ``requirements*.txt``, ``setup.cfg``, ``environment.yml``)
        admits a release before 2.6, where the default was ``False``.

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

    def visit_Call(self, node: ast.Call) -> None:
        """Check a call.

        Args:
            node: The call.
        """
        func = node.func
        if type(func) is ast.Attribute and func.attr != "load":
            return
        if qualified_names(self.ctx).resolve(func) not in _LOADS:
            return
        given = keyword(node, "weights_only")
        if given is None:
            if not has_star_args(node):
                self.implicit.append(list(self.ctx.position(node)))
            return
        if is_literal(given.value, False):
            self.report(node, "`torch.load(..., weights_only=False)` unpickles the file, which runs any "
                              "code a malicious checkpoint contains; load weights with `weights_only=True` "
                              "(allow extra types with `torch.serialization.add_safe_globals`)")

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
