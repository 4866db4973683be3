"""metric_regression: every verdict, tolerance, direction, check_repeated and check_array,
in real pytest sessions (pytester)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pytest_mlcheck.baselines import parse_toml

# Imported once here, outside pytester's sys.modules snapshots: otherwise every in-process
# run re-imports them (hypothesis's pytest plugin imports hypothesis at the end of a run).
import hypothesis  # noqa: F401
import pytest_mlcheck.baselines  # noqa: F401
import pytest_mlcheck.environment  # noqa: F401
import pytest_mlcheck.metrics  # noqa: F401
import tomlkit  # noqa: F401

try:  # in-process pytester runs must find torch already imported: it cannot load twice
    import torch  # noqa: F401
except ImportError:  # pragma: no cover
    pass

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def toml_loads(text: str) -> dict:
    """Parse TOML on every supported Python (tomllib is 3.11+)."""
    return parse_toml(text, "test")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def baseline(pytester: pytest.Pytester, stem: str = "test_model") -> dict:
    return toml_loads((pytester.path / "mlcheck_baselines" / f"{stem}.toml").read_text())


def make_metric_test(pytester: pytest.Pytester, metrics: str, options: str = "",
                     name: str = "test_model") -> None:
    pytester.makepyfile(**{name: f"""
        def test_eval(metric_regression):
            metric_regression.check({metrics}{options})
    """})


# ---- NEW, written, ok ------------------------------------------------------------------


def test_missing_baseline_fails_and_nothing_is_written_without_update(pytester):
    make_metric_test(pytester, '{"accuracy": 0.9}')
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*no baseline recorded for test_model.py::test_eval accuracy; "
        "run pytest --mlcheck-update to record it*",
        "*accuracy*-*0.9*NEW*",
        "*pytest test_model.py::test_eval --mlcheck-update*",
        "1 metric: 1 new",
    ])
    assert not (pytester.path / "mlcheck_baselines").exists()


def test_update_records_then_the_same_values_pass(pytester):
    make_metric_test(pytester, '{"accuracy": 0.9, "loss": 0.25}')
    result = run(pytester, "--mlcheck-update")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "2 metrics: 2 written",
        "baselines written (1):",
        "  mlcheck_baselines/test_model.toml [test_eval.default]",
    ])
    data = baseline(pytester)
    assert data["test_eval"]["default"]["metrics"] == {"accuracy": 0.9, "loss": 0.25}
    assert data["test_eval"]["default"]["recorded_in"]["python"]
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*accuracy*0.9*0.9*ok", "2 metrics: 2 ok"])


# ---- band, direction -------------------------------------------------------------------


def test_two_sided_metric_fails_both_ways_with_a_teaching_table(pytester):
    make_metric_test(pytester, '{"accuracy": 0.9}')
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    for value in ("0.8", "0.95"):
        make_metric_test(pytester, '{"accuracy": %s}' % value)
        result = run(pytester)
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines([
            "*metric_regression.check: 1 of 1 metric(s) of test_model.py::test_eval failed*",
            "*metric*baseline*current*Δ*Δ%*band*direction*verdict*",
            f"*accuracy*0.9*{value}*two-sided*REGRESSED*",
            "*baseline: mlcheck_baselines/test_model.toml [[]test_eval.default[]]*",
            "*likely causes:*",
            "*to accept the current values*",
            "*pytest test_model.py::test_eval --mlcheck-update*",
            "1 metric: 1 regressed",
        ])


def test_band_is_atol_plus_rtol_times_baseline(pytester):
    make_metric_test(pytester, '{"loss": 2.0}')
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    # band = 0.01 + 0.1 * 2.0 = 0.21
    make_metric_test(pytester, '{"loss": 2.2}', ", atol=0.01, rtol=0.1")
    run(pytester).assert_outcomes(passed=1)
    make_metric_test(pytester, '{"loss": 2.22}', ", atol=0.01, rtol=0.1")
    run(pytester).assert_outcomes(failed=1)
    # per-metric mapping with a glob; the unmatched metric keeps the default band
    make_metric_test(pytester, '{"loss": 2.2}', ', atol={"lo*": 0.25}')
    run(pytester).assert_outcomes(passed=1)


def test_default_band_is_float32_noise_and_configurable_in_ini(pytester):
    make_metric_test(pytester, '{"loss": 1.0}')
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    make_metric_test(pytester, '{"loss": 1.000005}')  # within 1e-6 + 1e-5
    run(pytester).assert_outcomes(passed=1)
    make_metric_test(pytester, '{"loss": 1.0001}')
    run(pytester).assert_outcomes(failed=1)
    pytester.makeini("[pytest]\nmlcheck_atol = 0.001\n")
    run(pytester).assert_outcomes(passed=1)


def test_tolerance_for_an_unknown_metric_is_an_error(pytester):
    make_metric_test(pytester, '{"loss": 1.0}', ', atol={"accuracy": 0.1}')
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ValueError: atol has an entry for 'accuracy', which matches "
                                 "no metric*"])


def test_direction_improved_passes_and_bad_direction_fails(pytester):
    make_metric_test(pytester, '{"accuracy": 0.9, "loss": 0.3, "f1": 0.5}',
                     ', higher_is_better=["acc*", "f1"], lower_is_better="loss"')
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    make_metric_test(pytester, '{"accuracy": 0.95, "loss": 0.2, "f1": 0.5}',
                     ', higher_is_better=["acc*", "f1"], lower_is_better="loss"')
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*accuracy*0.9*0.95*improved", "*loss*0.3*0.2*improved",
                                 "3 metrics: 1 ok, 2 improved"])
    make_metric_test(pytester, '{"accuracy": 0.85, "loss": 0.4, "f1": 0.5}',
                     ', higher_is_better=["acc*", "f1"], lower_is_better="loss"')
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*accuracy*higher is better*REGRESSED*",
                                 "*loss*lower is better*REGRESSED*",
                                 "3 metrics: 1 ok, 2 regressed"])


def test_ini_directions_are_project_defaults(pytester):
    pytester.makeini("[pytest]\nmlcheck_higher_is_better = acc*\nmlcheck_lower_is_better = loss\n")
    make_metric_test(pytester, '{"accuracy": 0.9, "loss": 0.3}')
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    make_metric_test(pytester, '{"accuracy": 0.99, "loss": 0.1}')
    run(pytester).stdout.fnmatch_lines(["2 metrics: 2 improved"])
    make_metric_test(pytester, '{"accuracy": 0.8, "loss": 0.1}')
    run(pytester).assert_outcomes(failed=1)
    make_metric_test(pytester, '{"accuracy": 0.8, "loss": 0.1}', ', higher_is_better="loss"')
    result = run(pytester)  # explicit arguments win over the ini for the metrics they match
    result.stdout.fnmatch_lines(["*loss*higher is better*REGRESSED*"])


def test_metric_in_both_directions_is_an_error(pytester):
    make_metric_test(pytester, '{"loss": 0.3}', ', higher_is_better=["*"], lower_is_better=["loss"]')
    result = run(pytester)
    result.stdout.fnmatch_lines(["*ValueError: metric 'loss' matches both*"])


# ---- closed set, non-finite, bad input --------------------------------------------------


def test_closed_set_new_and_missing_metrics_fail(pytester):
    make_metric_test(pytester, '{"accuracy": 0.9, "loss": 0.3}')
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    make_metric_test(pytester, '{"accuracy": 0.9, "f1": 0.7}')
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*no baseline recorded for test_model.py::test_eval f1; run pytest --mlcheck-update*",
        "*accuracy*ok*", "*f1*NEW*", "*loss*0.3*-*MISSING*",
        "*MISSING: the baseline has this metric but the test no longer reports it*",
    ])
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    assert baseline(pytester)["test_eval"]["default"]["metrics"] == {"accuracy": 0.9, "f1": 0.7}


@pytest.mark.parametrize("value", ["float('nan')", "float('inf')", "-float('inf')",
                                   "np.float32('nan')"])
def test_non_finite_current_always_fails_and_is_never_recorded(pytester, value):
    pytester.makepyfile(test_model=f"""
        import numpy as np
        def test_eval(metric_regression):
            metric_regression.check({{"loss": {value}}}, lower_is_better=["loss"], atol=1e9)
    """)
    for args in ((), ("--mlcheck-update",)):
        result = run(pytester, *args)
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*loss*NON-FINITE*", "*NaN and inf never pass*",
                                     "*--mlcheck-update does not record it*"])
        # an update cannot accept a non-finite value, so the message does not offer one
        result.stdout.no_fnmatch_line("*to accept the current values as the new baseline*")
    assert not (pytester.path / "mlcheck_baselines").exists()


def test_a_regression_beside_a_non_finite_value_still_offers_the_update(pytester):
    make_metric_test(pytester, '{"loss": 0.3, "acc": 0.9}')
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    make_metric_test(pytester, '{"loss": float("nan"), "acc": 0.5}')
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*acc*0.9*0.5*REGRESSED*", "*to accept the current values as the new baseline*"])
    result.stdout.fnmatch_lines(["*loss*0.3*nan*NON-FINITE*"])


def test_the_one_value_form_says_how_to_write_the_mapping(pytester):
    pytester.makepyfile(test_model="""
        def test_eval(metric_regression):
            metric_regression.check("acc", 0.9)
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*TypeError: metric_regression.check takes one mapping of metric names to "
                                 "values, not separate arguments: write check({'acc': 0.9})*"])
    assert not (pytester.path / "mlcheck_baselines").exists()


