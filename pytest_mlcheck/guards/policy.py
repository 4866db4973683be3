"""What the guards fail on and what they only report, read once per session from the config.

* ``mlcheck_guards = fail | report`` (ini) or ``--mlcheck-guards=fail|report``: in
  ``report`` mode no guard fails a test; every finding goes to the summary and the JSON
  report with the verdict ``reported``, so a project can switch the guards on with zero
  failures, read what they find, then make them failures. In ``fail`` mode (the
  default) a finding fails its test, except catalogue entries whose default is
  ``report`` (see :mod:`pytest_mlcheck.silent_warnings`).
* ``mlcheck_allow_warnings``: catalogued warnings allowed project-wide.
* ``mlcheck_allow_nonfinite``: one entry a line; an entry that names a test (it contains
  ``::``, ``/`` or ``.py``) is a node-id glob whose tests run without the non-finite
  guard; any other entry is a module class-name glob whose NaN/Inf outputs are expected
  (an attention mask filled with ``-inf``).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re

import pytest

from ..silent_warnings import compile_allowed

SEED = pytest.StashKey[int]()
FINDINGS = pytest.StashKey[list]()
_POLICY = pytest.StashKey["GuardPolicy"]()

MODES = ("fail", "report")

#: The verdict of a finding that does not fail its test.
REPORTED = "reported"


@dataclasses.dataclass(frozen=True)
class GuardPolicy:
    """The session-wide guard settings.

    Attributes:
        mode: ``fail`` or ``report``.
        allowed_warnings: Compiled ``mlcheck_allow_warnings`` patterns.
        nonfinite_tests: ``mlcheck_allow_nonfinite`` node-id globs.
        nonfinite_classes: ``mlcheck_allow_nonfinite`` module class-name globs.
    """

    mode: str = "fail"
    allowed_warnings: tuple[re.Pattern, ...] = ()
    nonfinite_tests: tuple[str, ...] = ()
    nonfinite_classes: tuple[str, ...] = ()

    @property
    def fails(self) -> bool:
        """Whether findings fail tests (``mode`` is ``fail``)."""
        return self.mode == "fail"


def _ini(config: pytest.Config, name: str, default: object) -> object:
    try:
        return config.getini(name)
    except ValueError:  # the key is not registered (an older plugin.py): its default
        return default


def read_mode(config: pytest.Config) -> str:
    """Return the guards' mode: ``--mlcheck-guards`` wins over the ini key ``mlcheck_guards``.

    Args:
        config: The pytest config.

    Returns:
        ``fail`` or ``report``.

    Raises:
        pytest.UsageError: When the value is neither.
    """
    given = config.getoption("mlcheck_guards", None)
    where = "--mlcheck-guards"
    if not given:
        given = _ini(config, "mlcheck_guards", "") or "fail"
        where = "ini option mlcheck_guards"
    value = str(given).strip().lower()
    if value not in MODES:
        raise pytest.UsageError(f"{where}: {given!r} is not a guards mode; use 'fail' (findings fail "
                                "their test) or 'report' (findings are only listed in the summary)")
    return value


def _is_test_glob(entry: str) -> bool:
    return "::" in entry or "/" in entry or ".py" in entry


def policy(config: pytest.Config) -> GuardPolicy:
    """Return the session's :class:`GuardPolicy`, read from the config on first use.

    Args:
        config: The pytest config.

    Returns:
        The policy.
    """
    cached = config.stash.get(_POLICY, None)
    if cached is not None:
        return cached
    nonfinite = [str(e).strip() for e in _ini(config, "mlcheck_allow_nonfinite", []) or []]
    nonfinite = [e for e in nonfinite if e and not e.startswith("#")]
    cached = GuardPolicy(
        mode=read_mode(config),
        allowed_warnings=tuple(compile_allowed(_ini(config, "mlcheck_allow_warnings", []) or [],
                                               "ini option mlcheck_allow_warnings")),
        nonfinite_tests=tuple(e for e in nonfinite if _is_test_glob(e)),
        nonfinite_classes=tuple(e for e in nonfinite if not _is_test_glob(e)),
    )
    config.stash[_POLICY] = cached
    return cached


def allowed_warning_patterns(item: pytest.Item, settings: GuardPolicy) -> list[re.Pattern]:
    """Return the allow patterns for one test: the ini's, then its markers'.

    Args:
        item: The test.
        settings: The session's policy.

    Returns:
        Compiled patterns (catalogue ids or message regexes).

    Raises:
        ValueError: When a marker gives no pattern, or an invalid one.
    """
    patterns: list[str] = []
    for mark in item.iter_markers("mlcheck_allow_warning"):
        given = list(mark.args) + ([mark.kwargs["pattern"]] if "pattern" in mark.kwargs else [])
        if not given:
            raise ValueError(f"{item.nodeid}: @pytest.mark.mlcheck_allow_warning needs a pattern, e.g. "
                             "@pytest.mark.mlcheck_allow_warning('divide by zero') or a catalogue id "
                             "such as 'numpy-divide'")
        patterns += given
    if not patterns:
        return list(settings.allowed_warnings)
    return list(settings.allowed_warnings) + compile_allowed(
        patterns, f"{item.nodeid}: @pytest.mark.mlcheck_allow_warning")


def nonfinite_allowance(item: pytest.Item, settings: GuardPolicy) -> tuple[bool, tuple[str, ...]]:
    """Return whether the non-finite guard is off for this test, and the allowed module classes.

    Args:
        item: The test.
        settings: The session's policy.

    Returns:
        ``(off, class_globs)``: ``off`` when a bare ``@pytest.mark.mlcheck_allow_nonfinite``
        marks the test or an ini node-id glob matches it; ``class_globs`` from the ini and
        from markers that name module classes (``mlcheck_allow_nonfinite("MaskFill")``).

    Raises:
        TypeError: When a marker argument is not a string.
    """
    classes = list(settings.nonfinite_classes)
    for mark in item.iter_markers("mlcheck_allow_nonfinite"):
        if not mark.args:
            return True, ()
        for arg in mark.args:
            if not isinstance(arg, str):
                raise TypeError(f"{item.nodeid}: @pytest.mark.mlcheck_allow_nonfinite takes module "
                                f"class names, got {type(arg).__name__} ({arg!r})")
            classes.append(arg)
    if any(fnmatch.fnmatchcase(item.nodeid, glob) for glob in settings.nonfinite_tests):
        return True, ()
    return False, tuple(classes)
