"""Session guards, on with ``--mlcheck``: seeding, NaN/Inf and silent-bug warnings.

* :func:`protocol_guard` (:mod:`.seeds`) wraps a test's setup, call and teardown: it seeds
  every RNG from the base seed and the node id, and restores the RNG states afterwards.
* :func:`call_guard` wraps the test call with two guards:

  - the **non-finite guard** (:mod:`.nonfinite`; torch, when the test's process has
    imported torch): every ``nn.Module`` output, nested tensors included, is checked
    for NaN/Inf; the first one fails the test, naming the module by its qualified name
    inside the root model, the last module whose output was still finite, and the
    innermost code outside torch. The test's record says how many module outputs were
    checked, and how many calls came through a class that bypasses torch's hooks.
  - the **warnings guard** (:mod:`.warning_guard`): a warning from the catalogue in
    :mod:`pytest_mlcheck.silent_warnings` fails the test with its explanation, or is
    reported; every warning still reaches the test and pytest exactly as without the
    plugin. numpy's floating-point error state is ``warn`` during the call, so invalid
    values, division by zero and overflow reach it.

  What fails and what is only reported, and the opt-outs, are in :mod:`.policy`.
* :func:`failure_section` is the text added to a failing test's report: its seed, the
  command that reproduces it, and the guards' findings.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

import numpy as np
import pytest

from .. import report
from ..session import MLCheckSession
from .nonfinite import NonFiniteGuard
from .policy import FINDINGS, SEED, allowed_warning_patterns, nonfinite_allowance, policy
from .seeds import (_seed_everything_fast, base_seed, protocol_guard, randomly_active,
                    reproduce_command)
from .warning_guard import WarningObserver

__all__ = ["FINDINGS", "SEED", "NonFiniteGuard", "_seed_everything_fast", "base_seed", "call_guard",
           "failure_section", "protocol_guard", "randomly_active", "reproduce_command"]


def _numpy_warn_state() -> dict[str, str]:
    current = np.geterr()
    return {k: "warn" for k in ("divide", "over", "invalid") if current[k] == "ignore"}


class _CallGuards:
    """The guards around one test call (see :func:`call_guard`)."""

    def __init__(self, item: pytest.Item, session: MLCheckSession) -> None:
        self.item = item
        self.settings = policy(session.config)
        self.seed = item.stash.get(SEED, None)
        self.allowed = allowed_warning_patterns(item, self.settings)
        self.nonfinite: NonFiniteGuard | None = None
        self.observer: WarningObserver | None = None
        self.stack = contextlib.ExitStack()

    def start(self) -> None:
        torch = sys.modules.get("torch")
        if torch is not None:
            off, classes = nonfinite_allowance(self.item, self.settings)
            if not off:
                path = getattr(self.item, "path", None)
                self.nonfinite = NonFiniteGuard(torch, self.seed, os.path.abspath(path) if path else None,
                                                fails=self.settings.fails, allowed_classes=classes)
                self.stack.callback(self.nonfinite.remove)
        numpy_state = _numpy_warn_state()
        if numpy_state:
            self.stack.enter_context(np.errstate(**numpy_state))
        self.observer = WarningObserver(
            self.allowed, "recwarn" in getattr(self.item, "fixturenames", ()), self.settings.fails,
            self.seed, tuple(numpy_state))
        self.observer.install()
        self.stack.callback(self.observer.remove)

    def stop(self, error: BaseException | None) -> str | None:
        self.stack.close()
        observer = self.observer
        if observer is not None and isinstance(error, Warning):
            observer.error(error)  # filterwarnings=error turned it into an exception
        findings = observer.findings() if observer is not None else []
        stash = self.item.stash.setdefault(FINDINGS, [])
        guard = self.nonfinite
        if guard is not None:
            self._coverage(guard)
            if guard.finding is not None:
                stash.append(guard.finding)
                if error is None and self.settings.fails:  # the test caught our exception
                    return guard.finding
        stash.extend(text for text, _ in findings)
        failing = [text for text, fails in findings if fails]
        if failing and error is None:
            return "\n\n".join(failing)
        return None

    @staticmethod
    def _coverage(guard: NonFiniteGuard) -> None:
        if not guard.checked and not guard.bypassed:
            return
        values = {"module_outputs": guard.checked, "bypassed_calls": sum(guard.bypassed.values()),
                  "bypassed_classes": dict(guard.bypassed)}
        if guard.allowed_hits:
            values["allowed_nonfinite"] = dict(guard.allowed_hits)
        message = f"checked {guard.checked} module outputs"
        if guard.bypassed:
            classes = ", ".join(f"{k} ({v})" for k, v in sorted(guard.bypassed.items()))
            message += (f"; {values['bypassed_calls']} of them from classes whose own __call__ "
                        f"bypasses nn.Module.__call__ and torch's hooks: {classes}")
        report.emit("guard", "coverage", "ok", values, message)


@contextlib.contextmanager
def call_guard(item: pytest.Item, session: MLCheckSession) -> Iterator[None]:
    """Run the non-finite and warnings guards around the test call.

    Args:
        item: The test.
        session: The plugin's session state.

    Yields:
        While the test function runs.
    """
    guards = _CallGuards(item, session)
    guards.start()
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        message = guards.stop(error)
    if message:
        pytest.fail(message, pytrace=False)


def failure_section(item: pytest.Item, session: MLCheckSession) -> str:
    """Return the seed of a failing test, the command that reproduces it and guard findings.

    Args:
        item: The failing test.
        session: The plugin's session state.

    Returns:
        The text of the report's ``mlcheck`` section.
    """
    seed = item.stash.get(SEED, None)
    base, source = base_seed(session)
    text = (f"seed {seed} (base seed {base}, from {source}); reproduce with:\n"
            f"  {reproduce_command(item.nodeid, session)}")
    if randomly_active(session.config):
        text += ("\n  (pytest-randomly is active: it seeds random and numpy itself, "
                 "pytest-mlcheck seeds torch)")
    findings = item.stash.get(FINDINGS, None)
    if findings:  # the full text is the failure message above; one line each here
        text += "\nguard findings:\n" + "\n".join(f"  {f.splitlines()[0]}" for f in findings)
    return text