def test_nan_current_fails_against_an_existing_baseline(pytester):
    make_metric_test(pytester, '{"loss": 0.3}')
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    make_metric_test(pytester, '{"loss": float("nan")}', ', lower_is_better=["loss"], atol=1e9')
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*loss*0.3*nan*NON-FINITE*", "1 metric: 1 non-finite"])


@pytest.mark.parametrize("value, expected", [
    ('"0.9"', "TypeError: metric 'accuracy': expected a number*got str"),
    ("[0.9]", "TypeError: metric 'accuracy': expected a number*got list"),
    ("np.zeros(3)", "TypeError: metric 'accuracy': expected a scalar, got an array of shape (3,)"),
    ("True", "TypeError: metric 'accuracy': expected a number, got a bool*"),
])
def test_metric_of_the_wrong_type_raises_type_error_naming_it(pytester, value, expected):
    pytester.makepyfile(test_model=f"""
        import numpy as np
        def test_eval(metric_regression):
            metric_regression.check({{"accuracy": {value}}})
    """)
    result = run(pytester, "--mlcheck-update")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*{expected}*"])


def test_numpy_scalars_and_0d_arrays_are_numbers(pytester):
    pytester.makepyfile(test_model="""
        import numpy as np
        def test_eval(metric_regression):
            metric_regression.check({"a": np.float32(0.5), "b": np.array(2.5), "c": np.int64(3)})
    """)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    assert baseline(pytester)["test_eval"]["default"]["metrics"] == {"a": 0.5, "b": 2.5, "c": 3}
    run(pytester).assert_outcomes(passed=1)


