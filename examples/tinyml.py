"""A tiny but real ML project: data, a model, training and evaluation, in seconds on a CPU.

The example tests (``examples/test_*_example.py``) import this module; each check
family of pytest-mlcheck shows its fixtures on it. Everything here runs on numpy
alone; :func:`make_torch_mlp` and :func:`train_torch` add a torch model for the
examples that need one (they import torch only when called).

Typical use::

    from tinyml import make_blobs, train_test_split, SoftmaxRegression, evaluate

    X, y = make_blobs(n_samples=600, seed=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_fraction=0.25, seed=0)
    model = SoftmaxRegression(n_features=X.shape[1], n_classes=3).fit(X_train, y_train)
    metrics = evaluate(model, X_test, y_test, batch_size=64)
    # {"accuracy": 0.9..., "log_loss": 0.2...}
"""

from __future__ import annotations

from typing import Any

import numpy as np


def make_blobs(n_samples: int = 600, n_features: int = 4, n_classes: int = 3,
               spread: float = 1.6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Generate a classification data set: one Gaussian blob per class, overlapping a little.

    Args:
        n_samples: Number of rows.
        n_features: Number of features.
        n_classes: Number of classes.
        spread: Standard deviation of each blob; larger means harder.
        seed: Seed of the data.

    Returns:
        ``(X, y)``: float64 features of shape ``(n_samples, n_features)`` and int64 labels.
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 3.0, size=(n_classes, n_features))
    y = rng.integers(0, n_classes, size=n_samples)
    X = centers[y] + rng.normal(0.0, spread, size=(n_samples, n_features))
    return X, y.astype(np.int64)


def train_test_split(X: np.ndarray, y: np.ndarray, test_fraction: float = 0.25,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle the rows and split them into disjoint train and test sets.

    Args:
        X: Features, one row per sample.
        y: Labels.
        test_fraction: Share of rows in the test set.
        seed: Seed of the shuffle.

    Returns:
        ``(X_train, X_test, y_train, y_test)``.
    """
    order = np.random.default_rng(seed).permutation(len(X))
    n_test = int(round(len(X) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]


def standardize(X_train: np.ndarray, X_other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale features with the mean and std of the training rows only (no leakage).

    Args:
        X_train: Training features.
        X_other: Features to scale with the training statistics (validation, test).

    Returns:
        ``(X_train_scaled, X_other_scaled)``.
    """
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0) + 1e-12
    return (X_train - mean) / std, (X_other - mean) / std


def softmax(logits: np.ndarray) -> np.ndarray:
    """Return row-wise softmax probabilities, stable for large logits.

    Args:
        logits: Array of shape ``(n, n_classes)``.

    Returns:
        Probabilities of the same shape, rows summing to 1.
    """
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class SoftmaxRegression:
    """Multinomial logistic regression trained by mini-batch gradient descent (numpy).

    Args:
        n_features: Number of input features.
        n_classes: Number of classes.
        l2: L2 penalty on the weights.
    """

    def __init__(self, n_features: int, n_classes: int, l2: float = 1e-3) -> None:
        self.n_features = n_features
        self.n_classes = n_classes
        self.l2 = l2
        self.W = np.zeros((n_features, n_classes))
        self.b = np.zeros(n_classes)

    def logits(self, X: np.ndarray) -> np.ndarray:
        """Return the class scores of each row.

        Args:
            X: Features of shape ``(n, n_features)``.

        Returns:
            Logits of shape ``(n, n_classes)``.
        """
        return X @ self.W + self.b

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Return class probabilities of each row.

        Args:
            X: Features of shape ``(n, n_features)``.

        Returns:
            Probabilities of shape ``(n, n_classes)``.
        """
        return softmax(self.logits(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Return the most likely class of each row.

        Args:
            X: Features of shape ``(n, n_features)``.

        Returns:
            Labels of shape ``(n,)``.
        """
        return self.logits(X).argmax(axis=1)

    def fit(self, X: np.ndarray, y: np.ndarray, epochs: int = 30, lr: float = 0.5,
            batch_size: int = 32, seed: int = 0) -> "SoftmaxRegression":
        """Train with shuffled mini-batches; the initial weights are random (seeded).

        Args:
            X: Training features.
            y: Training labels in ``[0, n_classes)``.
            epochs: Passes over the data.
            lr: Learning rate.
            batch_size: Rows per gradient step.
            seed: Seed of the initial weights and the shuffling.

        Returns:
            The trained model (self).
        """
        rng = np.random.default_rng(seed)
        self.W = rng.normal(0.0, 0.01, size=(self.n_features, self.n_classes))
        self.b = np.zeros(self.n_classes)
        onehot = np.eye(self.n_classes)[y]
        for _ in range(epochs):
            order = rng.permutation(len(X))
            for start in range(0, len(X), batch_size):
                idx = order[start:start + batch_size]
                p = self.predict_proba(X[idx])
                grad = (p - onehot[idx]) / len(idx)
                self.W -= lr * (X[idx].T @ grad + self.l2 * self.W)
                self.b -= lr * grad.sum(axis=0)
        return self


