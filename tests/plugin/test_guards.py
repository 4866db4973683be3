"""The --mlcheck session guards, in real pytest sessions: non-finite outputs and silent-bug warnings."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from pytest_mlcheck.silent_warnings import CATALOGUE, compile_allowed, find, is_allowed

try:  # imported before pytester snapshots sys.modules: torch cannot be imported twice,
    import torch  # and in-process sessions would otherwise drop its lazily imported
    import torch._dynamo  # noqa: F401  submodules (optimizers import dynamo on first use)
except ImportError:  # pragma: no cover - numpy-only environments
    torch = None

RUN = ("-p", "no:cacheprovider", "--mlcheck")

MODEL = """
import pytest
import torch
from torch import nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, stable):
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.stable = stable

    def forward(self, x):
        scores = self.proj(x) * 1000.0  # sharp logits: softmax underflows to exactly 0
        if self.stable:
            return F.log_softmax(scores, dim=-1)
        return torch.log(torch.softmax(scores, dim=-1))


class Layer(nn.Module):
    def __init__(self, stable):
        super().__init__()
        self.attn = Attention(stable)
        self.out = nn.Linear(8, 8)

    def forward(self, x):
        return self.out(self.attn(x))


class Encoder(nn.Module):
    def __init__(self, stable_from):
        super().__init__()
        self.layers = nn.ModuleList([Layer(stable=i != 1 or stable_from) for i in range(3)])

    def forward(self, x):
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x


class Model(nn.Module):
    def __init__(self, stable=False):
        super().__init__()
        self.encoder = Encoder(stable)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return {"logits": self.head(self.encoder(x)), "aux": (x.sum(), x.argmax())}


def make(stable=False):
    torch.manual_seed(0)
    return Model(stable)