def test_torch_tensors_are_accepted(pytester):
    pytest.importorskip("torch")
    pytester.makepyfile(test_model="""
        import torch
        def test_eval(metric_regression):
            metric_regression.check({"loss": torch.tensor(0.25), "acc": torch.tensor([0.5])})
            metric_regression.check_array("w", torch.arange(4.0).reshape(2, 2))
    """)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    run(pytester).assert_outcomes(passed=1)


def test_name_keeps_independent_checks_apart(pytester):
    pytester.makepyfile(test_model="""
        def test_eval(metric_regression):
            metric_regression.check({"accuracy": 0.9}, name="val")
            metric_regression.check({"accuracy": 0.8}, name="test")
    """)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    node = baseline(pytester)["test_eval"]
    assert node["val"]["metrics"] == {"accuracy": 0.9}
    assert node["test"]["metrics"] == {"accuracy": 0.8}
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*val/accuracy*0.9*ok", "*test/accuracy*0.8*ok"])


def test_the_same_group_twice_in_one_test_is_an_error(pytester):
    pytester.makepyfile(test_model="""
        def test_eval(metric_regression):
            metric_regression.check({"accuracy": 0.9})
            metric_regression.check({"accuracy": 0.8})
    """)
    result = run(pytester, "--mlcheck-update")
    result.stdout.fnmatch_lines(["*was already checked in this test; give each check its own name=*"])


def test_baseline_environment_is_shown_when_it_differs(pytester):
    make_metric_test(pytester, '{"accuracy": 0.9}')
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    path = pytester.path / "mlcheck_baselines" / "test_model.toml"
    text = path.read_text()
    path.write_text(text.replace('numpy = "', 'numpy = "0.0.1-was-'))
    make_metric_test(pytester, '{"accuracy": 0.8}')
    result = run(pytester)
    result.stdout.fnmatch_lines(["*the baseline was recorded in a different environment: "
                                 "numpy 0.0.1-was-*(now *"])


# ---- env= variants ----------------------------------------------------------------------


