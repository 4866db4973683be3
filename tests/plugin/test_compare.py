"""The comparison core (pytest_mlcheck.compare): flattening trees and diffing them."""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest

from pytest_mlcheck.compare import (
    UncomparableOutputError,
    compare,
    diff_arrays,
    diff_trees,
    flatten,
    summarize,
)


@dataclasses.dataclass
class Output:
    logits: np.ndarray
    hidden: list


Pair = collections.namedtuple("Pair", "ids mask")


# ---- nested containers ------------------------------------------------------------------


def test_flatten_walks_every_container_in_a_canonical_order():
    tree = {"b": [np.zeros(2), (1, 2.5)], "a": Output(np.ones(3), [Pair(np.arange(2), None)])}
    paths = [leaf.path for leaf in flatten(tree)]
    assert paths == [
        "output", "output['a']", "output['a'].logits", "output['a'].hidden",
        "output['a'].hidden[0]", "output['a'].hidden[0].ids", "output['a'].hidden[0].mask",
        "output['b']", "output['b'][0]", "output['b'][1]", "output['b'][1][0]",
        "output['b'][1][1]"]


def test_every_differing_leaf_is_named_not_only_the_first():
    a = {"x": np.zeros(3), "y": [1.0, 2.0], "z": "same"}
    b = {"x": np.array([0.0, 1.0, 0.0]), "y": [1.0, 3.0], "z": "same"}
    found = diff_trees(a, b, labels=("cpu", "cuda"))
    assert [d.path for d in found] == ["output['x']", "output['y'][1]"]
    assert "first at index (1,): 0.0 (cpu) vs 1.0 (cuda)" in found[0].text
    assert found[1].values["first_values"] == ["2.0", "3.0"]


def test_leaves_both_trees_share_are_compared_after_a_structure_change():
    found = diff_trees({"a": np.zeros(2), "b": 1}, {"a": np.ones(2), "c": 1})
    assert [(d.path, d.what) for d in found] == [("output", "structure"), ("output['a']", "values")]


def test_a_copy_is_taken_at_once_so_later_writes_cannot_hide_a_difference():
    buf = np.zeros(3)
    leaves = flatten(buf)
    buf[:] = 1.0
    assert np.all(leaves[0].value == 0.0)


def test_uncomparable_objects_and_cycles_raise_naming_the_path():
    with pytest.raises(UncomparableOutputError, match=r"output\[0\] is a .*object"):
        flatten([object()])
    loop: list = []
    loop.append(loop)
    with pytest.raises(UncomparableOutputError, match="reference cycle"):
        flatten(loop)


# ---- numbers, NaN and Inf ------------------------------------------------------------------


def test_a_value_difference_gives_counts_errors_and_first_indices_with_both_values():
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    b = a.copy()
    b[0, 1] += 0.5
    b[2, 3] = 0.0
    d = diff_arrays(a, b, path="logits", labels=("baseline", "current"))
    assert d.values["n_diff"] == 2 and d.values["n_total"] == 12
    assert d.values["max_abs_diff"] == 11.0 and d.values["max_rel_diff"] == 1.0
    assert d.values["mismatches"] == [[[0, 1], "1.0", "1.5"], [[2, 3], "11.0", "0.0"]]
    assert "2 of 12 elements differ (16.7%)" in d.text
    assert "first at index (0, 1): 1.0 (baseline) vs 1.5 (current)" in d.text
    assert "next: [2, 3]: 11.0 vs 0.0" in d.text


def test_nan_and_inf_match_only_in_the_same_place_and_appearing_ones_are_counted():
    a = np.array([1.0, np.nan, np.inf, 4.0, 5.0])
    assert compare(a, a.copy()) is None
    b = np.array([1.0, np.nan, np.inf, np.nan, -np.inf])
    d = compare(a, b, atol=1e-3)
    assert d.values["n_diff"] == 2
    assert d.values["nonfinite"] == 2 and d.values["became_nonfinite"] == 2
    assert "2 differing elements are NaN/Inf on one side only (2 became NaN/Inf in run 2)" in d.text
    moved = compare(np.array([np.nan, 1.0]), np.array([1.0, np.nan]))
    assert moved.values["nonfinite"] == 2 and moved.values["became_nonfinite"] == 1
    assert compare(np.array([np.inf]), np.array([-np.inf]), atol=1.0) is not None


def test_tolerances_are_relative_to_the_reference_and_zero_tolerance_is_bitwise():
    assert compare(np.array([0.0]), np.array([-0.0])) is not None
    assert compare(np.array([0.0]), np.array([-0.0]), atol=1e-12) is None
    assert compare(np.array([100.0]), np.array([100.5]), rtol=0.01) is None
    assert compare(np.array([100.0]), np.array([102.0]), rtol=0.01) is not None
    d = compare(np.array([1.0]), np.array([1.0 + 1e-9]))
    assert "max abs diff 1e-09" in d.text


