"""MLC113: a documented default that differs from the signature's."""

from __future__ import annotations

from typing import Any

from ...api import Edit, Finding, Fix, register
from ...docstrings import UNKNOWN, literal_value, same_value
from .analysis import Target, TargetRule, code_text, doc_pos, finding, signature_pairs, what


@register
class DocumentedDefaultDiffers(TargetRule):
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

    def _target_findings(self, ctx: Any, t: Target) -> list[Finding]:
        """Return a finding (with a safe fix where possible) per stale documented default."""
        out = []
        for dp, sp in signature_pairs(t):
            if dp.default is None or sp.default is None:
                continue
            documented = literal_value(dp.default.text)
            actual = literal_value(sp.default)
            if documented is UNKNOWN or actual is UNKNOWN or actual is None:
                continue
            if same_value(documented, actual):
                continue
            written = code_text(ctx, sp.default).strip()
            if dp.default.line is not None:
                line, col = doc_pos(ctx, t.doc, dp.default.line, dp.default.col)
                located = t.doc.exact
            else:
                line, col = doc_pos(ctx, t.doc, dp.line, dp.col)
                located = False
            fix = None
            closes_docstring = written.endswith(t.doc.quote[:1]) and dp.default.line is not None and \
                dp.default.line == len(t.doc.raw.splitlines()) - 1 and \
                t.doc.raw.rstrip().endswith(dp.default.text)
            if located and t.doc.fixable and "\n" not in written and "\\" not in written \
                    and t.doc.quote not in written and not closes_docstring:
                raw_line = t.doc.raw.splitlines()[dp.default.line]
                if raw_line[dp.default.col:dp.default.col + len(dp.default.text)] == dp.default.text:
                    fix = Fix("safe", f"document the default of `{dp.name}` as {written}",
                              (Edit(line, col, line, col + len(dp.default.text), written),))
            out.append(finding(ctx, self.code, line, col,
                                f"docstring of {what(t.d)} says `{dp.name}` defaults to {dp.default.text}, "
                                f"but the signature's default is {written}: users who trust the docs "
                                f"run with a different value; update the docstring (or the default)",
                                fix, (line, col + len(dp.default.text)) if located else None))
        return out
