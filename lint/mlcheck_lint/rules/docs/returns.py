"""MLC120, MLC121: Returns and Yields sections against what the function body does."""

from __future__ import annotations

from typing import Any

from ...api import Finding, register
from .analysis import Def, FunctionRule, at_name, body_facts, doc_pos, finding, lead_col, what


@register
class ReturnsSectionWithoutReturn(FunctionRule):
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

    def _target_findings(self, ctx: Any, d: Def) -> list[Finding]:
        """Return a finding per Returns/Yields section the body does not honour."""
        parsed = d.doc.parsed
        if parsed.returns_line is None and parsed.yields_line is None:
            return []
        out = []
        facts = body_facts(ctx, d)
        if parsed.returns_line is not None and not facts.returns_value and not facts.yields \
                and not parsed.returns_text.strip().strip("`*:").lower().startswith("none"):
            line, col = doc_pos(ctx, d.doc, parsed.returns_line, 0)
            col = lead_col(d.doc, parsed.returns_line, col)
            out.append(finding(ctx, self.code, line, col,
                               f"docstring of {what(d)} has a Returns section, but the function never "
                               "returns a value (callers get None): remove the section or return the value"))
        if parsed.yields_line is not None and not facts.yields:
            line, col = doc_pos(ctx, d.doc, parsed.yields_line, 0)
            col = lead_col(d.doc, parsed.yields_line, col)
            out.append(finding(ctx, self.code, line, col,
                               f"docstring of {what(d)} has a Yields section, but the function never "
                               "yields: it is not a generator; document what it returns instead"))
        return out


@register
class ReturnWithoutReturnsSection(FunctionRule):
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

    def _target_findings(self, ctx: Any, d: Def) -> list[Finding]:
        """Return a finding when a sectioned docstring misses its Returns section."""
        parsed = d.doc.parsed
        if d.is_property or d.name.startswith("__"):
            return []
        if parsed.returns_line is not None or parsed.yields_line is not None or parsed.rtype:
            return []
        facts = body_facts(ctx, d)
        if not facts.returns_value or facts.yields:
            return []
        return [at_name(ctx, d, self.code,
                        f"{what(d)} returns a value, but its docstring has no Returns section: "
                        "document what it returns (shape, dtype, meaning)")]
