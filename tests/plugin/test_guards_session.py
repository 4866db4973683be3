"""The guards inside real suites: warnings pass through untouched, report mode, opt-outs,
the last finite module, torch.compile, and coverage (issue 16, items 7-11).

Every scenario is a minimal reproduction of what a real suite did, written here.
"""

from __future__ import annotations

import json
import re

import pytest

try:  # imported before pytester snapshots sys.modules (see test_guards.py)
    import torch
    import torch._dynamo  # noqa: F401
    import torch.distributions  # noqa: F401
except ImportError:  # pragma: no cover - numpy-only environments
    torch = None

PLAIN = ("-p", "no:cacheprovider", "-p", "no:randomly")
GUARDED = PLAIN + ("--mlcheck",)

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def _warning_count(result: pytest.RunResult) -> int:
    """The number of warnings pytest's own summary reports (0 when it prints none)."""
    match = re.search(r"(\d+) warnings?", result.stdout.lines[-1])
    return int(match.group(1)) if match else 0


def _records(pytester: pytest.Pytester, name: str = "report.json") -> list[dict]:
    return json.loads((pytester.path / name).read_text())["records"]


# ---- item 7: warnings reach the test and pytest as without the plugin -------------------

WARNING_TESTS = """
import warnings
import numpy as np
import pytest


def helper():
    warnings.warn("x is deprecated", UserWarning)


def test_recwarn_counts_one_warning(recwarn):
    warnings.warn("x", UserWarning)
    assert len(recwarn) == 1


def test_recwarn_sees_a_catalogued_warning_at_once(recwarn):
    np.log(np.zeros(2))  # numpy-divide: this test checks warnings itself
    assert len(recwarn) == 1 and "divide by zero" in str(recwarn[0].message)


def test_recwarn_empty_when_nothing_warns(recwarn):
    np.log(np.ones(2))
    assert not recwarn.list


def test_recwarn_not_empty_when_something_warns(recwarn):
    warnings.warn("informative", UserWarning)
    assert not recwarn.list  # must FAIL, as it does without the plugin


def test_pytest_warns_counts_every_repeat():
    with pytest.warns(UserWarning) as record:
        for _ in range(3):
            warnings.warn("same", UserWarning)
    assert len(record) == 3


def test_pytest_warns_a_catalogued_warning():
    with pytest.warns(RuntimeWarning, match="divide by zero"):
        np.log(np.zeros(2))


def test_deprecated_call():
    with pytest.deprecated_call():
        warnings.warn("old", DeprecationWarning)


def test_repeated_identical_warnings_all_reach_the_summary():
    for _ in range(5):
        warnings.simplefilter("always")
        helper()


def test_warning_caught_by_the_code_itself():
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        np.log(np.zeros(2))
    assert len(log) == 1
"""


def test_warnings_reach_tests_and_pytest_as_without_the_plugin(pytester):
    pytester.makepyfile(test_w=WARNING_TESTS)
    plain = pytester.runpytest(*PLAIN)
    guarded = pytester.runpytest(*GUARDED, "--mlcheck-report=report.json")
    plain.assert_outcomes(passed=8, failed=1, warnings=_warning_count(plain))
    guarded.assert_outcomes(passed=8, failed=1, warnings=_warning_count(plain))
    assert _warning_count(plain) == _warning_count(guarded) == 5  # every repeat reaches the summary
    for result in (plain, guarded):
        result.stdout.fnmatch_lines(["FAILED test_w.py::test_recwarn_not_empty_when_something_warns*"])
    expected = {r["nodeid"].split("::")[1] for r in _records(pytester)
                if r["name"] == "warning:numpy-divide" and r["verdict"] == "ok" and r["values"].get("expected")}
    assert expected == {"test_recwarn_sees_a_catalogued_warning_at_once", "test_pytest_warns_a_catalogued_warning",
                        "test_warning_caught_by_the_code_itself"}


def test_a_warning_pytest_warns_did_not_match_is_still_a_finding(pytester):
    pytester.makepyfile(test_w="""
        import warnings
        import numpy as np
        import pytest

        def test_unmatched():
            with pytest.warns(UserWarning, match="something else"):
                warnings.warn("something else", UserWarning)
                np.log(np.zeros(2))  # not what the block expects: pytest passes it on

        def test_matched():
            with pytest.warns(RuntimeWarning, match="divide by zero"):
                np.log(np.zeros(2))
    """)
    result = pytester.runpytest(*GUARDED)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*silent-bug warning numpy-divide", "FAILED test_w.py::test_unmatched*"])
    assert "issued 2 times" not in result.stdout.str()  # seen in the block, then passed on: once


