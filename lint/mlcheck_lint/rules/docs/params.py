"""MLC110-MLC112: documented parameters that drifted from the signature."""

from __future__ import annotations

import re
from typing import Any

from ...api import Edit, Finding, Fix, register
from .analysis import STAR_KINDS, Target, TargetRule, at_name, doc_pos, finding, param_line_text, what


@register
class DocumentedParamNotInSignature(TargetRule):
    """A documented parameter is not in the signature.

    What it does:
        Reports a parameter listed in the docstring's parameters section (Google
        ``Args:``, NumPy ``Parameters``, Sphinx ``:param x:``) that the signature does
        not have, usually left behind by a rename or a removal. ``*args`` may be
        documented as ``*args``, ``args`` or ``\\*args``, but not as ``**args``
        (the stars say which kind it is). A function taking ``**kwargs`` may document
        the keywords it forwards, so its plain names are not checked; a starred entry
        (``*argz``) can never be a forwarded keyword and still is. A class docstring
        is checked against ``__init__`` (or a dataclass's fields).

    Why is this bad?
        A reader passes ``lr=`` because the docstring says so and gets a
        ``TypeError``, or worse, the value vanishes into ``**kwargs`` elsewhere.

    Example:
        ```python
        def train(model, learning_rate=1e-3):
            \"\"\"Train.

            Args:
                model: The model.
                lr: The learning rate.
            \"\"\"
        ```

    Use instead:
        ```python
        def train(model, learning_rate=1e-3):
            \"\"\"Train.

            Args:
                model: The model.
                learning_rate: The learning rate.
            \"\"\"
        ```

    Fix safety:
        When exactly one documented name is stale, exactly one signature parameter is
        undocumented, and the two names look alike (one is a subsequence of the other,
        as ``lr`` and ``learning_rate``, or they are mostly the same letters), the fix
        renames the stale entry to the new name, keeping its description. It is unsafe: the description may no longer fit the renamed
        parameter, so it is shown by ``--diff`` and applied only with
        ``--fix --unsafe-fixes``.
    """

    code = "MLC110"
    name = "docstring-param-not-in-signature"
    summary = "a documented parameter is not in the signature"
    default = "on"
    fix_safety = "unsafe"
    requires_text = ("def", "class")

    def _target_findings(self, ctx: Any, t: Target) -> list[Finding]:
        """Return a finding per documented parameter missing from the signature."""
        if t.partial:
            return []
        out = _star_mismatches(ctx, self.code, t)
        # With ``**kwargs``, a plain name may be a keyword it forwards; a starred
        # entry (``*argz``) can never be one, so it is still checked.
        forwards = any(p.kind == "starstar" for p in t.params)
        names = {p.name for p in t.params}
        documented = {p.name for p in t.doc.parsed.params} | t.also_documented
        stale = [p for p in t.doc.parsed.params if p.name not in names and p.name not in ("self", "cls")
                 and (not forwards or _stars(p.raw_name))]
        undocumented = [p for p in t.params if p.name not in documented and p.kind not in STAR_KINDS
                        and not p.name.startswith("_")]
        for p in stale:
            line, col = doc_pos(ctx, t.doc, p.line, p.col)
            fix = None
            hint = ""
            if len(stale) == 1 and len(undocumented) == 1 and _looks_renamed(p.name, undocumented[0].name):
                new = undocumented[0].name
                hint = f"; if it was renamed, document it as `{new}`"
                if t.doc.fixable and p.raw_name == p.name and \
                        param_line_text(t.doc, p)[p.col:p.col + len(p.name)] == p.name:
                    fix = Fix("unsafe", f"rename documented parameter `{p.name}` to `{new}`",
                              (Edit(line, col, line, col + len(p.name), new),))
            sig = ", ".join(x.name for x in t.params) or "no parameters"
            out.append(finding(ctx, self.code, line, col,
                                f"docstring of {what(t.d)} documents `{p.raw_name}`, which is not in its "
                                f"signature ({sig}){hint}; remove or rename the entry",
                                fix, (line, col + len(p.raw_name))))
        return out


#: A template substitution (``%(data_dir)s``, as ``@fill_doc`` decorators expand).
_PLACEHOLDER = re.compile(r"%\([A-Za-z_]\w*\)[sr]")


def _stars(raw_name: str) -> int:
    """Count the stars a documented name is written with (``\\*args`` counts one)."""
    raw = raw_name.replace("\\", "").lstrip("`")
    return len(raw) - len(raw.lstrip("*"))


def _star_mismatches(ctx: Any, code: str, t: Any) -> list[Finding]:
    """``**args`` documented for ``*args`` (or ``*kwargs`` for ``**kwargs``)."""
    kinds = {p.name: p.kind for p in t.params if p.kind in STAR_KINDS}
    out = []
    for p in t.doc.parsed.params:
        written = _stars(p.raw_name)
        kind = kinds.get(p.name)
        if kind is None or written == 0 or written == (1 if kind == "star" else 2):
            continue
        actual = ("*" if kind == "star" else "**") + p.name
        meaning = "extra positional arguments" if kind == "star" else "extra keyword arguments"
        line, col = doc_pos(ctx, t.doc, p.line, p.col)
        out.append(finding(ctx, code, line, col,
                           f"docstring of {what(t.d)} documents `{p.raw_name}`, but the signature has "
                           f"`{actual}` ({meaning}): write the entry as `{actual}`",
                           None, (line, col + len(p.raw_name))))
    return out


