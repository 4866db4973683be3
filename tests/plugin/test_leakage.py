"""data_leakage: rows and groups shared across splits, duplicates, label leakage."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_mlcheck import leakage, report
from pytest_mlcheck.leakage import (
    assert_no_duplicates,
    assert_no_label_leakage,
    assert_no_leakage,
)


def _data(n=500, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32)


# ---- rows shared across splits ---------------------------------------------------


def test_test_split_from_head_of_train_fails_naming_pairs():
    train = _data()
    test = train[:40].copy()  # seeded fault: the test set is the first training rows
    with pytest.raises(AssertionError) as info:
        assert_no_leakage(train, test)
    msg = str(info.value)
    assert "train/test: 40 of 40 test rows (100%)" in msg
    assert "(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)" in msg
    assert "Likely causes" in msg


def test_disjoint_split_passes():
    train, test = _data(seed=0), _data(n=100, seed=1)
    values = assert_no_leakage(train, test)
    assert values["row_overlap"]["train/test"]["rows"] == 0


def test_partial_overlap_counts_only_leaked_rows():
    train, test = _data(), _data(n=100, seed=1)
    test[[10, 50, 99]] = train[[7, 300, 499]]
    pattern = r"3 of 100 test rows .*\(7, 10\), \(300, 50\), \(499, 99\)"
    with pytest.raises(AssertionError, match=pattern):
        assert_no_leakage(train, test)


def test_val_split_pairs_reported_separately():
    train, val, test = _data(seed=0), _data(n=50, seed=1), _data(n=50, seed=2)
    test[0] = val[3]
    val[1] = train[2]
    with pytest.raises(AssertionError) as info:
        assert_no_leakage(train, test, val=val)
    msg = str(info.value)
    assert "train/val: 1 of 50 val rows" in msg and "(2, 1)" in msg
    assert "val/test: 1 of 50 test rows" in msg and "(3, 0)" in msg
    assert "train/test" not in msg


def test_near_duplicates_need_decimals():
    train = _data()
    test = train[:5] + np.float32(1e-6)  # re-exported with float noise
    test = np.vstack([test, _data(n=20, seed=3)])
    assert_no_leakage(train, test)  # exact comparison: not equal
    with pytest.raises(AssertionError, match="5 of 25 test rows .*after rounding to 3 decimals"):
        assert_no_leakage(train, test, decimals=3)


def test_negative_zero_and_nan_compare_equal():
    train = np.array([[0.0, np.nan], [1.0, 2.0]])
    # a NaN with a different bit pattern (sign and payload) and -0.0
    odd_nan = np.array([0xFFF8000000000001], dtype=np.uint64).view(np.float64)[0]
    test = np.array([[-0.0, odd_nan], [3.0, 4.0]])
    with pytest.raises(AssertionError, match="1 of 2 test rows"):
        assert_no_leakage(train, test)
    assert_no_leakage(train, np.array([[0.0, 1.0]]))  # NaN is not equal to a number


def test_dtype_promotion_across_splits():
    train = np.arange(12, dtype=np.int32).reshape(6, 2)
    test = train[:2].astype(np.float64)
    with pytest.raises(AssertionError, match="2 of 2 test rows"):
        assert_no_leakage(train, test)


def test_hash_collisions_never_report(monkeypatch):
    # Every row hashes to the same value: only the exact confirmation decides.
    monkeypatch.setattr(leakage, "_mix", lambda words: np.zeros(len(words), np.uint64))
    train, test = _data(n=200), _data(n=50, seed=1)
    assert_no_leakage(train, test)
    test[17] = train[123]
    with pytest.raises(AssertionError, match=r"1 of 50 test rows .*\(123, 17\)"):
        assert_no_leakage(train, test)
    with pytest.raises(AssertionError, match="1 of 201 rows"):
        assert_no_duplicates(np.vstack([train, train[5:6]]))
    with pytest.raises(AssertionError) as info:
        assert_no_duplicates(np.vstack([train, train[9:10], train[5:6], train[9:10]]))
    msg = str(info.value)
    assert "3 of 203 rows" in msg and "2 group(s)" in msg
    assert "3 copies: rows 9, 200, 202" in msg and "2 copies: rows 5, 201" in msg


def test_images_are_compared_whole():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 255, size=(64, 3, 5, 5), dtype=np.uint8)
    test = rng.integers(0, 255, size=(16, 3, 5, 5), dtype=np.uint8)
    assert_no_leakage(train, test)
    test[4] = train[9]
    with pytest.raises(AssertionError, match=r"\(9, 4\)"):
        assert_no_leakage(train, test)


def test_lists_of_strings_and_bytes():
    train = ["the cat sat", "a dog ran", "birds sing"]
    assert_no_leakage(train, ["fish swim", "cows moo"])
    with pytest.raises(AssertionError, match=r"\(1, 0\)"):
        assert_no_leakage(train, ["a dog ran"])
    # bytes and str are different values, even with the same characters
    assert_no_leakage([b"a dog ran", b"x"], ["a dog ran"])
    with pytest.raises(AssertionError):
        assert_no_leakage([b"a\x00", b"b"], [b"a\x00"])
    # trailing NUL bytes are part of the value
    assert_no_leakage([b"a", b"b"], [b"a\x00"])


def test_rows_of_mixed_python_values_keep_their_types():
    assert_no_leakage([("a", 1), ("b", 2)], [("a", "1")])
    with pytest.raises(AssertionError):
        assert_no_leakage([("a", 1), ("b", 2)], [("b", 2)])


def test_object_arrays_of_strings_compare_by_value():
    train = np.array([["x", "1"], ["y", "2"]], dtype=object)
    test = np.array([["y", "2"], [None, "3"]], dtype=object)
    with pytest.raises(AssertionError, match=r"\(1, 0\)"):
        assert_no_leakage(train, test)


# ---- groups ----------------------------------------------------------------------


def test_group_leakage_same_patient_in_both_splits():
    train, test = _data(n=40), _data(n=10, seed=1)
    train_patients = np.repeat(np.arange(10), 4)
    test_patients = np.array([100, 100, 101, 101, 7, 7, 102, 102, 103, 103])  # 7 leaked
    with pytest.raises(AssertionError) as info:
        assert_no_leakage(train, test, key=(train_patients, test_patients))
    msg = str(info.value)
    assert "1 group(s) by the given ids appear in both (4 train rows, 2 test rows); first: 7" in msg
    assert "GroupShuffleSplit" in msg
    fixed = np.array([100, 100, 101, 101, 104, 104, 102, 102, 103, 103])
    values = assert_no_leakage(train, test, key={"train": train_patients, "test": fixed})
    assert values["group_overlap"]["train/test"]["groups"] == 0


def test_key_column_is_left_out_of_row_comparison():
    # A unique row id in column 0 would hide every duplicate row; as the key it is
    # compared as a group id instead, and the remaining features are compared as rows.
    feats = _data(n=20)
    train = np.column_stack([np.arange(20), feats])
    test = np.column_stack([np.arange(100, 105), feats[:5]])
    with pytest.raises(AssertionError) as info:
        assert_no_leakage(train, test, key=0)
    msg = str(info.value)
    assert "rows shared between splits" in msg and "5 of 5 test rows" in msg
    assert "groups shared" not in msg


def test_group_check_with_val_split():
    a, b, c = _data(n=6), _data(n=4, seed=1), _data(n=4, seed=2)
    ids = (["u1", "u1", "u2", "u3", "u4", "u5"], ["u9", "u8", "u7", "u6"], ["v1", "u2", "v2", "v3"])
    with pytest.raises(AssertionError, match=r"train/val: 1 group\(s\).*'u2'"):
        assert_no_leakage(a, b, val=c, key=ids)


# ---- duplicates within a split ---------------------------------------------------


def test_duplicates_within_split_counted():
    x = _data(n=100)
    x_bad = np.vstack([x, x[[3, 3, 8]]])  # row 3 three times, row 8 twice
    with pytest.raises(AssertionError) as info:
        assert_no_duplicates(x_bad)
    msg = str(info.value)
    assert "3 of 103 rows" in msg and "2 group(s)" in msg
    assert "3 copies: rows 3, 100, 101" in msg and "2 copies: rows 8, 102" in msg
    values = assert_no_duplicates(x)
    assert values["duplicate_rows"] == 0


def test_near_duplicates_within_split_with_decimals():
    x = np.array([[0.1234, 1.0], [0.12341, 1.0], [0.5, 2.0]])
    assert_no_duplicates(x)
    with pytest.raises(AssertionError, match="1 of 3 rows"):
        assert_no_duplicates(x, decimals=3)


def test_nan_rows_are_duplicates_of_each_other():
    with pytest.raises(AssertionError, match="1 of 3 rows"):
        assert_no_duplicates(np.array([[np.nan, 1.0], [np.nan, 1.0], [2.0, 1.0]]))


# ---- label leakage ---------------------------------------------------------------


def _classification(n=600, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    X = rng.normal(size=(n, 5)) + 0.7 * y[:, None]  # informative but noisy
    return X, y


def test_id_column_equal_to_label_fails_naming_it():
    X, y = _classification()
    X_bad = np.column_stack([X, y])  # seeded fault: "class_id" kept among the features
    with pytest.raises(AssertionError) as info:
        assert_no_label_leakage(X_bad, y)
    msg = str(info.value)
    assert "column 5: 1.0000" in msg and "balanced accuracy" in msg
    values = assert_no_label_leakage(X, y)
    assert max(values["top"].values()) < 0.9


def test_unique_random_ids_do_not_predict():
    X, y = _classification()
    ids = np.random.default_rng(5).permutation(len(y))
    assert_no_label_leakage(np.column_stack([X, ids]), y)


def test_ids_assigned_after_sorting_by_class_leak():
    X, y = _classification()
    order = np.argsort(y, kind="stable")
    X, y = X[order], y[order]
    ids = np.arange(len(y))  # row ids of a file sorted by class encode the class
    with pytest.raises(AssertionError, match="column 5"):
        assert_no_label_leakage(np.column_stack([X, ids]), y)


def test_noisy_copy_of_label_leaks():
    X, y = _classification()
    leak = y + np.random.default_rng(1).normal(scale=0.01, size=len(y))
    with pytest.raises(AssertionError, match="column 5"):
        assert_no_label_leakage(np.column_stack([X, leak]), y)


def test_imbalanced_labels_constant_feature_passes():
    y = np.zeros(1000, dtype=int)
    y[:5] = 1  # 99.5% majority: raw accuracy of "always 0" would be 0.995
    X = np.column_stack([np.ones(1000), np.random.default_rng(0).normal(size=1000)])
    values = assert_no_label_leakage(X, y)
    assert max(values["top"].values()) < 0.6


def test_continuous_label_uses_correlation():
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    X = rng.normal(size=(400, 3)) + 0.3 * y[:, None]
    values = assert_no_label_leakage(X, y)
    assert values["discrete"] is False
    with pytest.raises(AssertionError, match=r"(?s)absolute correlation.*column 3: 1\.0000"):
        assert_no_label_leakage(np.column_stack([X, 2 * y + 1]), y)


def test_string_labels_and_string_feature():
    y = ["cat", "dog", "bird"] * 50
    X = np.empty((150, 2), dtype=object)
    X[:, 0] = np.random.default_rng(0).normal(size=150)
    X[:, 1] = [f"{label}_photo.jpg"[:3] for label in y]  # file-name prefix = class
    with pytest.raises(AssertionError, match="column 1"):
        assert_no_label_leakage(X, y)


def test_threshold_is_respected():
    X, y = _classification()
    leak = y.copy()
    leak[:30] = (leak[:30] + 1) % 3  # 95% agreement
    X2 = np.column_stack([X, leak])
    assert_no_label_leakage(X2, y)
    with pytest.raises(AssertionError, match="column 5"):
        assert_no_label_leakage(X2, y, threshold=0.9)


# ---- bad input -------------------------------------------------------------------


def test_empty_split_is_an_error():
    with pytest.raises(ValueError, match="test is empty"):
        assert_no_leakage(_data(), np.empty((0, 6)))
    with pytest.raises(ValueError, match="x is empty"):
        assert_no_duplicates([])


def test_mismatched_columns_is_an_error():
    with pytest.raises(ValueError, match="test has 5 columns per row but train has 6"):
        assert_no_leakage(_data(), _data(d=5))


def test_ragged_list_is_an_error():
    with pytest.raises(ValueError, match="train is a ragged list"):
        assert_no_leakage([[1, 2], [3]], [[1, 2]])


def test_object_array_of_arrays_is_an_error():
    bad = np.empty(2, dtype=object)
    bad[0], bad[1] = np.zeros(3), np.zeros(2)
    with pytest.raises(TypeError, match="unhashable ndarray"):
        assert_no_leakage(bad, np.array(["a"], dtype=object))


def test_missing_key_column_is_an_error():
    with pytest.raises(ValueError, match="key column 9 does not exist in train"):
        assert_no_leakage(_data(), _data(seed=1), key=9)
    with pytest.raises(ValueError, match="key 'patient' names a column"):
        assert_no_leakage(_data(), _data(seed=1), key="patient")
    with pytest.raises(ValueError, match="key for test has 3 ids but test has 500 rows"):
        assert_no_leakage(_data(), _data(seed=1), key=(np.arange(500), np.arange(3)))
    with pytest.raises(TypeError, match="key must be"):
        assert_no_leakage(_data(), _data(seed=1), key=1.5)


def test_unsupported_types_are_errors():
    with pytest.raises(TypeError, match="train must be a numpy array"):
        assert_no_leakage({1: 2}, _data())
    with pytest.raises(TypeError, match="decimals must be an int"):
        assert_no_leakage(_data(), _data(seed=1), decimals=2.5)


def test_label_check_bad_input():
    X, y = _classification()
    with pytest.raises(ValueError, match="y has 10 labels but X has 600 rows"):
        assert_no_label_leakage(X, y[:10])
    with pytest.raises(ValueError, match="missing labels"):
        assert_no_label_leakage(X, np.where(y == 0, np.nan, y * 1.0))
    with pytest.raises(ValueError, match="single class"):
        assert_no_label_leakage(X, np.zeros(600, dtype=int))
    with pytest.raises(ValueError, match="one-hot"):
        assert_no_label_leakage(X, np.eye(3)[y])
    with pytest.raises(ValueError, match="threshold"):
        assert_no_label_leakage(X, y, threshold=1.5)


# ---- torch and pandas ------------------------------------------------------------


def test_torch_tensors():
    torch = pytest.importorskip("torch")
    train = torch.randn(100, 4, requires_grad=True)
    with pytest.raises(AssertionError, match="10 of 10 test rows"):
        assert_no_leakage(train, train[:10])
    assert_no_leakage(train, torch.randn(10, 4))
    y = torch.randint(0, 2, (100,))
    with pytest.raises(AssertionError, match="column 4"):
        assert_no_label_leakage(torch.cat([train.detach(), y[:, None].float()], 1), y)


def test_pandas_dataframes_with_key_column():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"patient": np.repeat(["p1", "p2", "p3"], 3),
                          "age": rng.integers(20, 80, 9), "scan": rng.normal(size=9)})
    test = pd.DataFrame({"patient": ["p3", "p4"], "age": [51, 52], "scan": [0.5, 0.6]},
                        index=[1000, 1001])
    with pytest.raises(AssertionError, match=r"column 'patient'.*'p3'"):
        assert_no_leakage(train, test, key="patient")
    assert_no_leakage(train, test.assign(patient=["p5", "p4"]), key="patient")
    with pytest.raises(ValueError, match=r"key 'subject' is not a column of train; its "
                                         r"columns are \['patient', 'age', 'scan'\]"):
        assert_no_leakage(train, test, key="subject")


def test_pandas_column_order_missing_values_and_index_labels():
    pd = pytest.importorskip("pandas")
    train = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": ["x", None, "z"]})
    test = pd.DataFrame({"b": [np.nan, "q"], "a": [np.nan, 9.0]}, index=["r1", "r2"])
    with pytest.raises(AssertionError, match=r"\(1, 0 \(index 'r1'\)\)"):
        assert_no_leakage(train, test)  # None equals NaN as a missing string
    with pytest.raises(ValueError, match="test lacks \\['b'\\]"):
        assert_no_leakage(train, test[["a"]].assign(c=1))


def test_pandas_label_leakage_names_the_column():
    pd = pytest.importorskip("pandas")
    X, y = _classification()
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)]).assign(outcome_code=y)
    with pytest.raises(AssertionError, match="outcome_code: 1.0000"):
        assert_no_label_leakage(df, pd.Series(y))
    assert_no_label_leakage(df.drop(columns="outcome_code"), pd.Series(y))


# ---- the fixture in real sessions ------------------------------------------------


_SESSION = """
import numpy as np