def test_warnings_only_the_guard_switched_on_are_not_passed_on(pytester):
    pytester.makeconftest("""
        import numpy as np
        np.seterr(all="ignore")  # a library did this at import time
    """)
    pytester.makepyfile(test_w="""
        import numpy as np

        def test_quiet_without_the_plugin(recwarn):
            np.log(np.zeros(2))
            assert not recwarn.list

        def test_divide():
            np.log(np.zeros(2))
    """)
    plain = pytester.runpytest(*PLAIN)
    plain.assert_outcomes(passed=2)
    guarded = pytester.runpytest(*GUARDED)
    # recwarn still sees nothing; the guard judges what numpy would have said
    guarded.assert_outcomes(passed=1, failed=1, warnings=0)
    guarded.stdout.fnmatch_lines(["*silent-bug warning numpy-divide*", "FAILED test_w.py::test_divide*"])


# ---- item 8: which entries fail, report mode, merged findings ---------------------------

FINDINGS = """
import warnings
import numpy as np

class UndefinedMetricWarning(UserWarning):  # sklearn.exceptions, never imported by the guard
    pass

def test_incidental_metric_warning():
    warnings.simplefilter("always")
    for _ in range(3):
        warnings.warn("F-score is ill-defined and being set to 0.0 due to no true nor predicted "
                      "samples.", UndefinedMetricWarning)

def test_divide_three_times():
    warnings.simplefilter("always")  # otherwise Python shows a repeat from one line once
    for _ in range(3):
        np.log(np.zeros(2))

def test_clean():
    np.log(np.ones(2))
"""


def test_report_only_entries_and_merged_findings(pytester):
    pytester.makepyfile(test_f=FINDINGS)
    result = pytester.runpytest(*GUARDED, "--mlcheck-report=report.json")
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    section = out.split("_ test_divide_three_times _", 1)[1].split("mlcheck", 1)[0]
    assert section.count("silent-bug warning numpy-divide") == 1
    assert "silent-bug warning numpy-divide (issued 3 times)" in section
    records = {(r["nodeid"].split("::")[1], r["name"]): r for r in _records(pytester)}
    metric = records[("test_incidental_metric_warning", "warning:sklearn-undefined-metric")]
    assert metric["verdict"] == "reported" and metric["values"]["count"] == 3
    assert "only reported by default" in metric["message"]
    assert records[("test_divide_three_times", "warning:numpy-divide")]["values"]["count"] == 3


@pytest.mark.parametrize("how", ["ini", "option"])
def test_report_mode_fails_nothing_and_lists_everything(pytester, how):
    pytester.makepyfile(test_f=FINDINGS)
    args = list(GUARDED) + ["--mlcheck-report=report.json"]
    if how == "ini":
        pytester.makeini("[pytest]\nmlcheck_guards = report\n")
    else:
        pytester.makeini("[pytest]\nmlcheck_guards = fail\n")  # the option wins
        args.append("--mlcheck-guards=report")
    if torch is not None:
        pytester.makepyfile(test_nan="""
            import torch
            def test_nan():
                torch.nn.Linear(2, 2)(torch.full((1, 2), float("nan")))
        """)
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=4 if torch is not None else 3)
    verdicts = {(r["nodeid"].split("::")[1], r["name"]): r["verdict"] for r in _records(pytester)}
    assert verdicts[("test_divide_three_times", "warning:numpy-divide")] == "reported"
    if torch is not None:
        assert verdicts[("test_nan", "nonfinite")] == "reported"


def test_a_bad_guards_mode_is_a_usage_error(pytester):
    pytester.makeini("[pytest]\nmlcheck_guards = warn\n")
    pytester.makepyfile(test_f="def test_ok():\n    pass\n")
    result = pytester.runpytest(*GUARDED)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option mlcheck_guards: 'warn' is not a guards mode; use 'fail'*"])


# ---- item 9: the last finite module, the library line, mlcheck_allow_nonfinite -----------

LOGITS_MODEL = """
import torch
from torch import nn


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(4, 3)

    def forward(self, x):
        return self.dense(x)  # raw logits, not probabilities


def get_loss(y_pred, y_true, criterion):
    y_pred = torch.log(y_pred)  # the library takes log(probabilities): NaN for logits < 0
    return criterion(y_pred, y_true)


def fit(net, X, y):
    criterion = nn.NLLLoss()
    return get_loss(net(X), y, criterion)
"""


