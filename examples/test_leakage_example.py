"""data_leakage on the tiny project: its splits share no rows or patients, no feature
encodes the label, and the training rows are unique. (tests/plugin/test_leakage.py shows each check
failing on the seeded bug: a test set cut from the head of the training data, the label
left among the features, a patient on both sides of the split.)
"""

import numpy as np
import pytest

import tinyml


@pytest.fixture(scope="module")
def splits():
    """The project's train/test split, as the training pipeline makes it."""
    X, y = tinyml.make_blobs(n_samples=600, seed=0)
    return tinyml.train_test_split(X, y, test_fraction=0.25, seed=0)


def test_splits_share_no_rows(data_leakage, splits):
    X_train, X_test, _, _ = splits
    # decimals=6 also catches rows re-exported with float noise.
    data_leakage.check(X_train, X_test, decimals=6)


def test_splits_share_no_patients(data_leakage):
    # Several scans per patient: the split must keep each patient on one side.
    X, y = tinyml.make_blobs(n_samples=600, seed=1)
    patients = np.arange(600) // 4
    test_patients = np.random.default_rng(0).permutation(150)[:40]
    in_test = np.isin(patients, test_patients)
    data_leakage.check(X[~in_test], X[in_test], key=(patients[~in_test], patients[in_test]))


def test_features_do_not_encode_the_label(data_leakage, splits):
    X_train, _, y_train, _ = splits
    data_leakage.check_labels(X_train, y_train)


def test_training_rows_are_unique(data_leakage, splits):
    X_train, _, _, _ = splits
    data_leakage.check_duplicates(X_train)
