"""MLC150: public functions typed with tensors or arrays whose docstring states no shape."""

from __future__ import annotations

from typing import Any, Iterable

import re

from ...api import Finding, Rule, register
from .analysis import at_name, code_text, file_docs, what


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
        for d in file_docs(ctx).defs:
            if d.kind != "function" or not d.public or d.doc is None or d.generated_doc or d.overload:
                continue
            if d.name.startswith("__") and d.name != "__init__":
                continue
            annotations = [p.annotation for p in d.params or () if p.annotation is not None]
            if d.node.returns is not None:
                annotations.append(d.node.returns)
            texts = [code_text(ctx, a) for a in annotations]
            array_texts = [t for t in texts if _ARRAY_ANNOTATION_RE.search(t)]
            if not array_texts or any(re.search(r"[\"']", t) for t in array_texts):
                continue
            if _SHAPE_RE.search(d.doc.raw):
                continue
            out.append(at_name(ctx, d, self.code,
                                f"{what(d)} takes or returns {array_texts[0].strip()} but its docstring states "
                                "no shape: document each tensor's shape, e.g. `x: Input (B, C, H, W).`"))
        return out
