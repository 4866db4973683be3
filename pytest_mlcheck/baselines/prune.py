"""End of session: write staged baselines, then find (and with ``--mlcheck-prune`` delete)
entries that no test used. The only module of the store that knows about pytest.

Unused entries can only be told apart from unselected ones after a run of the whole
suite, so every way a run can be partial blocks pruning: ``-k``/``-m``, node ids on
the command line, deselection, a plugin removing items in
``pytest_collection_modifyitems`` without telling pytest (pytest-shard), collection
errors, a crashed xdist worker, an early stop, a test that never reported.

A suite split across CI jobs is pruned from the merged JSON reports instead
(``python -m pytest_mlcheck prune --reports all.json``, :func:`prune_from_reports`):
each shard records the suite it collected (size and a hash of its node ids) and why
its own run was partial; selection is forgiven when the shards together ran every
collected test, anything else is not.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..report import suite_hash
from .codec import HEADER_START, BaselineEntryError, BaselineFileError, entries_of, raw_entry
from .paths import (
    DEFAULT_GROUP,
    baseline_path,
    entry_label,
    local_id,
    module_for_baseline,
    module_of,
    parse_variant,
)
from .store import BaselineFile, BaselineStore, orphan_arrays, write_file


def partial_reasons(session: Any, state: Any) -> list[tuple[str, bool]]:
    """Return why this session did not run the whole suite, in order of clarity.

    Args:
        session: The pytest session.
        state: The plugin's :class:`~pytest_mlcheck.session.MLCheckSession`.

    Returns:
        ``(reason, is_selection)`` pairs; a selection (``-k``, ``-m``, deselection,
        items removed by a plugin) is made whole by merging the reports of shards
        that together ran every collected test. Empty for a whole-suite run.
    """
    config = session.config
    out: list[tuple[str, bool]] = []
    if getattr(config.option, "keyword", ""):
        out.append(("-k selected tests", True))
    if getattr(config.option, "markexpr", ""):
        out.append(("-m selected tests", True))
    if any("::" in str(arg) for arg in config.args):
        out.append(("node ids were given on the command line", False))
    if state.deselected:
        out.append((f"{state.deselected} test(s) were deselected", True))
    elif state.dropped_by_plugins:
        out.append((f"{state.dropped_by_plugins} collected test(s) were removed by a plugin's "
                    f"pytest_collection_modifyitems (e.g. pytest-shard, pytest-split)", True))
    if state.collect_errors:
        out.append(("there were collection errors", False))
    if state.worker_errors:
        out.append(("an xdist worker crashed", False))
    if session.shouldstop or session.shouldfail:
        out.append(("the session stopped early", False))
    collected = getattr(session, "testscollected", 0) or 0
    if collected and len(state.outcomes) < collected:
        out.append(("not every collected test ran", False))
    if not state.outcomes and not any(sel for _, sel in out):
        out.append(("no test ran", False))
    return out


def whole_suite_reason(session: Any, state: Any) -> str:
    """Return why this session did not run the whole suite, or "" when it did.

    Args:
        session: The pytest session.
        state: The plugin's :class:`~pytest_mlcheck.session.MLCheckSession`.

    Returns:
        The first reason, or "".
    """
    reasons = partial_reasons(session, state)
    return reasons[0][0] if reasons else ""


def _variant_matches(variant: str, environment: dict[str, str]) -> bool:
    return all(environment.get(k, "none") == v for k, v in parse_variant(variant).items())


def _carries_header(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(HEADER_START) + 3)
    except OSError:
        return False
    return head.lstrip(b"\xef\xbb\xbf").startswith(HEADER_START.encode("ascii"))


def unused_entries(records: Iterable[Any], outcomes: dict[str, str], store: BaselineStore,
                   environment_of: Callable[[str], dict[str, str]]
                   ) -> tuple[dict[Path, list[tuple[str, str, str]]], dict[Path, list[str]],
                              list[str]]:
    """Return the entries and array files no test used in a whole-suite run.

    Entries of tests that were skipped or failed count as used (a failure may come
    before the check), and so do variants recorded for another environment than
    the one the test ran in. Only files carrying our header are looked at.

    Args:
        records: Every check record of the run (``values`` name file and variant).
        outcomes: Outcome per node id.
        store: A baseline store for the rootdir, to reuse parsed files.
        environment_of: The environment facets a test ran in.

    Returns:
        ``(unused entries per file, orphaned .npz names per file, problems)``.
    """
    used: set[tuple[str, str, str, str]] = set()
    for r in records:
        # The entry a record used: its test, its group (an array's group is its name)
        # and its environment variant.
        if r.kind == "metric":
            used.add((str(r.values.get("file", "")), local_id(r.nodeid),
                      r.group or DEFAULT_GROUP, str(r.values.get("variant", ""))))
        elif r.kind == "array":
            used.add((str(r.values.get("file", "")), local_id(r.nodeid), r.name,
                      str(r.values.get("variant", ""))))
    by_module: dict[Path, dict[str, tuple[str, str]]] = {}
    modules: dict[str, Path] = {}  # one path per module, not per test
    for nodeid, outcome in outcomes.items():
        prefix = nodeid.split("::", 1)[0]
        module = modules.get(prefix)
        if module is None:
            module = modules[prefix] = module_of(nodeid, store.rootdir)
        by_module.setdefault(module, {})[local_id(nodeid)] = (outcome, nodeid)
    files: dict[Path, Path | None] = {}
    for module in by_module:
        files[baseline_path(module, store.rootdir, store.baseline_dir)] = module
    for directory in {p.parent for p in files}:
        if directory.is_dir():
            for child in directory.glob("*.toml"):
                if child not in files:
                    module = module_for_baseline(child, store.rootdir, store.baseline_dir)
                    if not module.exists():
                        files[child] = None
    unused: dict[Path, list[tuple[str, str, str]]] = {}
    orphans: dict[Path, list[str]] = {}
    problems: list[str] = []
    for path in sorted(files):
        module = files[path]
        if not path.is_file() or not _carries_header(path):
            continue  # not ours: another tool's TOML file is never read or touched
        bfile = store.files.get(path) or BaselineFile(path, store.rel(path), "")
        try:
            data = bfile.load()
        except BaselineFileError as exc:
            problems.append(str(exc).splitlines()[0])
            continue
        ran = by_module.get(module, {}) if module is not None else {}
        stale = []
        rel = store.rel(path)
        for key in entries_of(data):
            test, group, variant = key
            outcome, nodeid = ran.get(test, (None, ""))
            is_unused = outcome is None or (
                outcome == "passed" and (rel, *key) not in used
                and (not variant or _variant_matches(variant, environment_of(nodeid))))
            if is_unused:
                stale.append(key)
        if stale:
            unused[path] = stale
        kept = {k: v for k, v in data.items()}
        for test, group, variant in stale:  # arrays of stale entries go with them
            try:
                entry = raw_entry(kept, (test, group, variant))
            except (KeyError, TypeError):
                continue
            if isinstance(entry, dict) and "array" in entry:
                kept = _without(kept, (test, group, variant))
        lost = orphan_arrays(path, kept)
        if lost:
            orphans[path] = lost
    return unused, orphans, problems


def _without(data: dict[str, Any], key: tuple[str, str, str]) -> dict[str, Any]:
    """Return a copy of ``data`` without one entry's array (for finding orphaned arrays)."""
    import copy

    out = copy.deepcopy(data)
    test, group, variant = key
    if variant:
        out[test][group]["variants"].pop(variant, None)
    else:
        out[test][group].pop("array", None)
    return out


