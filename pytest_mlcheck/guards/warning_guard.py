"""The warnings guard: sees each warning as it is issued and passes it on unchanged.

A test, ``recwarn``, ``pytest.warns`` and pytest's warning summary must see exactly what
they see without the plugin: every warning, at once, repeated ones included. So the
guard never catches or replays warnings. It wraps ``warnings._showwarnmsg``, the one
function through which Python delivers every warning that passed the filters (to a
recorder such as ``recwarn`` or pytest's own, or to stderr), looks at the warning, and
calls the function it replaced. The filters, the "once" registries and the recorders are
untouched, so the order, the count and the timing of warnings do not change.

A catalogued warning (:mod:`pytest_mlcheck.silent_warnings`) is a finding, except when:

* an allow pattern covers it (marker or ``mlcheck_allow_warnings``);
* the test is checking warnings itself: it requested ``recwarn``, or the warning went to a
  recorder opened during the test (``pytest.warns``, ``pytest.deprecated_call``,
  ``warnings.catch_warnings(record=True)``). Such a warning is expected and recorded as
  ``ok``. A warning ``pytest.warns`` did not match is re-issued by pytest when the block
  ends, and is judged then.

Identical findings (same entry, message and place) merge into one, with a count.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

from .. import report
from ..silent_warnings import find, is_allowed
from .policy import REPORTED

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_RECWARN_FILE = os.sep + os.path.join("_pytest", "recwarn.py")

#: numpy floating-point messages, by the ``np.errstate`` key that controls them.
_NUMPY_FP_KINDS = (("divide", "divide by zero encountered"), ("over", "overflow encountered"),
                   ("invalid", "invalid value encountered"))


class WarningObserver:
    """Watches the warnings one test call issues (see the module docstring).

    Args:
        allowed: Compiled allow patterns.
        uses_recwarn: Whether the test requested the ``recwarn`` fixture.
        fails: Whether findings fail the test (``mlcheck_guards = fail``).
        seed: The test's seed, quoted in findings.
        numpy_enabled: ``np.errstate`` keys the guard switched from ``ignore`` to ``warn``:
            their warnings would not exist without the plugin, so they are judged but not
            passed on.
    """

    def __init__(self, allowed: list, uses_recwarn: bool, fails: bool, seed: int | None,
                 numpy_enabled: tuple[str, ...] = ()) -> None:
        self.allowed = allowed
        self.uses_recwarn = uses_recwarn
        self.fails = fails
        self.seed = seed
        self.numpy_enabled = numpy_enabled
        #: key -> [entry, category name, message, where, count, expected]
        self.seen: dict[tuple, list] = {}
        self._previous: Any = None
        self._recorder: Any = None
        self._installed = False

    def install(self) -> None:
        """Start observing: wrap ``warnings._showwarnmsg`` (restored by :meth:`remove`)."""
        self._previous = getattr(warnings, "_showwarnmsg", None)
        if self._previous is None:  # pragma: no cover - a Python without the hook
            return
        # Where warnings go when the call starts (pytest's recorder, recwarn's, stderr):
        # a different destination later means a recorder opened inside the test.
        self._recorder = getattr(warnings, "_showwarnmsg_impl", None)
        warnings._showwarnmsg = self._show
        self._installed = True

    def remove(self) -> None:
        """Stop observing and put back what :meth:`install` replaced."""
        if self._installed:
            if getattr(warnings, "_showwarnmsg", None) == self._show:
                warnings._showwarnmsg = self._previous
            self._installed = False

    def _show(self, msg: Any) -> None:
        # Any error of ours must not change what the test sees: the warning is passed on
        # whatever happens, and exactly once.
        pass_on = True
        if self._installed:
            try:
                pass_on = self._observe(msg)
            except Exception:  # pragma: no cover - defensive: never break warnings
                pass_on = True
        if pass_on:
            self._previous(msg)

    def _observe(self, msg: Any) -> bool:
        """Judge one delivered warning; return whether to pass it on."""
        category = msg.category
        text = str(msg.message)
        filename = str(msg.filename)
        pass_on = True
        if self.numpy_enabled and issubclass(category, RuntimeWarning):
            for kind, start in _NUMPY_FP_KINDS:
                if kind in self.numpy_enabled and start in text:
                    pass_on = False  # only exists because the guard set numpy to warn
                    break
        if filename.startswith(_PACKAGE_DIR):
            return pass_on  # our own checks' arithmetic is not the user's bug
        entry = find(category, text)
        if entry is None:
            return pass_on
        where = f"{filename}:{msg.lineno}"
        key = (entry.id, category.__name__, text, where)
        expected = self.uses_recwarn or (
            getattr(warnings, "_showwarnmsg_impl", None) != self._recorder)
        record = self.seen.get(key)
        if record is None:
            self.seen[key] = [entry, category.__name__, text, where, 1, expected]
        elif expected or not _reissued_by_pytest_warns():
            record[4] += 1
            record[5] = record[5] and expected
        else:  # pytest.warns passes on a warning it did not match: judged now, not twice
            record[5] = False
        return pass_on

    def error(self, exc: BaseException) -> None:
        """Judge a warning that a filter turned into the test's exception."""
        entry = find(type(exc), str(exc))
        if entry is not None:
            key = (entry.id, type(exc).__name__, str(exc), "raised as an error by filterwarnings")
            self.seen.setdefault(key, [entry, type(exc).__name__, str(exc), key[3], 1, False])

    def findings(self) -> list[tuple[str, bool]]:
        """Emit one record per distinct catalogued warning; return ``(text, fails)`` of findings.

        Returns:
            The findings' texts, each with whether it fails the test.
        """
        out: list[tuple[str, bool]] = []
        for entry, category, text, where, count, expected in self.seen.values():
            values = {"id": entry.id, "category": category, "message": text[:500], "where": where,
                      "count": count}
            if expected:
                report.emit("guard", f"warning:{entry.id}", "ok", {**values, "expected": True})
                continue
            if is_allowed(entry, text, self.allowed):
                report.emit("guard", f"warning:{entry.id}", "ok", {**values, "allowed": True})
                continue
            fails = self.fails and entry.default == "fail"
            first = text.strip().splitlines()[0] if text.strip() else text
            times = f" (issued {count} times)" if count > 1 else ""
            lines = [f"silent-bug warning {entry.id}{times}",
                     f"  {category} at {where}: {first}",
                     f"  {entry.explanation}"]
            if not fails:
                lines.append("  (reported, not failed: " + (
                    "mlcheck_guards = report" if entry.default == "fail" else
                    "this entry is only reported by default, as it is often provoked incidentally"
                ) + ")")
            lines.append(f"  test seed: {self.seed}. If this is expected, allow it for this test with "
                         f"@pytest.mark.mlcheck_allow_warning({entry.id!r}) or project-wide with the "
                         "ini option mlcheck_allow_warnings.")
            message = "\n".join(lines)
            report.emit("guard", f"warning:{entry.id}", "FAILED" if fails else REPORTED, values, message)
            out.append((message, fails))
        return out


def _reissued_by_pytest_warns() -> bool:
    """Whether the warning being delivered comes from ``pytest.warns`` leaving its block."""
    frame: Any = sys._getframe(1)
    for _ in range(8):
        if frame is None:
            return False
        if frame.f_code.co_filename.endswith(_RECWARN_FILE):
            return True
        frame = frame.f_back
    return False
