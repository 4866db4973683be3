"""MLC130: project docstring coverage below the ``docstring-coverage`` threshold."""

from __future__ import annotations

from typing import Any, Iterable

from ...api import Finding, ProjectRule, register
from .missing import api_facts, inherits_doc


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
        return api_facts(ctx)

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
                            if item["class"] and inherits_doc(project, self.code, path, item))
            docs = f["documented"] + inherited
            total += f["public"]
            documented += docs
            per_file.append((docs / f["public"], -(f["public"] - docs), path, f["public"] - docs))
        if not total:
            return []
        percent = 100.0 * documented / total
        threshold = float(project.option("docstring-coverage"))
        if percent >= threshold:
            return []
        per_file.sort()
        worst = [x for x in per_file if x[3]][:5]
        listing = ", ".join(f"{p} ({100 * r:.0f}%, {n} undocumented)" for r, _, p, n in worst)
        path = worst[0][2] if worst else per_file[0][2]
        return [Finding(self.code, f"docstring coverage is {percent:.1f}% ({documented} of {total} public "
                        f"modules, classes and functions), below the {threshold:g}% threshold "
                        f"(docstring-coverage); least documented files: {listing}", 1, 0, 1, 0, path=path)]
