"""Compare two JSON reports: what did an upgrade, another machine or another seed change?

Checks are matched by ``(test id, kind, name=, name)``. The comparison lists

* metric deltas (report B's current value minus report A's), each judged against a
  tolerance: ``--atol``/``--rtol`` when given, else the band the baseline itself
  allowed in report A (``atol + rtol*|baseline|``, widened by the measured noise for
  ``check_repeated``);
* verdict changes of every check (determinism, shapes, training, leakage, ...);
* checks present in only one report (a numpy-only run skips torch checks);
* the environment facets that differ.

A metric past its tolerance, or a check whose verdict turned from passing to failing,
makes the comparison fail (exit status 1 on the command line).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ..report import FAILING_VERDICTS

_Key = tuple[str, str, str, str]


@dataclasses.dataclass
class Row:
    """One check present in both reports whose value or verdict differs.

    Attributes:
        key: ``(test id, kind, group, name)``.
        before: Report A's value (a number for metrics, else a short text).
        after: Report B's value.
        delta: ``after - before`` for numbers, else ``None``.
        tolerance: The allowed ``|delta|``, or ``None`` when it does not apply.
        verdict_before: Report A's verdict.
        verdict_after: Report B's verdict.
        failing: Past the tolerance, or turned from passing to failing.
    """

    key: _Key
    before: Any
    after: Any
    delta: float | None
    tolerance: float | None
    verdict_before: str
    verdict_after: str
    failing: bool

    @property
    def label(self) -> str:
        """The check as shown to people: ``test  kind  group/name``."""
        nodeid, kind, group, name = self.key
        return f"{nodeid} {kind} {group + '/' if group else ''}{name}"


@dataclasses.dataclass
class Comparison:
    """The result of :func:`compare_reports`.

    Attributes:
        rows: Checks in both reports that changed.
        only_before: Checks only in report A.
        only_after: Checks only in report B.
        environment: ``{facet: (A's value, B's value)}`` for the facets that differ.
        unchanged: How many checks in both reports did not change.
    """

    rows: list[Row]
    only_before: list[_Key]
    only_after: list[_Key]
    environment: dict[str, tuple[str, str]]
    unchanged: int

    @property
    def failing(self) -> list[Row]:
        """The rows past their tolerance or newly failing."""
        return [r for r in self.rows if r.failing]


def _key(record: dict[str, Any]) -> _Key:
    return (str(record.get("nodeid", "")), str(record.get("kind", "")),
            str(record.get("group", "")), str(record.get("name", "")))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _value(record: dict[str, Any]) -> Any:
    values = record.get("values") or {}
    if record.get("kind") == "metric":
        return values.get("current")
    if record.get("kind") == "array":
        return values.get("current")  # dtype and shape, e.g. float32[4, 10]
    return None


def _tolerance(before: dict[str, Any], base: float, atol: float | None,
               rtol: float | None) -> float:
    if atol is not None or rtol is not None:
        return (atol or 0.0) + (rtol or 0.0) * abs(base)
    band = _number((before.get("values") or {}).get("band"))
    return band if band is not None else 0.0


def _verdict(record: dict[str, Any]) -> str:
    verdict = str(record.get("verdict", ""))
    if verdict == "written":  # an --mlcheck-update run: judge what it found before writing
        verdict = str((record.get("values") or {}).get("previous_verdict", "ok"))
        return "ok" if verdict in FAILING_VERDICTS else verdict
    return verdict


def _index(report: dict[str, Any]) -> dict[_Key, dict[str, Any]]:
    out: dict[_Key, dict[str, Any]] = {}
    for record in report.get("records", ()):
        out[_key(record)] = record  # a repeated key (same check twice) keeps the last
    return out


def compare_reports(before: dict[str, Any], after: dict[str, Any], atol: float | None = None,
                    rtol: float | None = None) -> Comparison:
    """Compare report B (``after``) with report A (``before``).

    Args:
        before: Report A, as read by :func:`~pytest_mlcheck.reports.load_report`.
        after: Report B.
        atol: Absolute tolerance for metric deltas, instead of the baselines' bands.
        rtol: Relative tolerance (of A's value) for metric deltas.

    Returns:
        The comparison.
    """
    a, b = _index(before), _index(after)
    rows: list[Row] = []
    unchanged = 0
    for key in [k for k in a if k in b]:
        ra, rb = a[key], b[key]
        va, vb = _value(ra), _value(rb)
        verdict_a, verdict_b = _verdict(ra), _verdict(rb)
        newly_failing = verdict_b in FAILING_VERDICTS and verdict_a not in FAILING_VERDICTS
        na, nb = _number(va), _number(vb)
        delta = tolerance = None
        past = False
        if na is not None and nb is not None:
            delta = nb - na
            tolerance = _tolerance(ra, na, atol, rtol)
            past = abs(delta) > tolerance
            changed = delta != 0
        else:
            changed = va != vb
            past = changed and key[1] == "array"  # a new shape or dtype
        if not changed and verdict_a == verdict_b:
            unchanged += 1
            continue
        rows.append(Row(key, va, vb, delta, tolerance, verdict_a, verdict_b,
                        past or newly_failing))
    env_a = before.get("environment") or {}
    env_b = after.get("environment") or {}
    environment = {facet: (str(env_a.get(facet, "none")), str(env_b.get(facet, "none")))
                   for facet in sorted(set(env_a) | set(env_b))
                   if str(env_a.get(facet, "none")) != str(env_b.get(facet, "none"))}
    return Comparison(rows, sorted(k for k in a if k not in b), sorted(k for k in b if k not in a),
                      environment, unchanged)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _delta(row: Row) -> str:
    if row.delta is None:
        return "-"
    text = f"{row.delta:+.3g}"
    number = _number(row.before)
    if number:
        text += f" ({100.0 * row.delta / abs(number):+.3g}%)"
    return text


def _cells(row: Row) -> list[str]:
    verdict = (row.verdict_before if row.verdict_before == row.verdict_after
               else f"{row.verdict_before} -> {row.verdict_after}")
    tolerance = "-" if row.tolerance is None else f"±{row.tolerance:.3g}"
    return [row.label, _fmt(row.before), _fmt(row.after), _delta(row), tolerance, verdict,
            "FAIL" if row.failing else "ok"]


_HEADER = ["check", "A", "B", "Δ", "tolerance", "verdict", "result"]


def render_text(result: Comparison, names: tuple[str, str]) -> list[str]:
    """Return the comparison as plain-text lines for a terminal.

    Args:
        result: The comparison.
        names: How reports A and B are named (their paths).

    Returns:
        The lines.
    """
    out = [f"A: {names[0]}", f"B: {names[1]}"]
    if result.environment:
        out.append("environment facets that differ:")
        out += [f"  {facet}: {x} -> {y}" for facet, (x, y) in result.environment.items()]
    else:
        out.append("environment: the same facets")
    if result.rows:
        cells = [_cells(r) for r in result.rows]
        widths = [max(len(row[i]) for row in cells + [_HEADER]) for i in range(len(_HEADER))]
        line = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
        out += ["", line(_HEADER), line(["-" * w for w in widths])] + [line(r) for r in cells]
    for title, keys in (("only in A", result.only_before), ("only in B", result.only_after)):
        if keys:
            out += ["", f"{title} ({len(keys)}):"]
            out += [f"  {k[0]} {k[1]} {k[2] + '/' if k[2] else ''}{k[3]}" for k in keys]
    out += ["", summary_line(result)]
    return out


def render_markdown(result: Comparison, names: tuple[str, str]) -> list[str]:
    """Return the comparison as a Markdown table, fit for a pull-request comment.

    Args:
        result: The comparison.
        names: How reports A and B are named.

    Returns:
        The lines (GitHub-flavoured Markdown, e.g. for ``$GITHUB_STEP_SUMMARY``).
    """
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    out = ["### pytest-mlcheck: report comparison", "",
           f"A: `{names[0]}` · B: `{names[1]}`", ""]
    if result.environment:
        out += ["| facet | A | B |", "| --- | --- | --- |"]
        out += [f"| {cell(f)} | {cell(x)} | {cell(y)} |" for f, (x, y) in result.environment.items()]
        out.append("")
    if result.rows:
        out += ["| " + " | ".join(_HEADER) + " |", "|" + " --- |" * len(_HEADER)]
        for row in result.rows:
            cells = _cells(row)
            cells[0] = f"`{cells[0]}`"
            cells[-1] = "**FAIL**" if row.failing else "ok"
            out.append("| " + " | ".join(cell(c) for c in cells) + " |")
        out.append("")
    for title, keys in (("Only in A", result.only_before), ("Only in B", result.only_after)):
        if keys:
            out.append(f"<details><summary>{title} ({len(keys)})</summary>")
            out.append("")
            out += [f"- `{k[0]}` {k[1]} {k[2] + '/' if k[2] else ''}{k[3]}" for k in keys]
            out += ["", "</details>", ""]
    out.append(summary_line(result))
    return out


def summary_line(result: Comparison) -> str:
    """Return the one-line verdict of a comparison.

    Args:
        result: The comparison.

    Returns:
        For example ``2 of 14 checks changed, 1 past its tolerance; 3 only in B``.
    """
    both = len(result.rows) + result.unchanged
    text = f"{len(result.rows)} of {both} checks in both reports changed"
    failing = len(result.failing)
    text += f", {failing} past tolerance or newly failing" if failing else ", all within tolerance"
    extra = []
    if result.only_before:
        extra.append(f"{len(result.only_before)} only in A")
    if result.only_after:
        extra.append(f"{len(result.only_after)} only in B")
    return text + ("; " + ", ".join(extra) if extra else "")