def test_env_variants_are_exact_and_a_missing_variant_names_the_others(pytester):
    make_metric_test(pytester, '{"accuracy": 0.9}', ', env=("device",)')
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    node = baseline(pytester)["test_eval"]["default"]
    assert node["variants"]["device=cpu"]["metrics"] == {"accuracy": 0.9}
    run(pytester).assert_outcomes(passed=1)
    path = pytester.path / "mlcheck_baselines" / "test_model.toml"
    path.write_text(path.read_text().replace('"device=cpu"', '"device=cuda:NVIDIA H100"'))
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*no baseline recorded for test_model.py::test_eval in the environment variant "
        "'device=cpu'; this entry has variants: 'device=cuda:NVIDIA H100'*"])
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    variants = baseline(pytester)["test_eval"]["default"]["variants"]
    assert set(variants) == {"device=cpu", "device=cuda:NVIDIA H100"}


def test_env_from_ini_and_unknown_facet(pytester):
    pytester.makeini("[pytest]\nmlcheck_baseline_env = python numpy\n")
    make_metric_test(pytester, '{"accuracy": 0.9}')
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    (variant,) = baseline(pytester)["test_eval"]["default"]["variants"]
    assert variant.startswith("python=") and ", numpy=" in variant
    make_metric_test(pytester, '{"accuracy": 0.9}', ', env=("gpu",)')
    run(pytester).stdout.fnmatch_lines(["*ValueError: unknown environment facet(s) [[]'gpu'[]]*"])


# ---- check_repeated ---------------------------------------------------------------------


REPEATED = """
    import random
    import numpy as np
    SHIFT = {shift}
    def run_once(seed):
        # numpy's and Python's global RNGs are seeded per seed by check_repeated
        noise = np.random.normal(0, 0.01) + (random.random() - 0.5) * 0.001
        return {{"accuracy": 0.9 + SHIFT + noise}}
    def test_eval(metric_regression):
        metric_regression.check_repeated(run_once, seeds=range(6), higher_is_better=["accuracy"])
"""


def test_check_repeated_noise_aware_band(pytester):
    pytester.makepyfile(test_model=REPEATED.format(shift=0.0))
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    stats = baseline(pytester)["test_eval"]["default"]["metrics"]["accuracy"]
    assert set(stats) == {"mean", "std", "n", "min", "max"} and stats["n"] == 6
    assert 0.002 < stats["std"] < 0.03 and stats["min"] <= stats["mean"] <= stats["max"]
    # same seeds, same numbers: the per-seed seeding makes the runs reproducible
    run(pytester).stdout.fnmatch_lines(["*accuracy*ok"])
    # a shift well inside 3 sigma of the measured noise passes (atol/rtol alone would fail)
    pytester.makepyfile(test_model=REPEATED.format(shift=-0.005))
    run(pytester).assert_outcomes(passed=1)
    # a shift far outside the noise fails, and the table shows mean ± std (n)
    pytester.makepyfile(test_model=REPEATED.format(shift=-0.05))
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*metric_regression.check_repeated*",
                                 "*accuracy*± *(n=6)*± *(n=6)*higher is better*REGRESSED*"])
    pytester.makepyfile(test_model=REPEATED.format(shift=+0.05))
    run(pytester).stdout.fnmatch_lines(["1 metric: 1 improved"])


def test_check_repeated_band_formula(pytester):
    # baseline mean 1.0, std 0.1, n 4; current constant 1.0 + d (std 0): noise band is
    # 3 * sqrt(0 + 0.01 / 4) = 0.15.
    pytester.makepyfile(test_model="""
        import os
        D = float(os.environ.get("D", "0"))
        def test_eval(metric_regression):
            metric_regression.check_repeated(lambda s: {"m": 1.0 + D}, seeds=[1, 2, 3, 4])
    """)
    pytester.makepyfile(mlcheck_baselines_writer="")
    (pytester.path / "mlcheck_baselines").mkdir()
    (pytester.path / "mlcheck_baselines" / "test_model.toml").write_text(
        "[test_eval.default.metrics]\nm = {mean = 1.0, std = 0.1, n = 4, min = 0.9, max = 1.1}\n")
    for d, outcome in (("0.149", "passed"), ("-0.149", "passed"), ("0.151", "failed"),
                       ("-0.151", "failed")):
        pytester._monkeypatch.setenv("D", d)
        run(pytester).assert_outcomes(**{outcome: 1})


