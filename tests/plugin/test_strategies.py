"""Hypothesis strategies: arrays, tensors and shaped draw shapes that satisfy their specs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings

from pytest_mlcheck import Spec, assert_shape
from pytest_mlcheck.strategies import arrays, shaped, tensors

# find() is deterministic in what it returns (the minimal example); under a loaded
# machine its health checks are not.
_FIND = settings(database=None, suppress_health_check=list(HealthCheck))


def minimal(strategy, condition=lambda _: True):
    """Return hypothesis' minimal example of ``strategy`` satisfying ``condition``.

    Args:
        strategy: The strategy.
        condition: What the example must satisfy.

    Returns:
        The shrunk example.
    """
    return find(strategy, condition, settings=_FIND)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays("N N"))
def test_a_name_used_twice_is_drawn_once(m):
    assert m.ndim == 2 and m.shape[0] == m.shape[1]
    assert m.dtype == np.float32
    assert np.isfinite(m).all()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays("*batch 3 _", dims={"batch": (2,)}, dtype="int16"))
def test_dims_literals_and_wildcards(a):
    assert a.shape[:2] == (2, 3) and a.ndim == 3
    assert a.dtype == np.int16


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shaped(x="B T C", mask=Spec("B T", dtype="bool"), ids=Spec("B", dtype="int64", low=3, high=7)))
def test_shaped_shares_dimensions_across_arrays(batch):
    dims: dict = {}
    assert_shape(batch["x"], "B T C", dims)
    assert_shape(batch["mask"], "B T", dims, dtype="bool")
    assert_shape(batch["ids"], "B", dims, dtype="int64")
    assert ((batch["ids"] >= 3) & (batch["ids"] < 7)).all()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays(Spec("B C", dtype="float16", low=-1.0, high=1.0)))
def test_spec_ranges_bound_the_values(a):
    assert a.dtype == np.float16
    assert (a >= -1).all() and (a < 1).all()


def test_shapes_shrink_towards_small():
    assert minimal(arrays("B T C"), lambda a: a.shape[0] >= 3).shape == (3, 1, 1)
    assert minimal(arrays("*batch C")).shape == (1,)
    assert minimal(arrays("... C"), lambda a: a.ndim > 2).shape == (1, 1, 1)
    drawn = minimal(shaped(x="B T", y="T"), lambda d: d["y"].size >= 2)
    assert drawn["x"].shape == (1, 2) and drawn["y"].shape == (2,)


def test_min_and_max_side():
    assert minimal(arrays("B", min_side=0)).shape == (0,)
    with pytest.raises(ValueError, match="must not exceed max_side"):
        arrays("B", min_side=3, max_side=2)


def test_tensors_are_torch_tensors():
    torch = pytest.importorskip("torch")
    t = minimal(tensors("B C", dtype="bfloat16", dims={"C": 4}), lambda t: t.shape[0] > 1)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.bfloat16 and tuple(t.shape) == (2, 4)
    ids = minimal(tensors(Spec("B T", dtype=torch.int64, low=0, high=5)))
    assert ids.dtype == torch.int64


@pytest.mark.parametrize("make, error", [
    (lambda: arrays("B T!"), "bad shape spec"),
    (lambda: arrays("B", dtype="flaot"), "unknown dtype"),
    (lambda: arrays("B", dtype="bfloat16"), "numpy has no bfloat16"),
    (lambda: arrays("B *B"), "used both as one dimension"),
    (lambda: arrays("B", dims={"B": -1}), "non-negative int"),
    (lambda: shaped(), "at least one keyword"),
    (lambda: shaped(x="B", y="*B"), "used both as one dimension"),
])
def test_bad_arguments_fail_at_construction(make, error):
    with pytest.raises(ValueError, match=error):
        make()


def test_elements_must_be_a_strategy():
    with pytest.raises(TypeError, match="elements must be a hypothesis strategy"):
        arrays("B", elements=[1, 2])


def test_plugin_start_does_not_import_hypothesis_strategies_and_tensors_need_torch(
        pytester, numpy_only):
    pytester.makepyfile(test_np="""
        import sys
        import pytest

        def test_not_imported_at_start():
            assert "pytest_mlcheck.strategies" not in sys.modules

        def test_tensors_say_torch_is_missing():
            from pytest_mlcheck.strategies import arrays, tensors
            with pytest.raises(ImportError, match=r"tensors\\(\\) needs torch"):
                tensors("B C")
            arrays("B C")
    """)
    numpy_only("-q").assert_outcomes(passed=2)