"""


@pytest.fixture
def torch_project(pytester):
    if torch is None:
        pytest.skip("torch is not installed")
    pytester.makepyfile(model=MODEL)
    pytester.syspathinsert()
    return pytester


# ---- non-finite guard -------------------------------------------------------------------


def test_non_finite_guard(torch_project):
    torch_project.makepyfile(test_model="""
        import pytest
        import torch
        from torch import nn
        from torch.nn.modules import module
        from model import make

        def test_buggy():
            model = make(stable=False)
            model(torch.randn(4, 8)).sum().backward()

        def test_fixed():
            model = make(stable=True)
            out = model(torch.randn(4, 8))
            out["logits"].sum().backward()
            assert torch.isfinite(out["logits"]).all()

        def test_nan_batch():
            x = torch.randn(4, 8)
            x[2, 3] = float("nan")
            make(stable=True)(x)

        def test_inf_weight():
            layer = nn.Linear(3, 2)
            with torch.no_grad():
                layer.weight[0, 0] = float("inf")
            layer(torch.ones(1, 3))

        class TwoHeads(nn.Module):
            def forward(self, x):
                return x.argmax(-1), {"ok": x, "scale": [x / x.sum(-1, keepdim=True)]}

        def test_nested_nan():
            TwoHeads()(torch.zeros(2, 3))

        def test_integer_outputs_are_not_checked():
            TwoHeads()(torch.ones(2, 3))

        @pytest.mark.mlcheck_allow_nonfinite
        def test_allowed():
            out = make(stable=False)(torch.randn(4, 8))
            assert not torch.isfinite(out["logits"]).all()

        def test_swallowed():
            try:
                make(stable=False)(torch.randn(4, 8))
            except Exception:
                pass  # a loop that skips "bad batches" must not hide the finding

        class Scale(nn.Module):
            def forward(self, x):
                return x * 3e38, (x * 6e4).half()

        def test_large_finite_values_whose_sum_overflows_are_not_flagged():
            out, half = Scale()(torch.ones(8))
            assert torch.isinf(out.sum()) and torch.isfinite(out).all()
            assert torch.isfinite(half).all()

        def test_no_global_hooks_while_a_test_runs():
            # global hooks make torch.compile warn and recompile: the guard wraps __call__
            assert not module._has_any_global_hook()
            assert nn.Module.__call__.__module__ == "pytest_mlcheck.guards.nonfinite"
    """)
    torch_project.makepyfile(test_deferred="""
        import pytest
        import torch
        from model import make
        from pytest_mlcheck.guards import NonFiniteGuard

        @pytest.fixture(autouse=True)
        def defer_cpu(monkeypatch):  # the CPU stands in for a GPU: one host sync per model call
            monkeypatch.setattr(NonFiniteGuard, "DEFER_DEVICE_TYPES", frozenset({"cpu"}))

        def test_deferred_buggy():
            make(stable=False)(torch.randn(4, 8))

        def test_deferred_fixed():
            make(stable=True)(torch.randn(4, 8))
    """)
    from torch.nn.modules import module

    hooks_before = (len(module._global_forward_hooks), len(module._global_forward_pre_hooks),
                    torch.nn.Module.__call__)
    result = torch_project.runpytest(*RUN, "--mlcheck-report=report.json")
    result.assert_outcomes(passed=6, failed=6)
    assert (len(module._global_forward_hooks), len(module._global_forward_pre_hooks),
            torch.nn.Module.__call__) == hooks_before
    out = result.stdout.str()
    sections = {name: out.split(f"_ {name} _", 1)[1][:1800] for name in (
        "test_buggy", "test_nan_batch", "test_inf_weight", "test_nested_nan", "test_swallowed",
        "test_deferred_buggy")}
    buggy = sections["test_buggy"]
    assert "NaN/Inf in the output of module `encoder.layers.1.attn` (Attention) inside the model `Model`." in buggy
    assert "-Inf of 32 elements (shape (4, 8), dtype float32)" in buggy
    assert "Its inputs and parameters were finite: this module produced the first NaN/Inf" in buggy
    assert "instead of `log(softmax(x))`" in buggy and "mlcheck_allow_nonfinite" in buggy
    assert "test_model.py:9: model(torch.randn(4, 8)).sum().backward()" in buggy
    assert "test seed: " in buggy and "reproduce with:" in buggy
    nan_batch = sections["test_nan_batch"]
    assert "module `encoder.layers.0.attn.proj` (Linear)" in nan_batch
    assert "Its inputs were already non-finite" in nan_batch
    assert "input[0]: 1 NaN of 32 elements" in nan_batch
    assert "its own parameters/buffers are not" in sections["test_inf_weight"]
    assert "weight: 1 +Inf of 6 elements" in sections["test_inf_weight"]
    nested = sections["test_nested_nan"]
    assert "`TwoHeads` (the outermost module called)" in nested
    assert "output[1]['scale'][0]: 6 NaN of 6 elements" in nested
    assert "NaN/Inf from module `encoder.layers.1.attn`" in sections["test_swallowed"]
    deferred = sections["test_deferred_buggy"]
    assert "module `Model` (the outermost module called)" in deferred
    assert "checked once per model call on the accelerator" in deferred
    data = json.loads((torch_project.path / "report.json").read_text())
    records = {r["nodeid"].split("::")[1]: r for r in data["records"]
               if r["kind"] == "guard" and r["name"] != "coverage"}
    assert sorted(records) == ["test_buggy", "test_deferred_buggy", "test_inf_weight",
                               "test_nan_batch", "test_nested_nan", "test_swallowed"]
    assert records["test_buggy"]["verdict"] == "NON-FINITE"
    assert records["test_buggy"]["values"]["module"] == "encoder.layers.1.attn"
    assert records["test_buggy"]["values"]["class"] == "Attention"
    assert records["test_buggy"]["values"]["root"] == "Model"
    result.stdout.fnmatch_lines(["*mlcheck*", "*test_model.py::test_buggy*guard*nonfinite*NON-FINITE*"])


def test_no_guards_without_the_flag(torch_project):
    torch_project.makepyfile(test_plain="""
        import numpy as np
        import torch
        import torch.nn.functional as F
        from model import make

        def test_nan_and_warnings():
            make(stable=False)(torch.randn(4, 8))
            F.mse_loss(torch.rand(4, 1), torch.rand(4))
            np.log(np.zeros(2))
    """)
    torch_project.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


# ---- warnings guard ---------------------------------------------------------------------


def test_warnings_guard(torch_project):
    torch_project.makeini("""
        [pytest]
        mlcheck_allow_warnings =
            overflow encountered in (exp|power)
    """)
    torch_project.makeconftest("""
        import numpy as np
        import pytest

        _previous = np.seterr(all="ignore")  # a library did this at import time

        def pytest_terminal_summary(terminalreporter):
            terminalreporter.write_line(f"numpy divide state after the tests: {np.geterr()['divide']}")

        def pytest_unconfigure(config):
            np.seterr(**_previous)
    """)
    torch_project.makepyfile(test_warn="""
        import warnings
        import numpy as np
        import pytest
        import torch
        import torch.nn.functional as F

        def test_mse_buggy():
            pred, target = torch.randn(8, 1), torch.randn(8)
            F.mse_loss(pred, target)

        def test_mse_fixed():
            pred, target = torch.randn(8, 1), torch.randn(8)
            F.mse_loss(pred.squeeze(-1), target)

        def test_softmax_without_dim():
            F.softmax(torch.randn(2, 3))

        def test_grad_of_non_leaf():
            x = torch.ones(2, requires_grad=True)
            (x * 2).grad

        def test_scheduler_before_optimizer():
            p = torch.nn.Parameter(torch.ones(1))
            torch.optim.lr_scheduler.StepLR(torch.optim.SGD([p], lr=0.1), 1).step()

        def test_std_of_one_element():
            torch.ones(1).std()

        def test_log_zero():
            assert np.geterr()["divide"] == "warn"
            np.log(np.zeros(3))

        def test_sqrt_negative():
            np.sqrt(np.array([-1.0]))

        def test_log_fixed():
            np.log(np.clip(np.zeros(3), 1e-12, None))

        @pytest.mark.mlcheck_allow_warning("numpy-divide")
        def test_allowed_by_id():
            np.log(np.zeros(2))

        @pytest.mark.mlcheck_allow_warning(r"invalid value encountered in (sqrt|log)")
        def test_allowed_by_regex():
            np.sqrt(np.array([-1.0]))

        def test_allowed_by_ini():
            np.exp(np.array([1000.0]))

        @pytest.mark.mlcheck_allow_warning("numpy-overflow")
        def test_other_entries_are_still_guarded():
            np.log(np.zeros(2))

        def test_unknown_warning_stays_a_warning():
            warnings.warn("this one is just informative", UserWarning)

        def test_expected_warning_caught_by_pytest_warns():
            with pytest.warns(UserWarning, match="target size"):
                F.mse_loss(torch.randn(8, 1), torch.randn(8))

        @pytest.mark.filterwarnings("error::RuntimeWarning")
        def test_turned_into_an_error():
            np.log(np.zeros(3))

        @pytest.mark.mlcheck_allow_warning("divide (by")
        def test_bad_regex():
            pass

        @pytest.mark.mlcheck_allow_warning
        def test_no_pattern():
            pass

        class SettingWithCopyWarning(Warning):  # pandas.errors, never imported by the guard
            pass

        class DataConversionWarning(UserWarning):  # sklearn.exceptions
            pass

        class UndefinedMetricWarning(UserWarning):
            pass

        def test_setting_with_copy():
            warnings.warn("A value is trying to be set on a copy of a slice from a DataFrame.\\\\n"
                          "Try using .loc[row_indexer,col_indexer] = value instead",
                          SettingWithCopyWarning)

        def test_chained_assignment():
            warnings.warn("A value is trying to be set on a copy of a DataFrame or Series through "
                          "chained assignment using an inplace method.", FutureWarning)

        def test_column_vector_y():
            warnings.warn("A column-vector y was passed when a 1d array was expected.",
                          DataConversionWarning)

        def test_undefined_precision():
            warnings.warn("Precision is ill-defined and being set to 0.0 in labels with no "
                          "predicted samples.", UndefinedMetricWarning)

        def test_user_warning_with_sklearn_text_is_not_sklearn():
            warnings.warn("Precision is ill-defined", UserWarning)
    """)
    result = torch_project.runpytest(*RUN, "--mlcheck-report=report.json")
    out = result.stdout.str()
    failed = {line.split("::")[1].split(" ")[0] for line in out.splitlines() if line.startswith("FAILED ")}
    assert failed == {
        "test_mse_buggy", "test_softmax_without_dim", "test_grad_of_non_leaf",
        "test_scheduler_before_optimizer", "test_std_of_one_element", "test_log_zero",
        "test_sqrt_negative", "test_other_entries_are_still_guarded", "test_turned_into_an_error",
        "test_bad_regex", "test_no_pattern", "test_setting_with_copy", "test_chained_assignment",
        "test_column_vector_y"}
    result.assert_outcomes(passed=9, failed=14)
    mse = out.split("_ test_mse_buggy _", 1)[1][:1500]
    assert mse.startswith("_" * 10) or "silent-bug warning torch-loss-broadcast" in mse
    assert "Using a target size (torch.Size([8])) that is different to the input size" in mse
    assert "into an (N, N) matrix" in mse and "`pred.squeeze(-1)`" in mse
    assert "@pytest.mark.mlcheck_allow_warning('torch-loss-broadcast')" in mse
    for test, entry in [
        ("test_softmax_without_dim", "torch-implicit-softmax-dim"),
        ("test_grad_of_non_leaf", "torch-nonleaf-grad"),
        ("test_scheduler_before_optimizer", "torch-scheduler-before-optimizer"),
        ("test_std_of_one_element", "torch-std-dof"),
        ("test_log_zero", "numpy-divide"),
        ("test_sqrt_negative", "numpy-invalid"),
        ("test_other_entries_are_still_guarded", "numpy-divide"),
        ("test_setting_with_copy", "pandas-setting-with-copy"),
        ("test_chained_assignment", "pandas-chained-assignment"),
        ("test_column_vector_y", "sklearn-data-conversion"),
    ]:
        assert f"silent-bug warning {entry}" in out.split(f"_ {test} _", 1)[1][:600], test
    turned = out.split("_ test_turned_into_an_error _", 1)[1][:3000]
    assert "RuntimeWarning: divide by zero encountered in log" in turned
    assert "guard findings:\n  silent-bug warning numpy-divide" in turned
    assert "'divide (by' is not a valid regular expression" in out
    assert "mlcheck_allow_warning needs a pattern" in out
    assert "UserWarning: this one is just informative" in out
    assert "numpy divide state after the tests: ignore" in out
    data = json.loads((torch_project.path / "report.json").read_text())
    guard = [(r["nodeid"].split("::")[1], r["name"], r["verdict"]) for r in data["records"]]
    assert ("test_mse_buggy", "warning:torch-loss-broadcast", "FAILED") in guard
    assert ("test_allowed_by_id", "warning:numpy-divide", "ok") in guard
    assert ("test_allowed_by_ini", "warning:numpy-overflow", "ok") in guard
    # incidental far more often than not (see silent_warnings): listed, not failed
    assert ("test_undefined_precision", "warning:sklearn-undefined-metric", "reported") in guard


def test_guards_under_xdist_reach_the_report(torch_project):
    torch_project.makepyfile(test_x="""
        import numpy as np
        import torch
        from model import make

        def test_nan():
            make(stable=False)(torch.randn(4, 8))

        def test_divide():
            np.log(np.zeros(2))

        def test_ok():
            make(stable=True)(torch.randn(4, 8))
    """)
    result = torch_project.runpytest_subprocess(*RUN, "-n", "2", "--mlcheck-report=report.json")
    result.assert_outcomes(passed=1, failed=2)
    data = json.loads((torch_project.path / "report.json").read_text())
    verdicts = sorted((r["name"], r["verdict"]) for r in data["records"]
                      if r["kind"] == "guard" and r["name"] != "coverage")
    assert verdicts == [("nonfinite", "NON-FINITE"), ("warning:numpy-divide", "FAILED")]


# ---- the catalogue itself ----------------------------------------------------------------


def test_catalogue_entries_are_unique_and_documented():
    ids = [e.id for e in CATALOGUE]
    assert len(ids) == len(set(ids)) >= 14
    for entry in CATALOGUE:
        assert entry.categories and len(entry.explanation) > 80, entry.id


def test_real_library_warnings_are_found():
    pytest.importorskip("torch")
    with warnings.catch_warnings(record=True) as log, np.errstate(all="warn"):
        warnings.simplefilter("always")
        np.log(np.zeros(1))
        np.array([1 + 2j]).astype(float)
        np.mean(np.array([]))
        torch.nn.functional.mse_loss(torch.ones(3, 1), torch.ones(3))
    found = [getattr(find(w.category, str(w.message)), "id", None) for w in log]
    assert found[:3] == ["numpy-divide", "complex-cast", "numpy-empty-mean"]
    assert "torch-loss-broadcast" in found
    assert find(UserWarning, "nothing to see here") is None
    assert find(DeprecationWarning, "invalid value encountered in divide") is None


def test_allow_patterns_match_ids_or_messages_and_reject_bad_input():
    entry = find(RuntimeWarning, "divide by zero encountered in log")
    assert is_allowed(entry, "divide by zero encountered in log", compile_allowed(["numpy-divide"], "t"))
    assert is_allowed(entry, "divide by zero encountered in log", compile_allowed(["in log$"], "t"))
    assert not is_allowed(entry, "divide by zero encountered in log", compile_allowed(["numpy-inv"], "t"))
    with pytest.raises(TypeError, match="a pattern must be a string"):
        compile_allowed([3], "marker")
    with pytest.raises(ValueError, match=r"marker: '\[' is not a valid regular expression"):
        compile_allowed(["["], "marker")