@needs_torch
def test_nan_between_modules_names_the_last_finite_module_and_the_library_line(pytester):
    pytester.makepyfile(mylib=LOGITS_MODEL)
    pytester.syspathinsert()
    pytester.makepyfile(test_fit="""
        import torch
        from mylib import Classifier, fit

        def test_fit_on_logits():
            torch.manual_seed(0)
            fit(Classifier(), torch.randn(16, 4), torch.randint(0, 3, (16,)))

        def test_fit_on_probabilities():
            torch.manual_seed(0)
            net = torch.nn.Sequential(Classifier(), torch.nn.Softmax(dim=-1))
            fit(net, torch.randn(16, 4), torch.randint(0, 3, (16,)))
    """)
    result = pytester.runpytest(*GUARDED, "--mlcheck-report=report.json")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "NaN/Inf in the output of module `NLLLoss` (the outermost module called)." in out
    # the model's output (its last module) was the last finite one: the log came after it
    assert "`Classifier` returned finite values; the NaN/Inf appeared between it and `NLLLoss`" in out
    lines = out.splitlines()
    at = lines.index(next(line for line in lines if "innermost code outside torch and the test" in line))
    assert lines[at + 1].strip().endswith("mylib.py:16: return criterion(y_pred, y_true)")
    assert lines[at + 2].strip().endswith("mylib.py:21: return get_loss(net(X), y, criterion)")
    assert "test_fit.py:6: fit(Classifier(), torch.randn(16, 4), torch.randint(0, 3, (16,)))" in out
    nonfinite = [r for r in _records(pytester) if r["name"] == "nonfinite"]
    assert [r["values"]["last_finite"] for r in nonfinite] == ["Classifier"]


@needs_torch
def test_allow_nonfinite_ini_takes_test_globs_and_module_classes(pytester):
    pytester.makeini("""
        [pytest]
        mlcheck_allow_nonfinite =
            test_a.py::test_overflow_on_purpose*
            Mask*
    """)
    pytester.makepyfile(test_a="""
        import pytest
        import torch
        from torch import nn

        class MaskFill(nn.Module):  # -inf where attention must not look: expected
            def forward(self, scores):
                return scores.masked_fill(torch.eye(3, dtype=torch.bool), float("-inf"))

        class Exp(nn.Module):
            def forward(self, x):
                return torch.exp(x)

        def test_overflow_on_purpose_prod():
            Exp()(torch.full((2,), 1000.0))

        def test_masked_attention():
            scores = MaskFill()(torch.randn(3, 3))
            assert torch.isfinite(torch.softmax(scores, -1)).all()

        def test_overflow_by_accident():
            Exp()(torch.full((2,), 1000.0))

        @pytest.mark.mlcheck_allow_nonfinite("Exp")
        def test_allowed_by_marker_argument():
            Exp()(torch.full((2,), 1000.0))

        @pytest.mark.mlcheck_allow_nonfinite("MaskFill")
        def test_marker_argument_allows_only_that_class():
            Exp()(torch.full((2,), 1000.0))
    """)
    result = pytester.runpytest(*GUARDED)
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines_random(["FAILED test_a.py::test_overflow_by_accident*",
                                        "FAILED test_a.py::test_marker_argument_allows_only_that_class*"])
    assert "or the module class `Exp` in the ini option mlcheck_allow_nonfinite" in result.stdout.str()


# ---- item 10: torch.compile sees no global hooks and does not recompile ------------------


@needs_torch
def test_torch_compile_does_not_warn_or_recompile_under_the_guard(pytester):
    pytester.makepyfile(test_c="""
        import pytest
        import torch
        from torch import nn
        from torch._dynamo.utils import counters

        torch.manual_seed(0)
        NET = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
        COMPILED_NET = torch.compile(NET, backend="eager")
        COMPILED_FN = torch.compile(lambda x: NET(x).softmax(-1), backend="eager")

        @pytest.mark.parametrize("i", range(3))
        def test_compiled(i):
            x = torch.randn(4, 8)
            assert torch.allclose(COMPILED_NET(x), NET(x))
            assert torch.allclose(COMPILED_FN(x), NET(x).softmax(-1))

        def test_graphs_compiled_once():
            # two graphs, compiled in the first test and reused: no recompilation per test
            assert counters["stats"]["unique_graphs"] == 2

        def test_compiled_nan_is_still_caught_at_the_compiled_module():
            COMPILED_NET(torch.full((1, 8), float("nan")))
    """)
    result = pytester.runpytest(*GUARDED, "-W", "error::UserWarning", "-p", "no:randomly")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*NaN/Inf in the output of module `OptimizedModule`*"])
    assert "global hooks" not in result.stdout.str()


