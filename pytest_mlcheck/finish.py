"""End of session: baseline housekeeping, the JSON report and the terminal section."""

from __future__ import annotations

import pytest

from . import summary
from .environment import fingerprint
from .report import write_json_report
from .session import MLCheckSession


def finish_worker(session: pytest.Session, state: MLCheckSession) -> None:
    """Run on an xdist worker: write its staged baselines, hand the rest to the controller.

    Args:
        session: The worker's pytest session.
        state: The worker's plugin state.
    """
    written, errors = state.baseline_store().flush()
    state.written += written
    state.write_errors += errors
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["mlcheck"] = state.worker_output()


def finish_session(session: pytest.Session, state: MLCheckSession) -> None:
    """Run on the controller (or the only process) once every test has reported.

    Args:
        session: The pytest session.
        state: The plugin state.
    """
    from .baselines import finish_baselines

    finish_baselines(session, state)
    if state.report_path:
        write_json_report(
            state.report_path,
            state.records,
            fingerprint(),
            extra={"base_seed": state.base_seed, "baselines_written": state.written,
                   **state.extra.get("report", {})},
        )


def terminal_lines(state: MLCheckSession, verbose: int = 0) -> list[str]:
    """Return the ``mlcheck`` terminal section's lines ([] when nothing ran).

    Args:
        state: The plugin state.
        verbose: pytest's verbosity; above 0 every metric row is shown.

    Returns:
        The lines.
    """
    extra = state.extra.get("summary_lines", [])
    if not state.records and not state.written and not any(extra):
        return []
    return summary.lines(state.records, state.written, extra, verbose=verbose)
