"""The ``mlcheck`` section of the terminal summary, built from the session's records.

Two rules shape it:

* A check that failed inside a test that did not fail was expected to fail: the test
  caught it (``pytest.raises``) or was marked ``xfail``. Such records read ``expected``
  and are counted apart (``3 failed as expected``), so a green suite that proves its
  checks catch bugs does not print an alarming ``99 failed``.
* Tables fit the terminal: the test id is cut from the left (its end names the test),
  long details are cut from the right, and low-value columns are dropped before the
  ones that say what happened. Like pytest, CI logs (``CI`` or ``BUILD_NUMBER`` set,
  no ``COLUMNS``) get full lines, because nobody resizes a log.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Iterable, Mapping

from .report import CheckRecord, summarize

#: The verdict shown for a failed check whose test did not fail.
EXPECTED = "expected"

#: Outcomes of a test in which a failed check was expected (caught, or xfail).
_NOT_FAILED = frozenset({"passed", "skipped"})

#: Singular and plural of the nouns the count lines use.
_NOUNS = {"metric": ("metric", "metrics"), "array": ("array", "arrays"),
          "check": ("check", "checks"), "row": ("row", "rows")}

#: Narrowest table pytest itself would draw (its writer treats < 40 as 80).
MIN_WIDTH = 40

#: Above this many metric rows, only rows that are not ``ok`` are shown (unless -v).
MAX_OK_ROWS = 50


def plural(count: int, noun: str) -> str:
    """Return ``"1 metric"`` or ``"2 metrics"``.

    Args:
        count: How many.
        noun: A key of the noun table (``metric``, ``array``, ``check``, ``row``), or any
            regular noun, which gets an ``s``.

    Returns:
        The count and the noun in the right number.
    """
    one, many = _NOUNS.get(noun, (noun, noun + "s"))
    return f"{count} {one if count == 1 else many}"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None:
        return "-"
    return str(value)


def _cut_left(text: str, width: int) -> str:
    # Test ids keep their end: "…test_model.py::test_fit[64]" still names the test.
    return text if len(text) <= width else "…" + text[len(text) - width + 1:]


def _cut_right(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def terminal_width(environ: Mapping[str, str] | None = None) -> int | None:
    """Return the width tables must fit, or ``None`` for no limit.

    ``COLUMNS`` wins when set; otherwise CI logs are unlimited, as in pytest's short
    summary; otherwise the terminal's width (80 when there is none).

    Args:
        environ: The environment (default: ``os.environ``).

    Returns:
        The width in characters, at least :data:`MIN_WIDTH`, or ``None``.
    """
    env = os.environ if environ is None else environ
    columns = env.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        width = int(columns)
    elif env.get("CI") or env.get("BUILD_NUMBER"):
        return None
    else:
        width = shutil.get_terminal_size(fallback=(80, 24)).columns
    return width if width >= MIN_WIDTH else 80


@dataclass(frozen=True)
class Column:
    """One table column and how it gives way when the table is too wide.

    Attributes:
        title: The header.
        cut: ``"left"`` (test ids), ``"right"`` (free text) or ``""`` (never cut).
        min_width: The narrowest a cut column may become.
        drop: Columns are dropped in increasing order of this rank once cutting is not
            enough; ``0`` means never dropped.
        shrink: Cut columns shrink in increasing order of this rank (free text before
            names before the test id).
    """

    title: str
    cut: str = ""
    min_width: int = 0
    drop: int = 0
    shrink: int = 0


def _line(cells: Iterable[str], widths: list[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()


def _fit(columns: list[Column], widths: list[int], limit: int) -> tuple[list[int], list[int]]:
    """Return the kept column indices and their widths so a row fits ``limit``."""
    droppable = [i for _, i in sorted((c.drop, i) for i, c in enumerate(columns) if c.drop)]
    keep = list(range(len(columns)))
    while True:
        ws = {i: widths[i] for i in keep}
        excess = sum(ws.values()) + 2 * (len(keep) - 1) - limit
        # Cut free text first (a detail is the first line of a message the test report
        # shows in full), then names, then test ids, each down to its minimum.
        for i in sorted((i for i in keep if columns[i].cut), key=lambda i: columns[i].shrink):
            c = columns[i]
            if excess > 0:
                new = min(ws[i], max(c.min_width, len(c.title), ws[i] - excess))
                excess -= ws[i] - new
                ws[i] = new
        if excess <= 0 or not droppable:
            break
        keep.remove(droppable.pop(0))
    if excess > 0:
        # Nothing left to drop: the test id takes what is left, however narrow.
        for i in keep:
            if columns[i].cut == "left" and excess > 0:
                new = max(len(columns[i].title) + 1, ws[i] - excess)
                excess -= ws[i] - new
                ws[i] = new
    return keep, [ws[i] for i in keep]


def table(rows: list[list[str]], header: list[str] | list[Column],
          width: int | None = None) -> list[str]:
    """Format rows as a left-aligned plain-text table (header, rule, rows).

    Args:
        rows: The cells, one list per row, in the order of ``header``.
        header: Column titles, or :class:`Column` specs saying how each gives way.
        width: The most characters a line may have; ``None`` for no limit.

    Returns:
        The lines of the table; none is longer than ``width`` when cells can be cut to
        fit (test ids are cut from the left, free text from the right).
    """
    columns = [h if isinstance(h, Column) else Column(h) for h in header]
    natural = [len(c.title) for c in columns]
    for row in rows:
        natural = [max(w, len(cell)) for w, cell in zip(natural, row)]
    keep = list(range(len(columns)))
    widths = natural
    if width is not None and sum(natural) + 2 * (len(natural) - 1) > width:
        keep, widths = _fit(columns, natural, width)

    def cells(row: list[str]) -> list[str]:
        out = []
        for i, w in zip(keep, widths):
            cut = columns[i].cut
            text = row[i]
            out.append(_cut_left(text, w) if cut == "left" else
                       _cut_right(text, w) if cut == "right" else text)
        return out

    titles = [columns[i].title for i in keep]
    return ([_line(titles, widths), _line(["-" * w for w in widths], widths)]
            + [_line(cells(r), widths) for r in rows])


def is_expected(record: CheckRecord, outcomes: Mapping[str, str] | None) -> bool:
    """Whether ``record`` failed inside a test that did not fail (caught or xfail).

    Args:
        record: One check record.
        outcomes: Test outcome per node id (``passed``, ``failed``, ``skipped``);
            ``None`` when unknown, and then nothing is expected.

    Returns:
        ``True`` for a failed check whose test passed or was skipped (xfail reports as
        skipped).
    """
    if outcomes is None or not record.failed:
        return False
    return outcomes.get(record.nodeid) in _NOT_FAILED


def _verdict(record: CheckRecord, outcomes: Mapping[str, str] | None) -> str:
    return EXPECTED if is_expected(record, outcomes) else record.verdict


def count_line(records: Iterable[CheckRecord], noun: str,
               outcomes: Mapping[str, str] | None = None) -> str:
    """Return e.g. ``12 metrics: 10 ok, 1 improved, 1 regressed``.

    Args:
        records: The records to count.
        noun: ``metric``, ``array`` or ``check`` (put in the right number).
        outcomes: Test outcome per node id; failed checks of tests that did not fail are
            counted as ``N failed as expected``, last.

    Returns:
        The count line.
    """
    records = list(records)
    expected = [r for r in records if is_expected(r, outcomes)]
    counts = summarize(r for r in records if not is_expected(r, outcomes))
    order = sorted(counts, key=lambda k: (k != "ok", k != "improved", k))
    parts = [f"{counts[k]} {k}" for k in order]
    if expected:
        parts.append(f"{len(expected)} failed as expected")
    return f"{plural(len(records), noun)}: " + ", ".join(parts)


_METRIC_COLUMNS = [Column("test", cut="left", min_width=24, shrink=3),
                   Column("metric", cut="left", min_width=12, shrink=2),
                   Column("baseline", drop=2), Column("current"), Column("Δ", drop=1),
                   Column("verdict")]
_CHECK_COLUMNS = [Column("test", cut="left", min_width=24, shrink=3), Column("check", drop=2),
                  Column("name", cut="right", min_width=16, shrink=2), Column("verdict"),
                  Column("detail", cut="right", min_width=20, drop=1, shrink=1)]


def coverage_line(records: list[CheckRecord]) -> str:
    """Return the one line that sums up the non-finite guard's coverage records.

    Args:
        records: The ``guard``/``coverage`` records (one per test that ran a module).

    Returns:
        ``non-finite guard: 1,234 module outputs checked in 56 tests`` plus, when some
        module classes bypass ``nn.Module.__call__``, how many calls went unchecked and
        the classes with the most of them.
    """
    checked = sum(int(r.values.get("module_outputs", 0)) for r in records)
    bypassed: dict[str, int] = {}
    for r in records:
        for name, count in dict(r.values.get("bypassed_classes", {})).items():
            bypassed[name] = bypassed.get(name, 0) + int(count)
    line = (f"non-finite guard: {plural(checked, 'module output')} checked in "
            f"{plural(len(records), 'test')}")
    if bypassed:
        top = sorted(bypassed.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        more = "" if len(bypassed) <= 3 else f", +{len(bypassed) - 3} more"
        line += (f"; {plural(sum(bypassed.values()), 'call')} not checked (their class bypasses "
                 f"nn.Module.__call__): " + ", ".join(f"{k} ({v})" for k, v in top) + more)
    return line


def lines(records: list[CheckRecord], written: list[str], extra_lines: list[str],
          verbose: int = 0, outcomes: Mapping[str, str] | None = None,
          width: int | None = -1) -> list[str]:
    """Return the lines of the ``mlcheck`` terminal section.

    Args:
        records: Every check record of the session.
        written: Baseline entries written (``file [entry]``).
        extra_lines: Lines that check families add (unused baselines, pruning).
        verbose: pytest's verbosity; above 0 every metric row is shown.
        outcomes: Test outcome per node id, which turns failed checks of tests that did
            not fail into ``expected``.
        width: The most characters a table line may have; ``None`` for no limit, ``-1``
            (the default) for :func:`terminal_width`.

    Returns:
        The lines, without the section title.
    """
    if width == -1:
        width = terminal_width()
    out: list[str] = []
    metric_like = [r for r in records if r.kind in ("metric", "array")]
    if metric_like:
        shown = metric_like
        if verbose <= 0 and len(metric_like) > MAX_OK_ROWS:
            shown = [r for r in metric_like if r.verdict != "ok"]
        rows = []
        for r in shown:
            v = r.values
            name = r.name if not r.group else f"{r.group}/{r.name}"
            delta = v.get("delta")
            pct = v.get("delta_pct")
            delta_s = "-" if delta is None else _fmt(delta) + ("" if pct is None else f" ({_fmt(pct)}%)")
            rows.append([r.nodeid, name, _fmt(v.get("baseline")), _fmt(v.get("current")),
                         delta_s, _verdict(r, outcomes)])
        if rows:
            out += table(rows, _METRIC_COLUMNS, width)
        hidden = len(metric_like) - len(shown)
        if hidden:
            out.append(f"({plural(hidden, 'ok row')} not shown; -v shows every row)")
        for kind in ("metric", "array"):
            these = [r for r in metric_like if r.kind == kind]
            if these:
                out.append(count_line(these, kind, outcomes))
    coverage: list[CheckRecord] = []
    others: list[CheckRecord] = []
    for r in records:
        if r.kind == "guard" and r.name == "coverage":
            coverage.append(r)
        elif r.kind not in ("metric", "array"):
            others.append(r)
    if others:
        if out:
            out.append("")
        shown = others
        if verbose <= 0 and len(others) > MAX_OK_ROWS:
            shown = [r for r in others if _verdict(r, outcomes) not in ("ok", EXPECTED)]
        rows = [[r.nodeid, r.kind, r.name, _verdict(r, outcomes),
                 r.message.splitlines()[0] if r.message else ""] for r in shown]
        if rows:
            out += table(rows, _CHECK_COLUMNS, width)
        hidden = len(others) - len(shown)
        if hidden:
            out.append(f"({plural(hidden, 'ok or expected row')} not shown; -v shows every row)")
        out.append(count_line(others, "check", outcomes))
    if coverage:
        out.append(coverage_line(coverage))
    if written:
        out.append("")
        out.append(f"baselines written ({len(written)}):")
        out += [f"  {w}" for w in written]
    out += extra_lines
    return out
