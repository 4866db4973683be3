"""The numpy/torch adapter (pytest_mlcheck/arrays.py): tensors of every layout either
convert correctly or fail with an error naming the tensor and the reason (issue 12,
item 14: meta, sparse and nested tensors gave raw torch errors)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from pytest_mlcheck.arrays import TensorConversionError, as_scalar, to_numpy

# Imported once here, outside pytester's sys.modules snapshots (see test_metric_regression).
import pytest_mlcheck.baselines  # noqa: F401
import pytest_mlcheck.environment  # noqa: F401
import pytest_mlcheck.metrics  # noqa: F401
import tomlkit  # noqa: F401

try:  # in-process pytester runs must find torch already imported: it cannot load twice
    import torch  # noqa: F401
except ImportError:  # pragma: no cover
    pass


@pytest.fixture
def torch():
    mod = pytest.importorskip("torch")
    with warnings.catch_warnings():  # "sparse CSR support is in beta", "nested: prototype"
        warnings.simplefilter("ignore", UserWarning)
        yield mod


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", "-W", "ignore::UserWarning", *args)


# ---- numpy alone ------------------------------------------------------------------------


def test_numpy_arrays_pass_through_and_other_values_become_arrays():
    a = np.arange(3.0)
    assert to_numpy(a) is a
    assert to_numpy([1, 2]).tolist() == [1, 2]
    assert as_scalar(np.float32(0.5), "metric 'm'") == 0.5
    with pytest.raises(TypeError, match=r"metric 'm': expected a scalar, got an array of shape \(2,\)"):
        as_scalar(np.zeros(2), "metric 'm'")


# ---- tensors that convert -----------------------------------------------------------------


@pytest.mark.parametrize("layout", ["coo", "csr", "csc", "bsr", "bsc"])
def test_sparse_tensors_become_their_dense_values(torch, layout):
    dense = torch.tensor([[1.0, 0.0, 0.0, 2.5], [0.0, 0.0, -3.0, 0.0],
                          [0.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 5.0]])
    sparse = {"coo": dense.to_sparse, "csr": dense.to_sparse_csr, "csc": dense.to_sparse_csc,
              "bsr": lambda: dense.to_sparse_bsr((2, 2)),
              "bsc": lambda: dense.to_sparse_bsc((2, 2))}[layout]()
    assert sparse.layout != torch.strided
    got = to_numpy(sparse, "array 'adjacency'")
    assert got.dtype == np.float32 and np.array_equal(got, dense.numpy())


def test_uncoalesced_coo_sums_duplicates_like_torch(torch):
    coo = torch.sparse_coo_tensor([[0, 0, 1], [1, 1, 0]], [1.0, 2.0, 5.0], (2, 2))
    assert np.array_equal(to_numpy(coo), [[0.0, 3.0], [5.0, 0.0]])


def test_tensors_that_require_grad_and_odd_dtypes_convert(torch):
    w = torch.ones(3, requires_grad=True)
    assert np.array_equal(to_numpy(w * 2), [2.0, 2.0, 2.0])
    assert np.array_equal(to_numpy(torch.nn.Parameter(torch.ones(2))), [1.0, 1.0])
    assert np.array_equal(to_numpy(torch.eye(2).to_sparse().requires_grad_()), np.eye(2))
    assert to_numpy(torch.ones(2, dtype=torch.bfloat16)).dtype == np.float32
    assert to_numpy(torch.full((2,), 0.5).to(torch.float8_e4m3fn)).tolist() == [0.5, 0.5]
    assert to_numpy(torch.ones(2, dtype=torch.complex32)).dtype == np.complex64
    neg = torch.tensor([1 + 2j], dtype=torch.complex64).conj().imag  # a negative-bit view
    assert to_numpy(neg).tolist() == [-2.0]
    q = torch.quantize_per_tensor(torch.tensor([0.5, 1.0]), 0.5, 0, torch.qint8)
    assert to_numpy(q).tolist() == [0.5, 1.0]
    assert np.array_equal(to_numpy(torch.ones(2, 2).to_mkldnn()), np.ones((2, 2)))

    class Tagged(torch.Tensor):
        pass

    assert to_numpy(torch.arange(3).as_subclass(Tagged)).tolist() == [0, 1, 2]
    assert as_scalar(torch.tensor(0.25, requires_grad=True), "metric 'loss'") == 0.25
    assert as_scalar(torch.tensor(3.0).to_sparse(), "metric 'n'") == 3.0


# ---- tensors that cannot: a clear error naming the tensor ------------------------------------


def test_meta_tensor_is_a_clear_error_naming_it(torch):
    with pytest.raises(TensorConversionError,
                       match=r"^array 'logits' is a tensor on the meta device \(shape \(2, 3\), "
                             r"dtype float32, layout strided, device meta\), which holds no "
                             r"values; materialise it"):
        to_numpy(torch.zeros(2, 3, device="meta"), "array 'logits'")
    with pytest.raises(TypeError, match=r"^metric 'loss' is a tensor on the meta device"):
        as_scalar(torch.zeros((), device="meta"), "metric 'loss'")


@pytest.mark.parametrize("layout", ["strided", "jagged"])
def test_nested_tensor_is_a_clear_error_naming_it(torch, layout):
    nested = torch.nested.nested_tensor([torch.zeros(2), torch.zeros(3)],
                                        layout=getattr(torch, layout))
    with pytest.raises(TensorConversionError,
                       match=r"^array 'tokens' is a nested \(ragged\) tensor \(dtype float32, "
                             rf"layout {layout}, device cpu\), whose parts have no single "
                             r"shape; pass its parts \(`t.unbind\(\)`\)"):
        to_numpy(nested, "array 'tokens'")
    with pytest.raises(TypeError, match=r"^metric 'm': expected a scalar, got a nested tensor$"):
        as_scalar(nested, "metric 'm'")


def test_a_tensor_numpy_cannot_read_is_a_clear_error_not_a_raw_torch_one(torch):
    # uint1..uint7 have no numpy form and no conversion here.
    odd = getattr(torch, "uint4", None)
    if odd is None:  # pragma: no cover - older torch
        pytest.skip("this torch has no uint4 dtype")
    t = torch.empty(2, dtype=odd)
    with pytest.raises(TensorConversionError,
                       match=r"^array 'codes' \(shape \(2,\), dtype uint4, layout strided, "
                             r"device cpu\) cannot be converted to a numpy array: "):
        to_numpy(t, "array 'codes'")


# ---- through the fixture: check_array names the array ---------------------------------------


def test_check_array_records_a_sparse_tensor_and_names_a_meta_or_nested_one(pytester, torch):
    pytester.makepyfile(test_model="""
        import os
        import torch
        def test_sparse(metric_regression):
            dense = torch.eye(3, requires_grad=True) * 2
            if os.environ.get("CHANGE"):
                dense = dense + torch.eye(3)
            metric_regression.check_array("adjacency", dense.to_sparse_csr())
        def test_meta(metric_regression):
            metric_regression.check_array("logits", torch.zeros(2, device="meta"))
        def test_nested(metric_regression):
            t = torch.nested.nested_tensor([torch.zeros(2), torch.zeros(3)])
            metric_regression.check_array("ragged", t)
    """)
    result = run(pytester, "--mlcheck-update")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines_random([
        "*TensorConversionError: array 'logits' is a tensor on the meta device (shape (2,), *",
        "*TensorConversionError: array 'ragged' is a nested (ragged) tensor*"])
    for raw in ("NotImplementedError", "Cannot copy out of meta tensor",
                "can't convert SparseCsr", "NestedTensorImpl doesn't support sizes"):
        assert raw not in result.stdout.str()
    run(pytester, "-k", "sparse").assert_outcomes(passed=1)
    pytester._monkeypatch.setenv("CHANGE", "1")
    result = run(pytester, "-k", "sparse")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*3 of 9 elements differ*"])