def _split():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    return X, rng.normal(size=(60, 4)).astype(np.float32)

def test_leaky(data_leakage):
    train, _ = _split()
    data_leakage.check(train, train[:60])

def test_clean(data_leakage):
    train, test = _split()
    data_leakage.check(train, test)

def test_labels(data_leakage):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    data_leakage.check_labels(np.column_stack([rng.normal(size=200), y]), y)

def test_dups(data_leakage):
    train, _ = _split()
    data_leakage.check_duplicates(train)
"""


def test_fixture_session_and_json_report(pytester):
    pytester.makepyfile(test_split=_SESSION)
    result = pytester.runpytest("-p", "no:cacheprovider", "--mlcheck-report=report.json")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines([
        "*data leakage: rows shared between splits:*",
        "*train/test: 60 of 60 test rows (100%) are exact copies of train rows*",
        "*label leakage: 1 feature(s)*",
        "*column 1: 1.0000*",
    ])
    data = json.loads((pytester.path / "report.json").read_text())
    recs = {r["nodeid"].split("::")[1]: r for r in data["records"]}
    assert recs["test_leaky"]["kind"] == "leakage"
    assert recs["test_leaky"]["verdict"] == "FAILED"
    assert recs["test_leaky"]["values"]["row_overlap"]["train/test"]["rows"] == 60
    assert recs["test_clean"]["verdict"] == "ok"
    assert recs["test_labels"]["name"] == "label_leakage"
    assert recs["test_dups"]["values"]["duplicate_rows"] == 0


def test_numpy_only_session(pytester, numpy_only):
    pytester.makepyfile(test_split=_SESSION + """