def iterate_batches(n: int, batch_size: int) -> list[slice]:
    """Return the slices of consecutive batches; the last one is short when n % batch_size.

    Args:
        n: Number of rows.
        batch_size: Rows per batch.

    Returns:
        The slices, in order.
    """
    return [slice(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def evaluate(model: Any, X: np.ndarray, y: np.ndarray, batch_size: int = 64) -> dict[str, float]:
    """Return accuracy and mean log loss over the samples, evaluated batch by batch.

    Batched evaluation must weight each batch by its size: the plain mean of the
    per-batch means is wrong whenever the last batch is short.

    Args:
        model: Anything with ``predict_proba(X)``.
        X: Features.
        y: Labels.
        batch_size: Rows per batch.

    Returns:
        ``{"accuracy": ..., "log_loss": ...}`` as Python floats.
    """
    loss_sum = 0.0
    correct = 0
    for batch in iterate_batches(len(X), batch_size):
        p = model.predict_proba(X[batch])
        p_true = p[np.arange(len(p)), y[batch]]
        loss_sum += float(-np.log(np.clip(p_true, 1e-12, 1.0)).sum())
        correct += int((p.argmax(axis=1) == y[batch]).sum())
    return {"accuracy": correct / len(X), "log_loss": loss_sum / len(X)}


def per_class_recall(model: Any, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Return the recall of each class, keyed ``recall_<class>``.

    Args:
        model: Anything with ``predict(X)``.
        X: Features.
        y: Labels.

    Returns:
        Recall per class as Python floats.
    """
    pred = model.predict(X)
    return {f"recall_{c}": float((pred[y == c] == c).mean()) for c in np.unique(y)}


def train_and_evaluate(seed: int = 0, n_samples: int = 600, epochs: int = 30,
                       batch_size: int = 64) -> tuple[SoftmaxRegression, dict[str, float]]:
    """Run the whole pipeline: data, split, scaling, training, evaluation.

    The data set is fixed (seed 0); ``seed`` only changes the training (initial
    weights and shuffling), which is what run-to-run noise means here.

    Args:
        seed: Seed of the training.
        n_samples: Rows of generated data.
        epochs: Training epochs.
        batch_size: Evaluation batch size.

    Returns:
        ``(model, test metrics)``.
    """
    X, y = make_blobs(n_samples=n_samples, seed=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_fraction=0.25, seed=0)
    X_train, X_test = standardize(X_train, X_test)
    model = SoftmaxRegression(X.shape[1], int(y.max()) + 1).fit(
        X_train, y_train, epochs=epochs, seed=seed)
    return model, evaluate(model, X_test, y_test, batch_size=batch_size)


def make_torch_mlp(n_features: int = 4, n_classes: int = 3, hidden: int = 16, seed: int = 0):
    """Return a small torch MLP classifier (imports torch; needs it installed).

    Args:
        n_features: Number of input features.
        n_classes: Number of classes.
        hidden: Width of the hidden layer.
        seed: Seed of the initial weights.

    Returns:
        A ``torch.nn.Sequential``: Linear, ReLU, Linear.
    """
    import torch

    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = torch.nn.Sequential(
            torch.nn.Linear(n_features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_classes))
    finally:
        torch.random.set_rng_state(gen_state)
    return model


def train_torch(model: Any, X: np.ndarray, y: np.ndarray, epochs: int = 20, lr: float = 0.05,
                batch_size: int = 32, seed: int = 0) -> Any:
    """Train a torch classifier with Adam and cross-entropy on numpy data.

    Args:
        model: A torch module mapping ``(n, n_features)`` to logits.
        X: Features (converted to float32).
        y: Labels (converted to int64).
        epochs: Passes over the data.
        lr: Learning rate.
        batch_size: Rows per step.
        seed: Seed of the shuffling.

    Returns:
        The trained model, in eval mode.
    """
    import torch

    Xt = torch.as_tensor(X, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.int64)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(Xt), generator=gen)
        for start in range(0, len(Xt), batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    model.eval()
    return model