def test_shape_dtype_type_and_structure_changes_are_named():
    assert compare(np.zeros((2, 3)), np.zeros((3, 2))).what == "shape"
    d = compare(np.zeros(2, np.float32), np.zeros(2, np.float64))
    assert d.what == "dtype" and "dtype float32 (run 1) vs dtype float64 (run 2)" in d.text
    assert compare(np.zeros(2, np.float32), np.zeros(2, np.float64), check_dtype=False) is None
    assert compare(1, 1.0).what == "type"
    assert compare((1,), [1]).what == "type"
    assert compare([1], [1, 2]).what == "structure"
    assert compare(Pair(1, 2), Pair(1, 3)).path == "output.mask"


# ---- integers and bools ---------------------------------------------------------------------


def test_integer_arrays_compare_exactly_whatever_the_float_tolerance():
    ids = np.array([101, 120000, 7], dtype=np.int64)
    moved = np.array([101, 120001, 7], dtype=np.int64)
    d = compare(ids, moved, atol=1e-6, rtol=1e-5)
    assert d is not None and d.values["first_values"] == ["120000", "120001"]
    assert d.values["max_abs_diff"] == 1.0
    # A tolerance meant for the integers applies only when the caller says so.
    assert compare(ids, moved, atol=1e-6, rtol=1e-5, integer_tolerance=True) is None
    assert compare(ids, moved, atol=0.5, integer_tolerance=True) is not None


def test_bool_arrays_and_python_ints_compare_exactly():
    assert compare(np.array([True, False]), np.array([True, True]), atol=1.0) is not None
    assert compare(np.array([True, False]), np.array([True, False])) is None
    assert compare({"n": 120000}, {"n": 120001}, atol=10.0, rtol=0.1) is not None
    assert compare({"n": 2**70}, {"n": 2**70}) is None
    assert compare({"n": 2**70}, {"n": 2**70 + 1}) is not None


def test_strings_and_other_atoms_compare_by_equality():
    assert compare(["a", None, b"x"], ["a", None, b"x"]) is None
    assert compare(np.array(["cat", "dog"]), np.array(["cat", "cow"])).values["n_diff"] == 1


def test_summarize_shows_the_first_differences_in_full_and_counts_the_rest():
    found = diff_trees([np.zeros(1)] * 8, [np.ones(1)] * 8)
    text = summarize(found, limit=2)
    assert text.count("elements differ") == 2
    assert "... and 6 more differing leaves: output[2], output[3]" in text


# ---- torch tensors on the CPU -----------------------------------------------------------


def test_tensors_compare_like_arrays_with_their_torch_dtype_named():
    torch = pytest.importorskip("torch")
    a = {"h": torch.ones(2, 2, requires_grad=True) * 2, "ids": torch.tensor([120000])}
    b = {"h": torch.full((2, 2), 2.5), "ids": torch.tensor([120001])}
    found = diff_trees(a, b, atol=1e-5, rtol=1.3e-6)
    assert [d.path for d in found] == ["output['h']", "output['ids']"]
    assert "torch.Tensor of shape (2, 2), dtype float32" in found[0].text
    assert found[1].values["first_values"] == ["120000", "120001"]
    assert compare(torch.ones(2), np.ones(2, np.float32)).what == "type"
    assert compare(torch.ones(2, dtype=torch.bfloat16), torch.ones(2, dtype=torch.bfloat16)) is None
    assert compare(torch.ones(3, dtype=torch.bfloat16),
                   torch.tensor([1.0, 1.0, 1.01], dtype=torch.bfloat16)) is not None
    sparse = torch.eye(2).to_sparse()
    assert compare(sparse, torch.eye(2).to_sparse()) is None


def test_meta_and_nested_tensors_are_refused_naming_the_path():
    torch = pytest.importorskip("torch")
    with pytest.raises(UncomparableOutputError, match=r"output\['w'\] is a tensor on the meta device"):
        flatten({"w": torch.empty(2, device="meta")})
    nested = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)], layout=torch.jagged)
    with pytest.raises(UncomparableOutputError, match="is a nested tensor"):
        flatten([nested])


# ---- numpy only -----------------------------------------------------------------------------


def test_the_core_works_with_numpy_only(pytester, numpy_only):
    pytester.makepyfile(test_np="""
        import sys
        import numpy as np
        from pytest_mlcheck.compare import compare, diff_trees

        def test_numpy_only():
            assert sys.modules["torch"] is None
            d = compare({"ids": np.array([120000])}, {"ids": np.array([120001])}, atol=1e-3)
            assert d.path == "output['ids']" and d.values["n_diff"] == 1
            assert diff_trees([np.nan, 1.0], [np.nan, 1.0]) == []
    """)
    numpy_only().assert_outcomes(passed=1)
