"""Applying fixes: non-overlapping text edits, re-parsed, repeated to a fixed point.

A rule's fix is a set of :class:`~mlcheck_lint.api.Edit` computed with libcst. The
engine takes the fixes in file order, skips one that overlaps a fix already taken
(the next round picks it up), applies them, and refuses the round when the result no
longer parses. It then lints the file again and repeats, at most :data:`MAX_ROUNDS`
times, so fixes that enable each other converge and a fix that keeps re-firing stops.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from .api import Edit, Fix

MAX_ROUNDS = 10
_NEWLINE = re.compile(r"\r\n?|\n")


def _offsets(text: str) -> list[int]:
    return [0] + [m.end() for m in _NEWLINE.finditer(text)]


def _offset(starts: list[int], line: int, col: int, size: int) -> int:
    if line - 1 >= len(starts):
        return size
    return min(starts[line - 1] + col, size)


def choose_fixes(fixes: Iterable[Fix]) -> list[Fix]:
    """Return the fixes that can be applied together: none overlaps another.

    Args:
        fixes: Candidate fixes, in any order.

    Returns:
        A subset in file order; an overlapping fix is left for the next round.
    """
    chosen: list[Fix] = []
    taken: list[tuple[tuple[int, int], tuple[int, int]]] = []
    key = lambda fix: min(((e.start_line, e.start_col) for e in fix.edits), default=(0, 0))  # noqa: E731
    for fix in sorted(fixes, key=key):
        spans = [((e.start_line, e.start_col), (e.end_line, e.end_col)) for e in fix.edits]
        if any(a < d and c < b for a, b in spans for c, d in taken) or not spans:
            continue
        if any(a < d and c < b for i, (a, b) in enumerate(spans) for (c, d) in spans[i + 1:]):
            continue
        # Equal insertion points would make the order of the two edits ambiguous.
        if any(a == c for a, _ in spans for c, _ in taken):
            continue
        chosen.append(fix)
        taken.extend(spans)
    return chosen


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """Apply non-overlapping edits to a text.

    Args:
        text: The original text.
        edits: The edits, with positions in ``text``.

    Returns:
        The edited text.
    """
    starts = _offsets(text)
    size = len(text)
    spans = sorted(((_offset(starts, e.start_line, e.start_col, size),
                     _offset(starts, e.end_line, e.end_col, size), e.text) for e in edits),
                   reverse=True)
    for start, end, replacement in spans:
        text = text[:start] + replacement + text[end:]
    return text


def parses(text: str) -> bool:
    """Say whether libcst parses a text.

    Args:
        text: Python source.

    Returns:
        Whether it parses.
    """
    import libcst

    try:
        libcst.parse_module(text)
    except Exception:
        return False
    return True


def allowed(fix: Fix | None, unsafe: bool) -> bool:
    """Say whether a fix may be applied.

    Args:
        fix: The fix, or ``None``.
        unsafe: Whether ``--unsafe-fixes`` was given.

    Returns:
        Whether to apply it.
    """
    return fix is not None and (fix.safety == "safe" or unsafe)


def _allowed_fixes(findings: Iterable[Any], unsafe: bool) -> list[Fix]:
    return [f.fix for f in findings if allowed(f.fix, unsafe)]


def fix_files(report: Any, config: Any, rules: list[Any], unsafe: bool,
              write: bool) -> tuple[int, dict[str, tuple[str, str]]]:
    """Apply the report's fixes file by file, re-linting each file until nothing changes.

    Args:
        report: The engine's :class:`~mlcheck_lint.engine.Report`.
        config: The run's :class:`~mlcheck_lint.config.LintConfig`.
        rules: Every registered rule class.
        unsafe: Apply unsafe fixes too.
        write: Write the fixed files (``False`` for ``--diff``).

    Returns:
        ``(number of fixes applied, {path: (old text, new text)})`` for changed files.
    """
    from . import engine, notebooks

    enabled = report.enabled
    instances = [r() for r in rules if r.code in enabled]
    by_path: dict[str, list[Any]] = {}
    for f in report.findings:
        if allowed(f.fix, unsafe):
            by_path.setdefault(f.path, []).append(f)
    total = 0
    changed: dict[str, tuple[str, str]] = {}
    for rel, findings in sorted(by_path.items()):
        path = report.root / rel
        try:
            data = path.read_bytes()
        except OSError:
            continue
        kind = "notebook" if rel.endswith(".ipynb") else "text" if not rel.endswith(".py") else "python"
        task = engine.FileTask(str(path), rel, kind)
        if kind == "notebook":
            old = data.decode("utf-8")
            notebook = notebooks.read_notebook(data)
            sources = {n: t for n, t, _ in notebooks.code_cells(notebook)}
        else:
            old, encoding = engine.decode(data, python=kind == "python")
        current = old
        for _round in range(MAX_ROUNDS):
            chosen = choose_fixes(_allowed_fixes(findings, unsafe))
            if not chosen:
                break
            if kind == "notebook":
                new_sources = dict(sources)
                by_cell: dict[int, list[Edit]] = {}
                for f in findings:
                    if f.fix in chosen and f.cell:
                        by_cell.setdefault(f.cell, []).extend(f.fix.edits)
                ok = True
                for cell, edits in by_cell.items():
                    new_sources[cell] = apply_edits(sources[cell], edits)
                    blanked = notebooks.blank_magics(new_sources[cell])
                    ok = ok and blanked is not None and parses(blanked)
                if not ok or new_sources == sources:
                    break
                candidate = notebooks.write_cells(notebook, {c: new_sources[c] for c in by_cell})
                sources = new_sources
            else:
                candidate = apply_edits(current, [e for fx in chosen for e in fx.edits])
                if candidate == current or (kind == "python" and not parses(candidate)):
                    break
            current = candidate
            total += len(chosen)
            payload = current.encode("utf-8" if kind == "notebook" else encoding)
            result = engine.lint_data(task, payload, instances, config.settings, enabled)
            fresh = [engine.finding_from_dict(d, rel) for d in result["findings"]]
            # No MLC001 from here on: project rules do not run in these rounds, so a
            # suppression comment for a project finding would look unused.
            findings, _ = engine.suppress(fresh, {rel: result["noqa"]} if result["noqa"] else {},
                                          config, enabled - {engine.UNUSED_NOQA})
        if current != old:
            changed[rel] = (old, current)
            if write:
                payload = current.encode("utf-8" if kind == "notebook" else encoding)
                path.write_bytes(payload)
    return total, changed