# ---- item 11: coverage, hook bypasses, containers -----------------------------------------


@needs_torch
def test_coverage_bypassing_wrappers_and_output_containers(pytester):
    pytester.makepyfile(test_cov="""
        import dataclasses
        import torch
        from torch import nn
        from torch.distributions import Normal

        class BypassingModule(nn.Module):  # as gpytorch.Module: forward called directly
            def __call__(self, *args, **kwargs):
                return self.forward(*args, **kwargs)

        class Mean(BypassingModule):
            def forward(self, x):
                return x.mean(-1)

        class GP(BypassingModule):
            def __init__(self):
                super().__init__()
                self.mean = Mean()
                self.scale = nn.Linear(3, 1)  # a plain torch module inside

            def forward(self, x):
                return Normal(self.mean(x), self.scale(x).squeeze(-1).exp())

        class PolitePassThrough(nn.Module):  # overrides __call__ but reaches nn.Module's
            def __call__(self, *args, **kwargs):
                return super().__call__(*args, **kwargs)

            def forward(self, x):
                return x * 2

        @dataclasses.dataclass
        class Output:
            logits: torch.Tensor
            loss: torch.Tensor

        class Head(nn.Module):
            def forward(self, x):
                return Output(logits=x, loss=x.sum().log())

        def test_gp_fine():
            GP()(torch.rand(4, 3))

        def test_gp_nan_target_placed_on_purpose():
            x = torch.rand(4, 3)
            x[1, 1] = float("nan")
            GP()(x)

        def test_polite_wrapper_is_not_a_bypass():
            PolitePassThrough()(torch.ones(2))

        def test_nan_inside_a_dataclass_output():
            Head()(-torch.ones(2))  # log of a negative sum

        def test_nan_inside_a_distribution():
            Normal(torch.zeros(2), torch.ones(2))  # not a module output: not checked
            class Dist(nn.Module):
                def forward(self, x):
                    return Normal(x, torch.ones_like(x))
            Dist()(torch.full((2,), float("nan")))
    """)
    result = pytester.runpytest(*GUARDED, "--mlcheck-report=report.json")
    result.assert_outcomes(passed=2, failed=3)
    out = result.stdout.str()
    assert "NaN/Inf in the output of module `mean` (Mean) inside the model `GP`." in out
    assert "output.logits" not in out and "output.loss: 1 NaN of 1 elements" in out
    assert "output.loc: 2 NaN of 2 elements" in out
    coverage = {r["nodeid"].split("::")[1]: r for r in _records(pytester) if r["name"] == "coverage"}
    fine = coverage["test_gp_fine"]
    assert fine["values"]["module_outputs"] == 3  # GP, its Mean, its Linear
    assert fine["values"]["bypassed_classes"] == {"GP": 1, "Mean": 1}
    assert "2 of them from classes whose own __call__ bypasses nn.Module.__call__" in fine["message"]
    polite = coverage["test_polite_wrapper_is_not_a_bypass"]
    assert polite["values"]["module_outputs"] == 1 and polite["values"]["bypassed_calls"] == 0


@needs_torch
def test_wrappers_are_removed_after_each_test(pytester):
    pytester.makepyfile(test_r="""
        import torch
        from torch import nn

        class Bypassing(nn.Module):
            def __call__(self, x):
                return self.forward(x)

            def forward(self, x):
                return x

        ORIGINAL = Bypassing.__dict__["__call__"]
        MODULE_CALL = nn.Module.__dict__["__call__"]

        def test_wrapped_during_the_call():
            assert Bypassing.__dict__["__call__"] is not ORIGINAL
            assert Bypassing.__dict__["__call__"].__wrapped__ is ORIGINAL
            assert nn.Module.__dict__["__call__"] is not MODULE_CALL

        def test_restored_around_the_call(request):
            request.addfinalizer(lambda: None)

        def teardown_function(function):
            assert Bypassing.__dict__["__call__"] is ORIGINAL
            assert nn.Module.__dict__["__call__"] is MODULE_CALL
    """)
    pytester.runpytest(*GUARDED).assert_outcomes(passed=2)


def test_guarded_run_of_a_warning_suite_under_xdist_matches_plain(pytester):
    pytester.makepyfile(test_w=WARNING_TESTS)
    plain = pytester.runpytest_subprocess(*PLAIN)
    guarded = pytester.runpytest_subprocess(*GUARDED, "-n", "2")
    plain.assert_outcomes(passed=8, failed=1)
    guarded.assert_outcomes(passed=8, failed=1)
