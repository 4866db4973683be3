"""End of session: baseline housekeeping, the JSON report and the terminal section.

Each step reports its own failure as a line in the ``mlcheck`` section and lets the
next one run, so an unreadable baseline or an unwritable report path never costs
the summary or the report.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from . import summary
from .report import write_json_report
from .session import MLCheckSession


def note_collection(state: MLCheckSession, before: list[str], items: list[Any]) -> None:
    """Record the suite as collected and how many items plugins removed (plugin use).

    Args:
        state: The plugin state.
        before: Node ids before any plugin's ``pytest_collection_modifyitems``.
        items: The items after every plugin's hook.
    """
    from .report import suite_hash

    collected = set(before)
    state.collected = len(collected)
    state.collected_sha256 = suite_hash(collected)
    state.dropped_by_plugins = len(collected - {item.nodeid for item in items})


def _may_have_baselines(state: MLCheckSession) -> bool:
    """Whether the baseline store has anything to do (importing it costs ~50 ms)."""
    if state._baselines is not None or state.prune or state.written or state.write_errors:
        return True
    baseline_dir = str(state.ini("mlcheck_baseline_dir"))
    if baseline_dir:
        return os.path.isdir(os.path.join(state.rootdir, baseline_dir))
    folders = {os.path.dirname(nodeid.split("::", 1)[0]) for nodeid in state.outcomes}
    return any(os.path.isdir(os.path.join(state.rootdir, folder, "mlcheck_baselines"))
               for folder in folders)


def finish_worker(session: pytest.Session, state: MLCheckSession) -> None:
    """Run on an xdist worker: write its staged baselines, hand the rest to the controller.

    Args:
        session: The worker's pytest session.
        state: The worker's plugin state.
    """
    try:
        written, errors = state.baseline_store().flush()
    except Exception as exc:  # never lose the worker's output to the controller
        written, errors = [], [f"could not write baselines: {type(exc).__name__}: {exc}"]
    state.written += written
    state.write_errors += errors
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["mlcheck"] = state.worker_output()


def suite_facts(session: pytest.Session, state: MLCheckSession) -> dict:
    """Return what a report needs to tell whether (merged) runs cover the whole suite.

    Args:
        session: The pytest session.
        state: The plugin state.

    Returns:
        ``rootdir``, ``baseline_dir``, the collected suite's size and node-id hash, and
        why this run was partial: ``selection`` (made whole by merging shards) and
        ``partial`` (never).
    """
    from .baselines.prune import partial_reasons

    reasons = partial_reasons(session, state)
    return {
        "rootdir": state.rootdir,
        "baseline_dir": str(state.ini("mlcheck_baseline_dir")),
        "collected": state.collected,
        "collected_sha256": state.collected_sha256,
        "selection": [r for r, selection in reasons if selection],
        "partial": [r for r, selection in reasons if not selection],
    }


def finish_session(session: pytest.Session, state: MLCheckSession) -> None:
    """Run on the controller (or the only process) once every test has reported.

    Args:
        session: The pytest session.
        state: The plugin state.
    """
    try:
        if _may_have_baselines(state):
            from .baselines import finish_baselines

            finish_baselines(session, state)
    except Exception as exc:  # the summary and the report must still come out
        state.baseline_notes.append(f"baseline housekeeping failed: {type(exc).__name__}: {exc}")
        session.exitstatus = max(int(session.exitstatus), 1)
    if not state.report_path:
        return
    extra = {"base_seed": state.base_seed, "baselines_written": state.written,
             "tests": dict(state.outcomes)}
    if state.write_errors:
        extra["baseline_write_errors"] = list(state.write_errors)
    if state.unused_baselines:
        extra["unused_baselines"] = list(state.unused_baselines)
    if state.pruned_baselines:
        extra["pruned_baselines"] = list(state.pruned_baselines)
    try:
        extra["suite"] = suite_facts(session, state)
        workers = state.worker_environments
        if len({tuple(sorted(env.items())) for env in workers.values()}) > 1:
            extra["worker_environments"] = {w: dict(workers[w]) for w in sorted(workers)}
        write_json_report(state.report_path, state.records, state.run_environment(), extra=extra)
    except (OSError, ValueError, TypeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        if isinstance(exc, IsADirectoryError):
            reason = "it is a directory"
        state.report_error = (f"could not write the JSON report --mlcheck-report "
                              f"{state.report_path}: {reason}")
        state.baseline_notes.append(state.report_error)
        session.exitstatus = max(int(session.exitstatus), 1)


def environment_line(state: MLCheckSession, info: dict[str, str]) -> str:
    """Return the ``mlcheck:`` line of the header: the environment and the base seed."""
    from .environment import describe
    from .guards import base_seed

    seed, source = base_seed(state)
    origin = " (from pytest-randomly's --randomly-seed)" if source == "--randomly-seed" else ""
    return f"mlcheck: {describe(info)}; base seed {seed}{origin}"


def run_environment_lines(state: MLCheckSession, quiet: bool) -> list[str]:
    """Return the environment lines the ``mlcheck`` terminal section starts with.

    Args:
        state: The plugin state.
        quiet: pytest's ``-q``, which hides the header: the section then shows the
            header's line, for the environment the tests ran in.

    Returns:
        Under ``-q``, the header line. Otherwise a ``tests ran on`` line when the tests
        probed an environment the header could not show (torch was not imported when it
        was printed, or pytest-xdist workers ran elsewhere), else nothing.
    """
    if not state.enabled:
        return []
    run = state.run_environment()
    lines = [environment_line(state, run)] if quiet else []
    shown = state.header_environment
    # When the tests never imported torch either, nothing was probed the header lacked.
    if not quiet and shown is not None and run != shown and state.probed_torch():
        from .environment import describe

        lines.append(f"mlcheck: tests ran on {describe(run)}")
    others = sorted(w for w, env in state.worker_environments.items() if env != run)
    if others:
        lines.append(f"mlcheck: xdist worker(s) {', '.join(others)} ran in another environment; "
                     "the JSON report lists each worker's (worker_environments)")
    return lines


def terminal_lines(state: MLCheckSession, verbose: int = 0) -> list[str]:
    """Return the ``mlcheck`` terminal section's lines ([] when nothing ran).

    Args:
        state: The plugin state.
        verbose: pytest's verbosity; above 0 every metric row is shown.

    Returns:
        The lines.
    """
    notes = state.baseline_notes
    if not state.records and not state.written and not any(notes):
        return []
    return summary.lines(state.records, state.written, notes, verbose=verbose,
                         outcomes=state.outcomes)
