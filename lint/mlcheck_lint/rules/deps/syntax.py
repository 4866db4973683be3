"""MLC200: a manifest that cannot be parsed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ... import manifests
from ...api import Finding, register
from . import common


def parsed(ctx: Any) -> Any:
    """Return the manifest of a text file, parsed once for every rule of this family.

    Args:
        ctx: The file's context (a text file).

    Returns:
        The :class:`~mlcheck_lint.manifests.Manifest`.
    """
    return ctx.cache("deps.manifest", lambda: manifests.read_manifest(ctx.path, ctx.source))


@register
class ManifestSyntax(common.ManifestRule):
    """A manifest that cannot be parsed.

    What it does:
        Reports each line of a requirements file, ``pyproject.toml``, ``setup.cfg``,
        ``environment.yml`` or lock file that cannot be read: a malformed requirement,
        an unknown option, a bad ``--hash``, invalid TOML or YAML, an ``-r``/``-c``
        include that is missing, cyclic or leads outside the project. The message
        gives the parser's reason; the other lines are still checked.

    Why is this bad?
        pip stops at the first bad line, usually in CI or at deploy time, and every
        other dependency rule is blind to what it cannot read.

    Example:
        ```text
        numpy>=1.2O
        -r base.txt   # base.txt includes this file back
        ```

    Use instead:
        ```text
        numpy>=1.20
        ```
    """

    code = "MLC200"
    name = "manifest-unparseable"
    summary = "a manifest that cannot be parsed (malformed requirement, TOML, YAML or include)"
    text_files = manifests.MANIFEST_PATTERNS

    def check(self, ctx: Any) -> Iterable[Finding]:
        """Yield one finding per unreadable part of one manifest.

        Args:
            ctx: The file's context.

        Yields:
            The findings.
        """
        for problem in parsed(ctx).problems:
            yield common.finding(self.code, problem, f"{problem.path}:{problem.line}: {problem.reason}")

    def _manifest_findings(self, project: Any, root: Path, paths: list[str]) -> Iterable[Finding]:
        """Yield include problems, and parse problems of root manifests not linted."""
        seen_files = set(project.facts.get(self.code, {}))
        reported: set[tuple[str, int, int, str]] = set()
        for rel in paths:
            if rel not in seen_files:
                text, problem = common.read_cached(root, rel)
                problems = [problem] if problem is not None else manifests.read_manifest(rel, text).problems
                for p in problems:
                    reported.add((p.path, p.line, p.col, p.reason))
                    yield common.finding(self.code, p, f"{p.path}:{p.line}: {p.reason}")
            if manifests.manifest_kind(rel) != "requirements":
                continue
            for p in common.expand(root, rel).problems:
                key = (p.path, p.line, p.col, p.reason)
                if p.reason.startswith(("-r ", "-c ")) and key not in reported:
                    reported.add(key)
                    yield common.finding(self.code, p, f"{p.path}:{p.line}: {p.reason}")
