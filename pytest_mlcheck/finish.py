"""End of session: baseline housekeeping, the JSON report and the terminal section."""

from __future__ import annotations

import pytest

from . import summary
from .environment import fingerprint
from .report import write_json_report
from .session import MLCheckSession


def finish_session(session: pytest.Session, state: MLCheckSession) -> None:
    """Run on the controller (or the only process) once every test has reported."""
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


def terminal_lines(state: MLCheckSession) -> list[str]:
    """Return the ``mlcheck`` terminal section's lines ([] when nothing ran)."""
    extra = state.extra.get("summary_lines", [])
    if not state.records and not state.written and not extra:
        return []
    return summary.lines(state.records, state.written, extra)