def test_torch_absent():
    import pytest
    with pytest.raises(ImportError):
        import torch
""")
    result = numpy_only("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=2)


def test_plain_functions_are_exported():
    import pytest_mlcheck

    assert pytest_mlcheck.assert_no_leakage is assert_no_leakage
    assert pytest_mlcheck.assert_no_label_leakage is assert_no_label_leakage
    assert pytest_mlcheck.assert_no_duplicates is assert_no_duplicates


# ---- property: the same answer as a brute-force set of row tuples ------------------

def _tuple_key(row):
    # the documented equality: NaN equals NaN, -0.0 equals 0.0
    return tuple("nan" if v != v else v + 0.0 for v in row)


def _found(fn, *args):
    sink = []
    saved = (report._active.nodeid, report._active.sink)
    report.activate("property", sink)
    try:
        fn(*args)
    except AssertionError:
        pass
    finally:
        report.activate(*saved) if saved[1] is not None else report.deactivate()
    return sink[-1].values


_VALUES = st.sampled_from([0.0, -0.0, 1.0, 2.5, float("nan"), -3.0])
_ROWS = st.lists(st.lists(_VALUES, min_size=3, max_size=3), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None)
@given(train=_ROWS, test=_ROWS, collide=st.booleans())
def test_matches_brute_force(train, test, collide):
    original = leakage._mix
    if collide:  # every row in one hash bucket: exact confirmation alone decides
        leakage._mix = lambda words: np.zeros(len(words), np.uint64)
    try:
        seen = {_tuple_key(r) for r in train}
        expected = sum(_tuple_key(r) in seen for r in test)
        values = _found(assert_no_leakage, np.array(train), np.array(test))
        assert values["row_overlap"]["train/test"]["rows"] == expected
        for i, j in values["row_overlap"]["train/test"]["first_pairs"]:
            assert _tuple_key(train[i]) == _tuple_key(test[j])
        dup = _found(assert_no_duplicates, np.array(train))
        assert dup["duplicate_rows"] == len(train) - len({_tuple_key(r) for r in train})
    finally:
        leakage._mix = original