def test_check_repeated_non_finite_seed_and_bad_input(pytester):
    pytester.makepyfile(test_model="""
        import pytest
        def test_nan(metric_regression):
            metric_regression.check_repeated(
                lambda s: {"loss": float("nan") if s == 2 else 0.1}, seeds=[1, 2, 3])
        def test_one_seed(metric_regression):
            metric_regression.check_repeated(lambda s: {"loss": 0.1}, seeds=[1])
        def test_changing_set(metric_regression):
            metric_regression.check_repeated(lambda s: {f"m{s}": 0.1}, seeds=[1, 2])
    """)
    result = run(pytester, "--mlcheck-update")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines_random([
        "*loss is non-finite for seed(s) [[]2[]]*",
        "*ValueError: metric_regression.check_repeated: seeds needs at least 2 different seeds*",
        "*ValueError: fn(2) reported metrics [[]'m2'[]] but fn(1) reported [[]'m1'[]]*",
    ])


def test_check_and_check_repeated_entries_do_not_mix(pytester):
    make_metric_test(pytester, '{"m": 1.0}')
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    pytester.makepyfile(test_model="""
        def test_eval(metric_regression):
            metric_regression.check_repeated(lambda s: {"m": 1.0}, seeds=[1, 2])
    """)
    result = run(pytester)
    result.stdout.fnmatch_lines(["*was recorded by check (single values), but the test now "
                                 "calls metric_regression.check_repeated*"])
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    run(pytester).assert_outcomes(passed=1)


# ---- check_array ------------------------------------------------------------------------


ARRAY_TEST = """
    import numpy as np
    def test_eval(metric_regression):
        preds = np.linspace(0, 1, 24, dtype=np.float32).reshape(4, 6)
        {edit}
        metric_regression.check_array("predictions", preds, atol=1e-6, rtol=0)
"""


def test_check_array_snapshot_and_detailed_mismatch(pytester):
    pytester.makepyfile(test_model=ARRAY_TEST.format(edit="pass"))
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    info = baseline(pytester)["test_eval"]["predictions"]["array"]
    assert info["shape"] == [4, 6] and info["dtype"] == "float32"
    assert info["min"] == 0.0 and info["max"] == 1.0 and math.isclose(info["mean"], 0.5, rel_tol=1e-6)
    npz = pytester.path / "mlcheck_baselines" / info["file"]
    assert npz.exists() and npz.parent == pytester.path / "mlcheck_baselines"
    run(pytester).assert_outcomes(passed=1)
    pytester.makepyfile(test_model=ARRAY_TEST.format(
        edit="preds[1, 2] += 0.5; preds[3, 5] = np.nan; preds[0, 0] += 1e-7"))
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*check_array: array 'predictions' of test_model.py::test_eval differs from its snapshot",
        "*2 of 24 elements differ (8.33%) beyond atol 1e-06 + rtol 0·|baseline|",
        "*max abs diff 0.5, max rel diff*",
        "*first at index (1, 2): * (baseline) vs * (current)",
        "*next: [[]3, 5[]]: 1.0 vs nan",
        "*1 differing elements are NaN/Inf on one side only (1 became NaN/Inf in current)",
        "*pytest test_model.py::test_eval --mlcheck-update*",
        "1 array: 1 regressed",
    ])


def test_check_array_shape_and_dtype_changes(pytester):
    pytester.makepyfile(test_model=ARRAY_TEST.format(edit="pass"))
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    pytester.makepyfile(test_model=ARRAY_TEST.format(edit="preds = preds.reshape(6, 4)"))
    run(pytester).stdout.fnmatch_lines(["*shape (4, 6) (baseline) vs shape (6, 4) (current)*"])
    pytester.makepyfile(test_model=ARRAY_TEST.format(edit="preds = preds.astype(np.float64)"))
    run(pytester).stdout.fnmatch_lines(["*dtype float32 (baseline) vs dtype float64 (current)*"])
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    run(pytester).assert_outcomes(passed=1)


def test_check_array_missing_snapshot_and_object_arrays(pytester):
    pytester.makepyfile(test_model="""
        import numpy as np
        def test_new(metric_regression):
            metric_regression.check_array("x", np.ones(3))
        def test_objects(metric_regression):
            metric_regression.check_array("x", np.array([{}, None], dtype=object))
    """)
    result = run(pytester)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines_random([
        "*no baseline recorded for test_model.py::test_new x; run pytest --mlcheck-update*",
        "*TypeError: array 'x': expected numbers (bool, int or float), got dtype object*",
    ])


