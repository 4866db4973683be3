"""The ``mlcheck`` terminal section in real sessions: checks expected to fail, the count
lines, singular and plural, tables that fit the terminal, and the fingerprint under -q."""

from __future__ import annotations

import re

import pytest

# Imported once here, outside pytester's sys.modules snapshots (see test_metric_regression).
import pytest_mlcheck.metrics  # noqa: F401
import pytest_mlcheck.shapes  # noqa: F401
from pytest_mlcheck import summary
from pytest_mlcheck.environment import fingerprint
from pytest_mlcheck.report import CheckRecord


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under CI (or a CI-like runner) tables are never cut; these tests choose the width.
    for name in ("CI", "BUILD_NUMBER", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly", *args)


def section(result: pytest.RunResult) -> list[str]:
    """Return the lines of the mlcheck terminal section (after its title)."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if re.match(r"=+ mlcheck =+$", line))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("====")), len(lines))
    return lines[start + 1:end]


CAUGHT = """
    import numpy as np
    import pytest

    def mixes_rows(x):
        return x - x.mean(axis=0)      # the batch leaks into every row

    def test_check_catches_the_bug(shape_invariants):
        with pytest.raises(AssertionError):
            shape_invariants.batch_independence(mixes_rows, "B F", dims={"B": 4, "F": 3})

    @pytest.mark.xfail(strict=True, reason="the fault is known")
    def test_known_bug(shape_invariants):
        shape_invariants.batch_independence(mixes_rows, "B F", dims={"B": 4, "F": 3})

    def test_real_failure(shape_invariants):
        shape_invariants.batch_independence(mixes_rows, "B F", dims={"B": 4, "F": 3})

    def test_fixed_twin(shape_invariants):
        shape_invariants.batch_independence(lambda x: x * 2.0, "B F", dims={"B": 4, "F": 3})

    def test_metric_caught(metric_regression):
        with pytest.raises(AssertionError, match="no baseline"):
            metric_regression.check({"accuracy": 0.9})
"""


def test_failed_checks_of_passing_tests_read_expected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_model=CAUGHT)
    result = run(pytester)
    result.assert_outcomes(passed=3, failed=1, xfailed=1)
    lines = section(result)
    text = "\n".join(lines)
    verdicts = {}
    for line in lines:
        m = re.match(r"(test_model\.py::\S+)\s+shape\s+batch_independence\s+(\S+)", line)
        if m:
            verdicts[m.group(1)] = m.group(2)
    assert verdicts == {
        "test_model.py::test_check_catches_the_bug": "expected",
        "test_model.py::test_known_bug": "expected",
        "test_model.py::test_real_failure": "FAILED",
        "test_model.py::test_fixed_twin": "ok",
    }, text
    assert "4 checks: 1 ok, 1 failed, 2 failed as expected" in lines, text
    assert "1 metric: 1 failed as expected" in lines, text
    assert re.search(r"test_model\.py::test_metric_caught\s+accuracy\s+-\s+0\.9\s+-\s+expected", text), text


def test_a_failing_check_in_a_failing_test_is_never_expected(pytester: pytest.Pytester) -> None:
    # The seeded fault's twin: the same check, not caught, stays a failure.
    pytester.makepyfile(test_model="""
        def test_metric(metric_regression):
            metric_regression.check({"accuracy": 0.9})
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    assert "1 metric: 1 new" in section(result)


def test_plural_and_singular(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_model="""
        import pytest
        @pytest.mark.parametrize("n", [1, 2])
        def test_metrics(metric_regression, n):
            metric_regression.check({f"m{i}": float(i) for i in range(n)})
    """)
    result = run(pytester, "--mlcheck-update")
    result.assert_outcomes(passed=2)
    assert "3 metrics: 3 written" in section(result)
    pytester.makepyfile(test_model="""
        def test_one(metric_regression):
            metric_regression.check({"m0": 0.0})
    """)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert "1 metric: 1 ok" in section(result)


LONG_IDS = """
    import pytest
    CASES = [f"fold{{i:03d}}-resnet50" for i in range(200)]
    @pytest.mark.parametrize("case", CASES)
    def test_evaluation_of_the_model_on_a_dataset(metric_regression, case):
        metric_regression.check({{"top1_accuracy_on_the_validation_split": {value}}})
"""


def _table_lines(lines: list[str]) -> list[str]:
    header = next(i for i, line in enumerate(lines) if line.startswith("test "))
    end = next(i for i in range(header, len(lines)) if re.match(r"\d+ metrics?:", lines[i]))
    return lines[header:end]


@pytest.mark.parametrize("columns", [80, 200])
def test_tables_fit_the_terminal_width(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                       columns: int) -> None:
    pytester.makepyfile(test_model=LONG_IDS.format(value="0.75"))
    monkeypatch.setenv("COLUMNS", str(columns))
    run(pytester, "--mlcheck-update").assert_outcomes(passed=200)
    pytester.makepyfile(test_model=LONG_IDS.format(value="0.5"))
    result = run(pytester, "--tb=no", "-q", "-rN")
    result.assert_outcomes(failed=200)
    table = _table_lines(section(result))
    assert len(table) == 2 + 200
    assert max(len(line) for line in table) <= columns, "\n".join(table[:4])
    rows = table[2:]
    # The test id is cut from the left, so each row still ends with its own case.
    assert all(re.search(r"fold\d{3}-resnet50\]", r) for r in rows)
    assert len({r.split()[0] for r in rows}) == 200
    assert all(r.rstrip().endswith("REGRESSED") for r in rows)
    if columns == 80:
        assert all(r.startswith("…") for r in rows)
    else:
        assert rows[0].startswith("test_model.py::test_evaluation_of_the_model_on_a_dataset[")
        assert "0.75" in rows[0] and "0.5" in rows[0]
    assert "200 metrics: 200 regressed" in section(result)


def test_quiet_still_shows_the_fingerprint_with_the_flag(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_model="def test_x():\n    pass\n")
    info = fingerprint()
    result = run(pytester, "-q", "--mlcheck")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"mlcheck: python {info['python']}, numpy {info['numpy']}*"])
    quiet = run(pytester, "-q")
    assert "mlcheck: python" not in quiet.stdout.str()
    assert "= mlcheck =" not in quiet.stdout.str()


