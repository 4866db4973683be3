"""metric_regression on the tiny model: baselines in mlcheck_baselines/, reviewed like code.

Record or accept new values with ``pytest examples --mlcheck-update`` and review the
diff of ``examples/mlcheck_baselines/test_metrics_example.toml``.
"""

import numpy as np
import pytest

import tinyml


@pytest.fixture(scope="module")
def trained():
    """The model trained once for this module, with its test metrics."""
    return tinyml.train_and_evaluate(seed=0)


def test_test_metrics(metric_regression, trained):
    _model, metrics = trained
    metric_regression.check(metrics, higher_is_better=["accuracy"], lower_is_better=["log_loss"])


def test_per_class_recall(metric_regression, trained):
    model, _ = trained
    X, y = tinyml.make_blobs(seed=0)
    X_train, X_test, y_train, y_test = tinyml.train_test_split(X, y, seed=0)
    _, X_test = tinyml.standardize(X_train, X_test)
    metric_regression.check(tinyml.per_class_recall(model, X_test, y_test), name="per_class",
                            higher_is_better=["recall_*"])


def test_prediction_snapshot(metric_regression, trained):
    model, _ = trained
    X, y = tinyml.make_blobs(n_samples=600, seed=0)
    X_train, X_test, _, _ = tinyml.train_test_split(X, y, seed=0)
    _, X_test = tinyml.standardize(X_train, X_test)
    probabilities = model.predict_proba(X_test[:8]).astype(np.float32)
    metric_regression.check_array("probabilities", probabilities, atol=1e-6)


@pytest.mark.mlcheck
def test_accuracy_over_training_seeds(metric_regression):
    # Training noise is measured, not guessed: the band grows with the seed-to-seed std.
    metric_regression.check_repeated(lambda seed: tinyml.train_and_evaluate(seed=seed)[1],
                                     seeds=range(5), higher_is_better=["accuracy"],
                                     lower_is_better=["log_loss"])


@pytest.mark.parametrize("batch_size", [32, 64, 150])
def test_metrics_do_not_depend_on_eval_batch_size(metric_regression, batch_size):
    # One baseline per batch size. Weighting batches by their size keeps 32 and 64
    # (short last batches) equal to 150; a plain mean of batch means would move them.
    _, metrics = tinyml.train_and_evaluate(seed=0, batch_size=batch_size)
    metric_regression.check(metrics, higher_is_better=["accuracy"], lower_is_better=["log_loss"])


def test_torch_mlp(metric_regression):
    torch = pytest.importorskip("torch")
    X, y = tinyml.make_blobs(seed=0)
    X_train, X_test, y_train, y_test = tinyml.train_test_split(X, y, seed=0)
    X_train, X_test = tinyml.standardize(X_train, X_test)
    model = tinyml.train_torch(tinyml.make_torch_mlp(seed=0), X_train, y_train, seed=0)
    with torch.no_grad():
        logits = model(torch.as_tensor(X_test, dtype=torch.float32))
    loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(y_test))
    accuracy = (logits.argmax(dim=1) == torch.as_tensor(y_test)).float().mean()
    # 0-d tensors are accepted as metric values. float32 training on another CPU may
    # differ in the last bits, which can flip one of 150 predictions: per-metric bands.
    metric_regression.check({"accuracy": accuracy, "cross_entropy": loss}, name="torch",
                            higher_is_better=["accuracy"], lower_is_better=["cross_entropy"],
                            atol={"accuracy": 0.01, "cross_entropy": 1e-4})
