"""resource_budget on the tiny project: training fits a time and memory budget, the
model a parameter budget, and memory creep is tracked like any metric.

The memory metric's baseline lives in ``mlcheck_baselines/test_budget_example.toml``;
accept an intended change with ``pytest examples --mlcheck-update``.
"""

import pytest

import tinyml


def test_training_fits_the_budget(resource_budget):
    X, y = tinyml.make_blobs(n_samples=600, seed=0)
    # Generous bounds: they catch a pipeline that got 10x slower or bigger, not noise.
    with resource_budget(max_seconds=60, max_peak_mb=200, name="fit") as used:
        tinyml.SoftmaxRegression(n_features=4, n_classes=3).fit(X, y, epochs=5)
    assert used.seconds < 60


def test_scaling_memory_does_not_creep(resource_budget, metric_regression):
    X, y = tinyml.make_blobs(n_samples=100_000, seed=0)
    X_train, X_test, _, _ = tinyml.train_test_split(X, y, seed=0)
    with resource_budget(max_peak_mb=100, trace_python=True, name="standardize") as used:
        tinyml.standardize(X_train, X_test)
    # tracemalloc's count of numpy buffers is exact and the same on every machine, so it
    # makes a stable baseline; a 20% rise fails, a fall is reported as improved.
    metric_regression.check({"traced_peak_mb": used.traced_peak_mb}, name="memory",
                            lower_is_better=["traced_peak_mb"], rtol=0.2)


def test_model_fits_the_parameter_budget(resource_budget):
    pytest.importorskip("torch")
    counts = resource_budget.params(tinyml.make_torch_mlp(hidden=16), max_params=1_000)
    assert counts["frozen"] == 0
