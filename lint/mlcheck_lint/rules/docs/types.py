"""MLC114: a documented type that conflicts with the annotation."""

from __future__ import annotations

from typing import Any

import re

from ...api import Finding, register
from .analysis import Target, TargetRule, code_text, doc_pos, finding, signature_pairs, what


_TYPE_SYNONYMS = {"integer": "int", "boolean": "bool", "string": "str", "dictionary": "dict",
                  "double": "float", "tensor": "tensor", "ndarray": "array", "array": "array",
                  "array_like": "array", "arraylike": "array", "sequence": "list", "iterable": "list",
                  "mapping": "dict", "callable": "callable", "list": "list", "tuple": "tuple",
                  "dict": "dict", "int": "int", "float": "float", "str": "str", "bool": "bool",
                  "bytes": "bytes", "set": "set", "module": "module"}
_TYPE_IGNORED = {"optional", "union", "none", "default", "or", "of", "type", "typing", "torch", "np", "numpy",
                 "nn", "keyword", "only", "positional"}
#: ``(annotated, documented)`` pairs that agree: ``float`` accepts ``int`` (PEP 484's
#: numeric tower), as ``--explain`` says.
_TYPE_COMPAT = {("list", "tuple"), ("tuple", "list"), ("array", "list"), ("list", "array"),
                ("array", "tensor"), ("tensor", "array"), ("float", "int")}


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
class DocumentedTypeConflicts(TargetRule):
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

    def _target_findings(self, ctx: Any, t: Target) -> list[Finding]:
        """Return a finding per documented type that shares nothing with the annotation."""
        out = []
        for dp, sp in signature_pairs(t):
            if sp.annotation is None or not dp.type:
                continue
            doc_type = re.split(r",\s*(?:optional|default)", dp.type, maxsplit=1)[0]
            documented = _type_words(doc_type.replace("`", "").replace("*", ""))
            annotated_text = code_text(ctx, sp.annotation)
            annotated = _type_words(annotated_text)
            if not documented or not annotated or documented & annotated:
                continue
            if "callable" in documented | annotated:  # classes and modules are callables too
                continue
            if any((a, b) in _TYPE_COMPAT for a in annotated for b in documented):
                continue
            line, col = doc_pos(ctx, t.doc, dp.line, dp.col)
            out.append(finding(ctx, self.code, line, col,
                                f"docstring of {what(t.d)} documents `{dp.name}` as {doc_type.strip()}, but "
                                f"it is annotated {annotated_text.strip()}: one of them is stale"))
        return out