# -- the formatting functions on their own ---------------------------------------------


def record(nodeid: str, verdict: str, kind: str = "determinism", message: str = "") -> CheckRecord:
    return CheckRecord(kind=kind, nodeid=nodeid, name="check", verdict=verdict, message=message)


def test_plural_words() -> None:
    assert summary.plural(1, "metric") == "1 metric"
    assert summary.plural(0, "metric") == "0 metrics"
    assert summary.plural(2, "array") == "2 arrays"
    assert summary.plural(1, "ok row") == "1 ok row"
    assert summary.plural(3, "ok row") == "3 ok rows"


def test_count_line_without_outcomes_expects_nothing() -> None:
    records = [record("t::a", "FAILED"), record("t::b", "ok")]
    assert summary.count_line(records, "check") == "2 checks: 1 ok, 1 failed"
    assert summary.count_line(records, "check", {"t::a": "passed"}) == "2 checks: 1 ok, 1 failed as expected"
    assert summary.count_line(records, "check", {"t::a": "failed"}) == "2 checks: 1 ok, 1 failed"


def test_widths_narrow_to_forty_and_drop_columns_in_order() -> None:
    records = [record("tests/some/deep/path/test_mod.py::test_" + "x" * 60, "FAILED",
                      message="outputs differ at output['logits']: 3 of 12 elements differ")]
    wide = summary.lines(records, [], [], width=None)
    assert any("outputs differ at output['logits']: 3 of 12 elements differ" in line for line in wide)
    for width in (40, 60, 80, 120):
        out = summary.lines(records, [], [], width=width)
        table = out[:-1]
        assert max(map(len, table)) <= width, (width, table)
        assert "verdict" in table[0] and " FAILED" in table[2]
        assert table[2].startswith("…") and table[2].split()[0].endswith("x" * 20)
    narrow = summary.lines(records, [], [], width=40)
    assert "detail" not in narrow[0] and "check" not in narrow[0].split()[1:]


def test_terminal_width_rules() -> None:
    assert summary.terminal_width({"COLUMNS": "120"}) == 120
    assert summary.terminal_width({"COLUMNS": "120", "CI": "true"}) == 120
    assert summary.terminal_width({"CI": "true"}) is None
    assert summary.terminal_width({"BUILD_NUMBER": "7"}) is None
    assert summary.terminal_width({"COLUMNS": "10"}) == 80
    assert summary.terminal_width({"COLUMNS": "junk"}) >= summary.MIN_WIDTH


def test_a_long_green_run_lists_only_real_failures_unless_verbose() -> None:
    """243 rows of ``ok`` and ``expected`` bury the one that matters; -v shows them all."""
    records = [record(f"t::ok{i}", "ok") for i in range(60)]
    records += [record(f"t::caught{i}", "FAILED") for i in range(5)]
    records.append(record("t::real", "FAILED", message="outputs differ"))
    outcomes = {f"t::caught{i}": "passed" for i in range(5)} | {"t::real": "failed"}
    out = summary.lines(records, [], [], outcomes=outcomes, width=None)
    body = [line for line in out if line.startswith("t::")]
    assert body == [line for line in out if "t::real" in line] and len(body) == 1
    assert "(65 ok or expected rows not shown; -v shows every row)" in out
    assert out[-1] == "66 checks: 60 ok, 1 failed, 5 failed as expected"
    verbose = summary.lines(records, [], [], verbose=1, outcomes=outcomes, width=None)
    assert len([line for line in verbose if line.startswith("t::")]) == 66
    short = summary.lines(records[:10], [], [], width=None)
    assert len([line for line in short if line.startswith("t::")]) == 10


def test_guard_coverage_is_one_line_not_a_row_per_test() -> None:
    cov = [CheckRecord(kind="guard", nodeid=f"t::{i}", name="coverage", verdict="ok",
                       values={"module_outputs": 10, "bypassed_classes": {"GP": i}})
           for i in range(3)]
    out = summary.lines(cov + [record("t::x", "ok")], [], [], width=None)
    assert not any(line.startswith("t::0") for line in out)
    assert out[-1] == ("non-finite guard: 30 module outputs checked in 3 tests; 3 calls not "
                       "checked (their class bypasses nn.Module.__call__): GP (3)")
    one = summary.coverage_line([CheckRecord(kind="guard", nodeid="t::a", name="coverage",
                                             verdict="ok", values={"module_outputs": 10})])
    assert one == "non-finite guard: 10 module outputs checked in 1 test"
