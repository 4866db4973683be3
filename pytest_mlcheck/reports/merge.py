"""Merge the JSON reports of one suite split across CI jobs (pytest-split, a CI matrix).

The merged report is an ordinary report (same schema) plus ``shards``, one entry per
input with its environment and test ids, so ``compare`` and ``prune --reports`` read
it like any other. A test id reported by two shards is an error naming both: the
suite was split wrongly, and its results would be counted twice.
"""

from __future__ import annotations

from typing import Any

from ..report import SCHEMA_VERSION
from . import ReportError


def _tests_of(report: dict[str, Any]) -> dict[str, str]:
    tests = report.get("tests")
    if isinstance(tests, dict):
        return {str(k): str(v) for k, v in tests.items()}
    # Reports of older versions have no "tests": their records still name the tests.
    return {str(r.get("nodeid", "")): "passed" for r in report.get("records", ())
            if r.get("nodeid")}


def _shards_of(report: dict[str, Any], source: str) -> list[dict[str, Any]]:
    if report.get("shards"):  # merging merged reports keeps the original shards
        return [dict(s) for s in report["shards"]]
    shard = {"source": source, "environment": dict(report.get("environment") or {}),
             "summary": dict(report.get("summary") or {}), "tests": sorted(_tests_of(report))}
    if isinstance(report.get("suite"), dict):
        shard["suite"] = dict(report["suite"])
    return [shard]


def merged_suite(shards: list[dict[str, Any]], tests: dict[str, str]) -> dict[str, Any] | None:
    """Return the ``suite`` facts of the merged run: whole only if the shards add up.

    Args:
        shards: The shards, each with the ``suite`` its report recorded.
        tests: Every test id the shards reported.

    Returns:
        A ``suite`` object, or ``None`` when a shard's report does not record one.
    """
    from ..report import suite_hash

    suites = [s.get("suite") for s in shards]
    if not all(isinstance(s, dict) for s in suites):
        return None
    partial = [f"{shard['source']}: {reason}" for shard in shards
               for reason in shard["suite"].get("partial", ())]
    collected = {(s.get("collected_sha256", ""), s.get("baseline_dir", "")) for s in suites}
    if len(collected) > 1:
        partial.append("the shards collected different suites (other test ids, arguments or "
                       "mlcheck_baseline_dir); every shard must collect the whole suite and "
                       "run its part")
    first = suites[0]
    selection = []
    if suite_hash(tests) != first.get("collected_sha256"):
        selection.append(f"the shards ran {len(tests)} of the {first.get('collected', 0)} "
                         f"collected tests")
    return {"rootdir": first.get("rootdir", ""), "baseline_dir": first.get("baseline_dir", ""),
            "collected": first.get("collected", 0),
            "collected_sha256": first.get("collected_sha256", ""),
            "selection": selection, "partial": partial}


def merge_reports(reports: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Merge reports of shards of one suite into one report.

    Args:
        reports: ``(source, report)`` pairs, each read by
            :func:`~pytest_mlcheck.reports.load_report`.

    Returns:
        The merged report.

    Raises:
        ReportError: No report given, or a test id appears in two shards (the message
            names the test and both shards).
    """
    from ..report import CheckRecord, summarize

    if not reports:
        raise ReportError("no report to merge")
    owner: dict[str, str] = {}
    tests: dict[str, str] = {}
    records: list[dict[str, Any]] = []
    shards: list[dict[str, Any]] = []
    written: list[str] = []
    errors: list[str] = []
    seeds = set()
    for source, report in reports:
        for nodeid, outcome in _tests_of(report).items():
            if nodeid in owner:
                raise ReportError(
                    f"test id {nodeid} is in two shards: {owner[nodeid]} and {source}; each "
                    f"test must run in exactly one shard (check the split, or the list of "
                    f"reports for one given twice)")
            owner[nodeid] = source
            tests[nodeid] = outcome
        records += list(report.get("records", ()))
        shards += _shards_of(report, source)
        written += list(report.get("baselines_written", ()))
        errors += list(report.get("baseline_write_errors", ()))
        if "base_seed" in report:
            seeds.add(report["base_seed"])
    summary_counts = summarize(CheckRecord.from_json(r) for r in records)
    merged: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": "pytest-mlcheck",
        "environment": dict(reports[0][1].get("environment") or {}),
        "summary": {"total": len(records), **summary_counts},
        "records": records,
        "tests": tests,
        "shards": shards,
        "baselines_written": written,
    }
    if errors:
        merged["baseline_write_errors"] = errors
    if len(seeds) == 1:
        merged["base_seed"] = seeds.pop()
    suite = merged_suite(shards, tests)
    if suite is not None:
        merged["suite"] = suite
    return merged