def find_unused(state: Any, store: BaselineStore) -> tuple[dict[Path, list[tuple[str, str, str]]],
                                                           dict[Path, list[str]], list[str]]:
    """Return the entries and array files no test used in this (whole-suite) session.

    Args:
        state: The plugin's session state (records and outcomes).
        store: The baseline store, to reuse parsed files.

    Returns:
        ``(unused entries per file, orphaned .npz names per file, problems)``.
    """
    environment = state.run_environment()  # under xdist, where the workers ran the tests
    return unused_entries(state.records, state.outcomes, store, lambda _nodeid: environment)


def listing(store: BaselineStore, unused: dict[Path, list[tuple[str, str, str]]],
            orphans: dict[Path, list[str]]) -> list[str]:
    """Return one line per unused entry and orphaned array file, as shown to people.

    Args:
        store: The baseline store (for relative paths).
        unused: Unused entries per file.
        orphans: Orphaned array file names per file.

    Returns:
        The lines.
    """
    listed = [f"{store.rel(p)} {entry_label(k)}" for p, keys in unused.items() for k in keys]
    listed += [f"{os.path.join(os.path.dirname(store.rel(p)), n)} (orphaned array file)"
               for p, names in orphans.items() for n in names]
    return listed


def delete_unused(store: BaselineStore, unused: dict[Path, list[tuple[str, str, str]]],
                  orphans: dict[Path, list[str]]) -> tuple[list[str], list[str]]:
    """Delete unused entries and orphaned arrays, each file under its lock.

    Args:
        store: The baseline store (for relative paths).
        unused: Unused entries per file.
        orphans: Orphaned array file names per file.

    Returns:
        ``(pruned, problems)``: one line per deleted entry or file, one per failure.
    """
    pruned: list[str] = []
    problems: list[str] = []
    for path in sorted(set(unused) | set(orphans)):
        bfile = BaselineFile(path, store.rel(path), "")
        try:
            outcome = write_file(bfile, set(unused.get(path, ())), delete_orphan_arrays=True)
        except Exception as exc:
            problems.append(f"could not prune {store.rel(path)}: {type(exc).__name__}: {exc}")
            continue
        if outcome.error:
            problems.append(outcome.error)
            continue
        pruned += [f"{store.rel(path)} {label}" for label in outcome.deleted]
        pruned += [f"{f} (file deleted)" for f in outcome.removed_files]
    return pruned, problems


