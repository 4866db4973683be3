"""The ``mlcheck`` section of the terminal summary, built from the session's records."""

from __future__ import annotations

from typing import Iterable

from .report import CheckRecord, summarize

_KIND_NOUNS = {"metric": "metrics", "array": "arrays"}


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None:
        return "-"
    return str(value)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


def table(rows: list[list[str]], header: list[str]) -> list[str]:
    """Format rows as a left-aligned plain-text table (header, rule, rows)."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]


def count_line(records: Iterable[CheckRecord], noun: str) -> str:
    """Return e.g. ``12 metrics: 10 ok, 1 improved, 1 regressed``."""
    records = list(records)
    counts = summarize(records)
    order = sorted(counts, key=lambda k: (k != "ok", k != "improved", k))
    return f"{len(records)} {noun}: " + ", ".join(f"{counts[k]} {k}" for k in order)


#: Above this many metric rows, only rows that are not ``ok`` are shown (unless -v).
MAX_OK_ROWS = 50


def lines(records: list[CheckRecord], written: list[str], extra_lines: list[str],
          verbose: int = 0) -> list[str]:
    """Return the lines of the ``mlcheck`` terminal section.

    Args:
        records: Every check record of the session.
        written: Baseline entries written (``file [entry]``).
        extra_lines: Lines that check families add (unused baselines, pruning).
        verbose: pytest's verbosity; above 0 every metric row is shown.

    Returns:
        The lines, without the section title.
    """
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
            rows.append([_short(r.nodeid, 60), name, _fmt(v.get("baseline")), _fmt(v.get("current")),
                         delta_s, r.verdict])
        if rows:
            out += table(rows, ["test", "metric", "baseline", "current", "Δ", "verdict"])
        if len(shown) < len(metric_like):
            out.append(f"({len(metric_like) - len(shown)} ok rows not shown; -v shows every row)")
        for kind in ("metric", "array"):
            these = [r for r in metric_like if r.kind == kind]
            if these:
                out.append(count_line(these, _KIND_NOUNS[kind]))
    others = [r for r in records if r.kind not in ("metric", "array")]
    if others:
        if out:
            out.append("")
        rows = [[_short(r.nodeid, 60), r.kind, r.name, r.verdict,
                 _short(r.message.splitlines()[0] if r.message else "", 60)] for r in others]
        out += table(rows, ["test", "check", "name", "verdict", "detail"])
        out.append(count_line(others, "checks"))
    if written:
        out.append("")
        out.append(f"baselines written ({len(written)}):")
        out += [f"  {w}" for w in written]
    out += extra_lines
    return out