def test_check_array_never_unpickles(pytester):
    pytester.makepyfile(test_model=ARRAY_TEST.format(edit="pass"))
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    import numpy as np

    info = baseline(pytester)["test_eval"]["predictions"]["array"]
    npz = pytester.path / "mlcheck_baselines" / info["file"]
    np.savez_compressed(npz, array=np.array([{"evil": 1}], dtype=object))
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*cannot be read without unpickling*"])


# ---- the seeded fault: loss averaged over batches instead of samples -----------------------


FAULT_TEST = '''
    import numpy as np
    import tinyml

    def evaluate_batch_mean(model, X, y, batch_size):
        # THE BUG: the mean of per-batch means weights a short last batch like a full one.
        losses = []
        for batch in tinyml.iterate_batches(len(X), batch_size):
            p = model.predict_proba(X[batch])
            p_true = p[np.arange(len(p)), y[batch]]
            losses.append(float(-np.log(np.clip(p_true, 1e-12, 1.0)).mean()))
        return float(np.mean(losses))

    def test_test_loss(metric_regression):
        model, metrics = tinyml.train_and_evaluate(seed=0, batch_size=64)
        X, y = tinyml.make_blobs(seed=0)
        X_train, X_test, _, y_test = tinyml.train_test_split(X, y, seed=0)
        _, X_test = tinyml.standardize(X_train, X_test)
        assert len(X_test) % 64 != 0  # the last batch is short
        loss = {loss_expr}
        # Two-sided on purpose: this bug makes the loss *lower* here, which a
        # lower_is_better direction would wave through as "improved".
        metric_regression.check({{"test_loss": loss}})
'''


def test_seeded_fault_batch_averaged_loss_fails_against_the_correct_baseline(pytester):
    pytester.makepyfile(tinyml=(EXAMPLES / "tinyml.py").read_text())
    correct = 'metrics["log_loss"]'
    pytester.makepyfile(test_loss=FAULT_TEST.format(loss_expr=correct))
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    run(pytester).assert_outcomes(passed=1)
    pytester.makepyfile(test_loss=FAULT_TEST.format(
        loss_expr="evaluate_batch_mean(model, X_test, y_test, 64)"))
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_loss*0.205027*0.202655*two-sided*REGRESSED*",
                                 "*averaging per batch instead of per sample*"])
    pytester.makepyfile(test_loss=FAULT_TEST.format(loss_expr=correct))
    run(pytester).assert_outcomes(passed=1)


# ---- numpy only ---------------------------------------------------------------------------


def test_works_with_numpy_only(pytester, numpy_only):
    pytester.makepyfile(test_model="""
        import sys
        import numpy as np
        def test_eval(metric_regression):
            assert sys.modules["torch"] is None
            metric_regression.check({"accuracy": np.float64(0.9)}, higher_is_better=["accuracy"])
            metric_regression.check_repeated(lambda s: {"m": np.random.rand()}, seeds=[0, 1],
                                             name="rep")
            metric_regression.check_array("p", np.arange(6.0))
    """)
    report = pytester.path / "report.json"
    result = numpy_only("--mlcheck", "--mlcheck-update", f"--mlcheck-report={report}")
    result.assert_outcomes(passed=1)
    env = baseline(pytester)["test_eval"]["default"]["recorded_in"]
    assert env["torch"] == "none"
    result = numpy_only("--mlcheck", f"--mlcheck-report={report}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*torch not installed*", "2 metrics: 2 ok", "1 array: 1 ok"])
    data = json.loads(report.read_text())
    assert data["environment"]["torch"] == "none"
    assert sorted(r["verdict"] for r in data["records"]) == ["ok", "ok", "ok"]