def finish_baselines(session: Any, state: Any) -> None:
    """Write staged baselines, then list (and with ``--mlcheck-prune`` delete) unused ones.

    Runs on the controller or the only process. Results go to the session's typed
    fields: ``baseline_notes`` (terminal lines), ``unused_baselines``,
    ``pruned_baselines`` and ``write_errors``.

    Args:
        session: The pytest session.
        state: The plugin's :class:`~pytest_mlcheck.session.MLCheckSession`.
    """
    lines: list[str] = state.baseline_notes
    store = state.baseline_store()
    written, errors = store.flush()
    state.written += written
    state.write_errors += errors
    if state.write_errors:
        lines.append("")
        lines.append("baseline files NOT written:")
        lines += [f"  {e}" for e in state.write_errors]
        session.exitstatus = max(int(session.exitstatus), 1)
    reason = whole_suite_reason(session, state)
    if reason:
        if state.prune:
            lines.append("")
            lines.append(f"--mlcheck-prune did nothing: {reason}; unused baselines are only "
                         f"known after a run of the whole suite.")
        return
    try:
        unused, orphans, problems = find_unused(state, store)
    except (OSError, BaselineEntryError) as exc:
        lines.append(f"could not look for unused baselines: {type(exc).__name__}: {exc}")
        return
    listed = listing(store, unused, orphans)
    state.unused_baselines = listed
    for problem in problems:
        lines.append(f"could not look for unused baselines: {problem}")
    if not listed:
        return
    lines.append("")
    if not state.prune:
        lines.append(f"unused baselines ({len(listed)}), no test used them in this whole-suite "
                     f"run; delete them with pytest --mlcheck-prune:")
        lines += [f"  {item}" for item in listed]
        return
    pruned, failures = delete_unused(store, unused, orphans)
    lines += failures
    state.pruned_baselines = pruned
    lines.append(f"pruned unused baselines ({len(pruned)}):")
    lines += [f"  {item}" for item in pruned]


# ---- pruning from the merged reports of a sharded suite -------------------------------


class PruneRefused(Exception):
    """The reports do not show a whole-suite run, so nothing may be deleted."""


def reports_whole_suite(report: dict[str, Any], source: str) -> None:
    """Check that a (merged) JSON report covers a whole-suite run.

    Args:
        report: The report, as read by :func:`pytest_mlcheck.reports.load_report`.
        source: Its path as shown to people.

    Raises:
        PruneRefused: It does not; the message says why.
    """
    suite = report.get("suite")
    if not isinstance(suite, dict) or not suite.get("collected_sha256"):
        raise PruneRefused(f"{source} does not say which suite was collected (a report of an "
                           f"older pytest-mlcheck, or a shard's report without one); re-run "
                           f"with this version")
    if suite.get("partial"):
        raise PruneRefused(f"{source} is not of a whole-suite run: {suite['partial'][0]}")
    if suite.get("selection"):
        raise PruneRefused(f"{source} covers only part of the suite: {suite['selection'][0]}; "
                           f"merge the reports of every shard (python -m pytest_mlcheck merge "
                           f"shard*.json -o all.json) and prune from the merged one")
    ran = set(report.get("tests") or {})
    if suite_hash(ran) != suite["collected_sha256"]:
        raise PruneRefused(f"{source} covers {len(ran)} of the {suite.get('collected', 0)} "
                           f"collected tests; merge the reports of every shard and prune from "
                           f"the merged one")


def prune_from_reports(report: dict[str, Any], source: str, rootdir: str,
                       delete: bool = True) -> tuple[list[str], list[str]]:
    """Delete (or list) the baseline entries that no shard of a whole-suite run used.

    Args:
        report: The merged report (or a single whole-suite report).
        source: Its path as shown to people.
        rootdir: The project root the reports' paths are relative to.
        delete: False to only list what would be deleted.

    Returns:
        ``(lines, problems)``: what was (or would be) deleted, and what went wrong.

    Raises:
        PruneRefused: The reports do not cover a whole-suite run.
    """
    from ..report import CheckRecord

    reports_whole_suite(report, source)
    baseline_dir = str(report["suite"].get("baseline_dir", ""))
    store = BaselineStore(rootdir, baseline_dir)
    environment: dict[str, dict[str, str]] = {}
    for shard in report.get("shards") or ():
        for nodeid in shard.get("tests", ()):
            environment[nodeid] = dict(shard.get("environment") or {})
    default_env = dict(report.get("environment") or {})
    records = [CheckRecord.from_json(r) for r in report.get("records", ())]
    outcomes = {str(k): str(v) for k, v in (report.get("tests") or {}).items()}
    unused, orphans, problems = unused_entries(
        records, outcomes, store, lambda nodeid: environment.get(nodeid, default_env))
    if not delete:
        return listing(store, unused, orphans), problems
    pruned, failures = delete_unused(store, unused, orphans)
    return pruned, problems + failures