def _looks_renamed(old: str, new: str) -> bool:
    """Whether ``new`` plausibly renames ``old``: ``lr`` -> ``learning_rate``, ``q_vec`` ->
    ``q_update_vec``, ``dropout`` -> ``drop_rate``; not ``max_num_bins`` -> ``config``."""
    import difflib

    def subsequence(short: str, long: str) -> bool:
        it = iter(long)
        return all(ch in it for ch in short)

    a, b = old.lower(), new.lower()
    return subsequence(a, b) or subsequence(b, a) or difflib.SequenceMatcher(None, a, b).ratio() >= 0.5


@register
class SignatureParamNotDocumented(TargetRule):
    """A signature parameter is missing from a docstring that has a parameters section.

    What it does:
        Reports parameters absent from a docstring that documents parameters at all
        (so a one-line docstring is never asked for a full ``Args:`` section).
        ``self``/``cls``, ``*args``/``**kwargs`` and underscore-prefixed parameters
        need no entry; ``__init__`` parameters documented in the class docstring
        count. A section with a line that cannot be read as an entry is skipped, and
        so is a docstring with template placeholders (``%(data_dir)s``), whose
        entries a decorator fills in at import time; the entries written out in it
        are still checked by the other rules.

    Why is this bad?
        A new parameter (``label_smoothing``, ``drop_path_rate``) that is not
        documented is invisible to users, and its meaning and units get guessed.

    Example:
        ```python
        def loss(logits, target, label_smoothing=0.0):
            \"\"\"Cross-entropy.

            Args:
                logits: Scores (N, C).
                target: Class indices (N,).
            \"\"\"
        ```

    Use instead:
        ```python
        def loss(logits, target, label_smoothing=0.0):
            \"\"\"Cross-entropy.

            Args:
                logits: Scores (N, C).
                target: Class indices (N,).
                label_smoothing: Mass moved from the target class to the others.
            \"\"\"
        ```
    """

    code = "MLC111"
    name = "signature-param-not-documented"
    summary = "a signature parameter is missing from a docstring that has a parameters section"
    default = "on"
    requires_text = ("def", "class")

    def _target_findings(self, ctx: Any, t: Target) -> list[Finding]:
        """Return one finding when the docstring misses signature parameters."""
        parsed = t.doc.parsed
        if not parsed.has_params_section or parsed.uncertain:
            return []
        if _PLACEHOLDER.search(t.doc.raw):
            return []  # ``%(data_dir)s``: entries a decorator fills in at import time
        documented = {p.name for p in parsed.params} | t.also_documented
        missing = [p.name for p in t.params if p.kind not in STAR_KINDS and not p.name.startswith("_")
                   and p.name not in documented and p.name not in ("self", "cls")]
        if not missing:
            return []
        names = ", ".join(f"`{m}`" for m in missing)
        return [at_name(ctx, t.d, self.code,
                        f"docstring of {what(t.d)} does not document parameter"
                        f"{'s' if len(missing) > 1 else ''} {names}: add "
                        f"{'them' if len(missing) > 1 else 'it'} to its parameters section")]


@register
class DocumentedParamsOutOfOrder(TargetRule):
    """Documented parameters are in a different order than the signature.

    What it does:
        Reports a parameters section whose entries (those in the signature) are not
        in signature order. NumPy's ``x, y : float`` counts as ``x`` then ``y``.

    Why is this bad?
        Readers match the documentation to positional arguments by order; a swapped
        ``height``/``width`` pair in the docs produces transposed images in user code.

    Example:
        ```python
        def resize(img, height, width):
            \"\"\"Resize.

            Args:
                img: Image.
                width: Target width.
                height: Target height.
            \"\"\"
        ```

    Use instead:
        ```python
        def resize(img, height, width):
            \"\"\"Resize.

            Args:
                img: Image.
                height: Target height.
                width: Target width.
            \"\"\"
        ```
    """

    code = "MLC112"
    name = "docstring-params-out-of-order"
    summary = "documented parameters are in a different order than the signature"
    default = "on"
    requires_text = ("def", "class")

    def _target_findings(self, ctx: Any, t: Target) -> list[Finding]:
        """Return a finding when the parameters section is out of signature order."""
        order = {p.name: i for i, p in enumerate(t.params)}
        entries = [p for p in t.doc.parsed.params if p.section == "params" and p.name in order]
        seen: set[str] = set()
        unique = []
        for p in entries:
            if p.name not in seen:
                seen.add(p.name)
                unique.append(p)
        for prev, cur in zip(unique, unique[1:]):
            if order[cur.name] < order[prev.name]:
                line, col = doc_pos(ctx, t.doc, prev.line, prev.col)
                documented = ", ".join(p.name for p in unique)
                expected = ", ".join(p.name for p in sorted(unique, key=lambda p: order[p.name]))
                return [finding(ctx, self.code, line, col,
                                f"docstring of {what(t.d)} documents `{prev.name}` before `{cur.name}`, "
                                f"but the signature has them the other way round: documented order "
                                f"({documented}), signature order ({expected})")]
        return []