def test_recording_does_not_import_torch_for_a_numpy_test(pytester):
    torch = pytest.importorskip("torch")
    pytester.makepyfile(test_model="""
        import sys
        def test_eval(metric_regression):
            metric_regression.check({"accuracy": 0.9})
            assert "torch" not in sys.modules, "recording the environment imported torch"
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--mlcheck-update")
    result.assert_outcomes(passed=1)
    env = baseline(pytester)["test_eval"]["default"]["recorded_in"]
    assert env["torch"] == torch.__version__.split("+")[0]
    assert env["device"] == "cpu" and set(env) == {"python", "numpy", "torch", "cuda", "device",
                                                   "platform"}


# ---- integers compare exactly (issue 12, item 5) ---------------------------------------

INT_ARRAY_TEST = """
    import numpy as np
    def test_tokens(metric_regression):
        ids = np.array([[101, 120000, 7], [5, 6, 2]], dtype=np.int64)
        {edit}
        metric_regression.check_array("token_ids", ids{options})
"""


def test_integer_snapshot_fails_on_a_changed_token_id_with_the_default_tolerance(pytester):
    pytester.makepyfile(test_model=INT_ARRAY_TEST.format(edit="pass", options=""))
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    # Seeded fault: an off-by-one token id; the default rtol 1e-5 allows 1.2 at 120000.
    pytester.makepyfile(test_model=INT_ARRAY_TEST.format(edit="ids[0, 1] += 1", options=""))
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*1 of 6 elements differ (16.7%)*",
                                 "*first at index (0, 1): 120000 (baseline) vs 120001 (current)*"])
    # The fixed twin: unchanged ids pass, and a tolerance given for them applies.
    pytester.makepyfile(test_model=INT_ARRAY_TEST.format(edit="pass", options=""))
    run(pytester).assert_outcomes(passed=1)
    pytester.makepyfile(test_model=INT_ARRAY_TEST.format(edit="ids[0, 1] += 1",
                                                         options=", atol=1"))
    run(pytester).assert_outcomes(passed=1)


def test_integer_metric_fails_on_any_change_unless_a_tolerance_is_given(pytester):
    make_metric_test(pytester, '{"n_tokens": 120000, "loss": 0.5}')
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    make_metric_test(pytester, '{"n_tokens": 120001, "loss": 0.5}')
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*n_tokens*120000*120001*REGRESSED*"])
    make_metric_test(pytester, '{"n_tokens": 120001, "loss": 0.5}', ', atol={"n_tokens": 1}')
    run(pytester).assert_outcomes(passed=1)
    make_metric_test(pytester, '{"n_tokens": 120000, "loss": 0.5 + 1e-9}')
    run(pytester).assert_outcomes(passed=1)


# ---- huge and tiny values: no overflow in the statistics (issue 12, item 14) --------------

HUGE_REPEATED = """
    import os
    SHIFT = float(os.environ.get("SHIFT", "0"))
    def test_huge(metric_regression):
        # mean 3e200, std 1e200: the plain formula's square overflows
        metric_regression.check_repeated(lambda s: {{"m": (1 + s + SHIFT) * 1e200}},
                                         seeds=[1, 2, 3])
    def test_many_seeds(metric_regression):
        # their plain sum, 1.25e308 * 500, overflows
        metric_regression.check_repeated(lambda s: {{"m": 1.25e308 - s * 1e305 + SHIFT * 1e306}},
                                         seeds=range(500))
    def test_tiny(metric_regression):
        # std 1e-200: the plain formula's square underflows to 0, a zero noise band
        metric_regression.check_repeated(lambda s: {{"m": (1 + s + SHIFT) * 1e-200}},
                                         seeds=[1, 2, 3], atol=0, rtol=0)
    {extra}
"""


def test_check_repeated_huge_values_and_many_seeds_compute_finite_statistics(pytester):
    pytester.makepyfile(test_model=HUGE_REPEATED.format(extra=""))
    strict = ("-W", "error::RuntimeWarning")
    result = run(pytester, "--mlcheck-update", *strict)
    result.assert_outcomes(passed=3)
    metrics = {t: baseline(pytester)[t]["default"]["metrics"]["m"]
               for t in ("test_huge", "test_many_seeds", "test_tiny")}
    assert metrics["test_huge"]["mean"] == pytest.approx(3e200)
    assert metrics["test_huge"]["std"] == pytest.approx(1e200)
    assert metrics["test_many_seeds"]["std"] == pytest.approx(1e305 * math.sqrt(500 * 501 / 12))
    assert metrics["test_tiny"]["std"] == pytest.approx(1e-200)
    run(pytester, *strict).assert_outcomes(passed=3)
    # Within the noise band: a shift of a quarter of a std passes...
    pytester._monkeypatch.setenv("SHIFT", "0.25")
    run(pytester, *strict).assert_outcomes(passed=3)
    # ...and a shift of 10 std fails all three, with the statistics in the table.
    pytester._monkeypatch.setenv("SHIFT", "10")
    result = run(pytester, *strict)
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines_random(["*m*3e+200 ± 1e+200 (n=3)*1.3e+201 ± 1e+200 (n=3)*REGRESSED*",
                                        "*m*1.0005e+308 ± 1.44e+307 (n=500)*+10%*REGRESSED*",
                                        "*m*3e-200 ± 1e-200 (n=3)*1.3e-199 ± 1e-200 (n=3)*REGRESSED*"])
    assert "OverflowError" not in result.stdout.str() and "inf%" not in result.stdout.str()


def test_check_repeated_std_beyond_the_float_range_is_a_clear_error(pytester):
    pytester.makepyfile(test_model="""
        def test_spread(metric_regression):
            metric_regression.check_repeated(
                lambda s: {"loss": 1.7e308 if s % 2 else -1.7e308}, seeds=[1, 2, 3, 4])
        def test_sigmas(metric_regression):
            metric_regression.check_repeated(lambda s: {"loss": s * 1e300}, seeds=[1, 2],
                                             sigmas=1e10)
    """)
    run(pytester, "--mlcheck-update", "-k", "sigmas").assert_outcomes(passed=1)
    result = run(pytester, "--mlcheck-update", "-W", "error::RuntimeWarning", "-k", "spread")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*ValueError: metric_regression.check_repeated: metric 'loss': the standard deviation "
        "of its per-seed values (from -1.7e+308 to 1.7e+308) overflows a float*"])
    result = run(pytester, "-k", "sigmas")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ValueError: metric_regression.check_repeated: metric 'loss': "
                                 "the noise band 1e+10 * sqrt(*) overflows a float*"])
    assert "OverflowError" not in result.stdout.str()


def test_statistics_match_the_plain_formulas_on_ordinary_values():
    # Scaling by a power of two is exact; only pow()'s last-ulp rounding may differ.
    import numpy as np

    from pytest_mlcheck.metrics import array_statistics, noise_band, seed_statistics

    rng = np.random.default_rng(0)
    for _ in range(200):
        values = [float(v) for v in rng.normal(rng.uniform(-5, 5), rng.uniform(0, 3),
                                               size=int(rng.integers(2, 40)))]
        mean = math.fsum(values) / len(values)
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
        stats = seed_statistics(values)
        assert stats["mean"] == mean and math.isclose(stats["std"], std, rel_tol=1e-15)
        cur, base = {"std": std, "n": len(values)}, {"std": float(rng.uniform(0, 2)), "n": 5}
        assert math.isclose(noise_band(cur, base, 3.0), 3.0 * math.sqrt(
            cur["std"] ** 2 / cur["n"] + base["std"] ** 2 / base["n"]), rel_tol=1e-15)
        arr = rng.normal(size=int(rng.integers(1, 300))).astype(np.float32)
        f64 = arr.astype(np.float64)
        assert array_statistics(arr) == {"mean": float(f64.mean()), "std": float(f64.std()),
                                         "min": float(f64.min()), "max": float(f64.max())}
    assert seed_statistics([0.0, 0.0])["std"] == 0.0
    assert noise_band({"std": 0.0, "n": 2}, {"std": 0.0, "n": 3}, 3.0) == 0.0
    assert noise_band({"std": 1e300, "n": 4}, {"std": 0.0, "n": 1}, 2.0) == pytest.approx(1e300)


def test_check_array_near_the_float_range_records_finite_statistics(pytester):
    import numpy as np

    pytester.makepyfile(test_model="""
        import os
        import numpy as np
        def test_eval(metric_regression):
            arr = np.array([1e200, 3e200, -1e308, 1.7e308, np.inf])
            arr[0] += float(os.environ.get("SHIFT", "0"))
            metric_regression.check_array("logits", arr)
    """)
    strict = ("-W", "error::RuntimeWarning")
    run(pytester, "--mlcheck-update", *strict).assert_outcomes(passed=1)
    info = baseline(pytester)["test_eval"]["logits"]["array"]
    assert info["mean"] == pytest.approx((1e200 + 3e200 - 1e308 + 1.7e308) / 4)
    assert math.isfinite(info["std"]) and info["std"] == pytest.approx(
        float(np.std(np.array([1e200, 3e200, -1e308, 1.7e308]) / 1e300)) * 1e300)
    run(pytester, *strict).assert_outcomes(passed=1)
    pytester._monkeypatch.setenv("SHIFT", "1e199")
    result = run(pytester, *strict)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*1 of 5 elements differ*"])
