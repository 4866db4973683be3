"""Applying fixes: non-overlapping text edits, re-parsed, repeated to a fixed point.

A rule's fix is a set of :class:`~mlcheck_lint.api.Edit` computed with libcst. The
engine takes the fixes in file order, skips one that overlaps a fix already taken
(the next round picks it up), applies them, and refuses the round when the result no
longer parses. It then lints the file again and repeats, at most :data:`MAX_ROUNDS`
times, so fixes that enable each other converge and a fix that keeps re-firing stops.

Every edit applied is computed here, from the file's bytes as they are now: never
taken from the cache or from a report that came from it. A fixed file is written
atomically (a temporary file in the same folder, ``fsync``, ``os.replace``) with its
mode and owner kept; a read-only file is reported and left alone, and the other files
are still fixed. A symlink is fixed at its target, and only when that target is inside
the project.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
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


@dataclasses.dataclass
class FixOutcome:
    """What :func:`fix_files` did (or, without ``write``, would do)."""

    #: Fixes applied in the files that changed (or would change).
    total: int = 0
    #: ``{path: {code: number of fixes}}`` for those files (``--show-fixes``).
    applied: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    #: ``{path: (old text, new text)}`` for those files (``--diff``).
    changed: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    #: The files written.
    written: list[str] = dataclasses.field(default_factory=list)
    #: ``{path: reason}`` for files whose fix could not be written; they are unchanged.
    failed: dict[str, str] = dataclasses.field(default_factory=dict)


class _Refused(Exception):
    """A fixed file that must not or cannot be written; the message says why."""


def _key(f: Any) -> tuple[Any, ...]:
    return (f.code, f.cell, f.line, f.col, f.message)


def _fresh_findings(engine: Any, task: Any, data: bytes, instances: list[Any], config: Any,
                    enabled: frozenset[str], report: Any) -> list[Any]:
    """Lint one file again from its bytes: the only source of edits ``--fix`` applies.

    A cache entry can carry any edit (a cache restored from another branch, a poisoned
    folder), so nothing the report got from the cache is applied. Findings of project
    rules (computed from every file's facts, some cached) take part in ``noqa``
    matching but lose their edits. An unused-``noqa`` fix is applied only where the
    whole run (which saw the project findings) reported the same unused comment.
    """
    rel = task.rel
    result = engine.lint_data(task, data, instances, config.settings, enabled, fixing=True,
                              max_size=getattr(config, "max_file_size", None))
    fresh = [engine.finding_from_dict(d, rel) for d in result["findings"]]
    seen = {_key(f) for f in fresh}
    project = [dataclasses.replace(f, fix=None) for f in report.findings
               if f.path == rel and f.code != engine.UNUSED_NOQA and _key(f) not in seen]
    kept, _ = engine.suppress(fresh + project, {rel: result["noqa"]} if result["noqa"] else {},
                              config, enabled)
    unused = {_key(f) for f in report.findings if f.path == rel and f.code == engine.UNUSED_NOQA}
    return [f for f in kept if f.code != engine.UNUSED_NOQA or _key(f) in unused]


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _write_fixed(real: Path, original: bytes, payload: bytes) -> None:
    """Replace a file with its fixed bytes: atomically, keeping its mode and owner."""
    from .cache import write_atomic

    try:
        info = os.stat(real)
    except OSError as exc:
        raise _Refused(f"cannot read it again ({exc.strerror})") from None
    if not info.st_mode & 0o222 or not os.access(real, os.W_OK):
        # An atomic replace only needs the folder to be writable, so it would silently
        # overwrite a file someone made read-only: respect the file's own mode instead.
        raise _Refused("the file is read-only (permission denied); make it writable to fix it")
    try:
        with open(real, "rb") as fh:
            current = fh.read()
    except OSError as exc:
        raise _Refused(f"cannot read it again ({exc.strerror})") from None
    if current != original:
        raise _Refused("it changed on disk while it was being fixed; run --fix again")
    try:
        write_atomic(real, payload, mode=info.st_mode, owner=(info.st_uid, info.st_gid))
    except PermissionError:
        raise _Refused(f"permission denied writing into {real.parent} (a fix is written as a "
                       f"new file next to the old one, then renamed over it)") from None
    except OSError as exc:
        raise _Refused(f"cannot write it: {exc.strerror or exc}") from None


def fix_files(report: Any, config: Any, rules: list[Any], unsafe: bool, write: bool) -> FixOutcome:
    """Apply fixes file by file, re-linting each file until nothing changes.

    The report only says which files have fixes. Each of them is linted again from
    its current bytes and only those fresh edits are applied (never an edit from the
    cache). A round whose result no longer parses is refused; a fixed file is written
    atomically with its mode kept (:func:`~mlcheck_lint.cache.write_atomic`). A file
    that cannot be written (read-only, a read-only folder, a full disk) is reported in
    :attr:`FixOutcome.failed` and the other files are still fixed.

    Args:
        report: The engine's :class:`~mlcheck_lint.engine.Report`.
        config: The run's :class:`~mlcheck_lint.config.LintConfig`.
        rules: Every registered rule class.
        unsafe: Apply unsafe fixes too.
        write: Write the fixed files (``False`` for ``--diff``).

    Returns:
        What was fixed, changed, written and refused.
    """
    from . import engine, notebooks

    enabled = report.enabled
    active = [r for r in rules if r.code in enabled]
    instances = [r() for r in active]
    patterns = engine.text_rule_patterns(active)
    root = Path(report.root).resolve()
    outcome = FixOutcome()
    for rel in sorted({f.path for f in report.findings if allowed(f.fix, unsafe)}):
        path = report.root / rel
        real = Path(os.path.realpath(path))
        if not _inside(real, root):
            outcome.failed[rel] = f"it leads to {real}, outside the project; not followed"
            continue
        tasks = engine.discover([str(path)], config, patterns)
        if not tasks or tasks[0].refused:
            continue
        task = tasks[0]
        try:
            data = engine.read_regular(str(real), None)
            if task.kind == "notebook":
                old = data.decode("utf-8")
                notebook = notebooks.read_notebook(data)
                sources = {n: t for n, t, _ in notebooks.code_cells(notebook)}
                encoding = "utf-8"
            else:
                old, encoding = engine.decode(data, python=task.kind == "python")
            findings = _fresh_findings(engine, task, data, instances, config, enabled, report)
        except Exception:  # unreadable now (changed since the run): the run reported it
            continue
        current = old
        counts: dict[str, int] = {}
        for _round in range(MAX_ROUNDS):
            candidates = [f for f in findings if allowed(f.fix, unsafe)]
            chosen = choose_fixes(f.fix for f in candidates)
            if not chosen:
                break
            chosen_ids = {id(fx) for fx in chosen}
            if task.kind == "notebook":
                new_sources = dict(sources)
                by_cell: dict[int, list[Edit]] = {}
                for f in candidates:
                    if id(f.fix) in chosen_ids and f.cell in sources:
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
                if candidate == current or (task.kind == "python" and not parses(candidate)):
                    break
            current = candidate
            for f in candidates:
                if id(f.fix) in chosen_ids:
                    counts[f.code] = counts.get(f.code, 0) + 1
            try:
                payload = current.encode(encoding)
            except UnicodeEncodeError:
                break
            result = engine.lint_data(task, payload, instances, config.settings, enabled,
                                      fixing=True, max_size=getattr(config, "max_file_size", None))
            fresh = [engine.finding_from_dict(d, rel) for d in result["findings"]]
            # No MLC001 from here on: project rules do not run in these rounds, so a
            # suppression comment for a project finding would look unused.
            findings, _ = engine.suppress(fresh, {rel: result["noqa"]} if result["noqa"] else {},
                                          config, enabled - {engine.UNUSED_NOQA})
        if current == old:
            continue
        if write:
            try:
                try:
                    payload = current.encode(encoding)
                except UnicodeEncodeError as exc:
                    raise _Refused(f"the fixed text cannot be encoded as {encoding} ({exc.reason})") from None
                _write_fixed(real, data, payload)
            except _Refused as exc:
                outcome.failed[rel] = str(exc)
                continue
            outcome.written.append(rel)
        outcome.changed[rel] = (old, current)
        outcome.applied[rel] = counts
        outcome.total += sum(counts.values())
    return outcome
