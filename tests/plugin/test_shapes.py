"""Shape specs, assert_shape and Spec: grammar, bindings with provenance, bad input."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_mlcheck import Spec, assert_shape
from pytest_mlcheck import report

# ---- grammar -----------------------------------------------------------------


@pytest.mark.parametrize("spec, shape, bindings", [
    ("B 3 H W", (2, 3, 4, 5), {"B": 2, "H": 4, "W": 5}),
    ("B T C", (4, 3, 32), {"B": 4, "T": 3, "C": 32}),
    ("*batch 10", (2, 3, 10), {"batch": (2, 3)}),
    ("*batch 10", (10,), {"batch": ()}),
    ("", (), {}),
    ("_ _ C", (7, 8, 9), {"C": 9}),
    ("... C", (1, 2, 3, 4), {"C": 4}),
    ("B ...", (5,), {"B": 5}),
    ("N N", (3, 3), {"N": 3}),
    ("batch_size seq_len", (2, 6), {"batch_size": 2, "seq_len": 6}),
])
def test_matching_shapes_return_their_bindings(spec, shape, bindings):
    assert assert_shape(np.zeros(shape), spec) == bindings


@pytest.mark.parametrize("spec, shape, reason", [
    ("B T C", (4, 3), "rank 2 but the spec has 3 dims"),
    ("", (1,), "rank 1 but the spec has a scalar"),
    ("B 3 H W", (2, 4, 4, 5), "dim 1 is 4 but the spec says 3"),
    ("N N", (3, 4), "dim 1 is 4 but N=3 (bound here)"),
    ("*b C C", (2, 5, 6), "dim 2 is 6 but C=5 (bound here)"),
    ("B C ...", (2,), "rank 1 but the spec needs at least 2 dims"),
])
def test_mismatches_name_the_failing_dimension(spec, shape, reason):
    with pytest.raises(AssertionError) as info:
        assert_shape(np.zeros(shape), spec)
    assert f"shape {shape} does not match {spec!r}: {reason}" in str(info.value)


@pytest.mark.parametrize("spec, token, col", [
    ("B T! C", "T!", 2),
    ("B, T", "B,", 0),
    ("B (T)", "(T)", 2),
    ("B -1", "-1", 2),
    ("B *", "*", 2),
    ("*_ C", "*_", 0),
    ("*a C *b", "*b", 5),
    ("... *rest", "*rest", 4),
    ("B 3.5", "3.5", 2),
])
def test_bad_spec_syntax_points_at_the_token(spec, token, col):
    with pytest.raises(ValueError) as info:
        assert_shape(np.zeros(()), spec)
    text = str(info.value)
    assert f"bad shape spec {spec!r}" in text
    assert repr(token) in text
    lines = text.splitlines()
    # The caret line sits under the spec line, aligned with the offending token.
    spec_line, caret_line = lines[1], lines[2]
    start = spec_line.index(repr(spec)) + 1 + col
    assert caret_line[start:start + len(token)] == "^" * len(token)
    assert "grammar:" in text


def test_spec_must_be_a_string():
    with pytest.raises(TypeError, match="must be a string"):
        assert_shape(np.zeros(3), ["B"])


# ---- bindings and provenance -------------------------------------------------------


def test_consecutive_calls_share_bindings_and_name_who_bound_them():
    dims: dict = {}
    assert_shape(np.zeros((4, 3, 32)), "B T C", dims, name="x")
    assert dims == {"B": 4, "T": 3, "C": 32}
    with pytest.raises(AssertionError) as info:
        assert_shape(np.zeros((4, 3, 30)), "B T C", dims)
    text = str(info.value)
    assert text.startswith("shape (4, 3, 30) does not match 'B T C': dim 2 is 30 but C=32 "
                           "(bound by 'x')")
    assert "bindings: B=4 (bound by 'x'), T=3 (bound by 'x'), C=32 (bound by 'x')" in text


def test_provenance_without_a_name_is_the_spec_that_bound_it():
    dims: dict = {}
    assert_shape(np.zeros((4, 32)), "B C", dims)
    with pytest.raises(AssertionError, match=r"C=32 \(bound by spec 'B C'\)"):
        assert_shape(np.zeros((4, 16)), "B C", dims)


def test_given_dims_are_marked_as_given():
    with pytest.raises(AssertionError, match=r"dim 1 is 16 but C=32 \(given in dims\)"):
        assert_shape(np.zeros((4, 16)), "B C", {"C": 32})


def test_a_failed_match_does_not_update_dims():
    dims = {"C": 32}
    with pytest.raises(AssertionError):
        assert_shape(np.zeros((4, 7, 16)), "B T C", dims)
    assert dims == {"C": 32}


def test_star_binding_is_shared_as_a_tuple():
    dims: dict = {}
    assert_shape(np.zeros((2, 3, 10)), "*batch 10", dims)
    assert dims == {"batch": (2, 3)}
    assert_shape(np.zeros((2, 3)), "*batch", dims)
    with pytest.raises(AssertionError, match=r"dims 0..1 are \(2, 4\) but \*batch=\(2, 3\)"):
        assert_shape(np.zeros((2, 4, 5)), "*batch C", dims)
    with pytest.raises(AssertionError, match="bound to several dims"):
        assert_shape(np.zeros((2,)), "batch", dims)


def test_size_one_extra_dim_suggests_squeeze():
    with pytest.raises(AssertionError, match=r"\(B, 1\) - \(B,\) broadcasts silently to \(B, B\)"):
        assert_shape(np.zeros((8, 1)), "B")


def test_swapped_axes_hint_names_the_other_dim():
    dims: dict = {}
    assert_shape(np.zeros((2, 5, 3)), "B T C", dims)
    with pytest.raises(AssertionError, match="has the size of T: axes may be swapped"):
        assert_shape(np.zeros((5, 2, 3)), "B T C", dims)


def test_dtype_is_checked_when_asked():
    assert_shape(np.zeros(3, dtype=np.float32), "N", dtype="float32")
    with pytest.raises(AssertionError, match="dtype float64 does not match the expected float32"):
        assert_shape(np.zeros(3), "N", dtype=np.float32)
    with pytest.raises(AssertionError, match="dtype int64 does not match"):
        assert_shape(np.zeros(3, dtype=np.int64), Spec("N"))


def test_unknown_dtype_is_a_value_error():
    with pytest.raises(ValueError, match="unknown dtype 'flaot32'"):
        assert_shape(np.zeros(3), "N", dtype="flaot32")


def test_non_arrays_are_rejected_by_name():
    with pytest.raises(TypeError, match="'logits' must be a numpy array or a torch tensor"):
        assert_shape([1, 2, 3], "N", name="logits")


@pytest.mark.parametrize("dims, error", [
    ({"B": -1}, "non-negative int"),
    ({"B": 2.0}, "non-negative int"),
    ({"B": True}, "non-negative int"),
    ({"1B": 2}, "not a dimension name"),
    ({"b": (1, -2)}, "tuple of non-negative ints"),
])
def test_bad_dims_are_rejected(dims, error):
    with pytest.raises(ValueError, match=error):
        assert_shape(np.zeros((2,)), "B", dims)


def test_tensors_are_checked_too():
    torch = pytest.importorskip("torch")
    dims = assert_shape(torch.zeros(2, 3, dtype=torch.bfloat16), "B C", dtype=torch.bfloat16)
    assert dims == {"B": 2, "C": 3}
    with pytest.raises(AssertionError, match=r"dim 0 is 5 but B=2 \(bound by spec .B C.\)"):
        assert_shape(torch.zeros(5, 3), "B C", dims)


# ---- Spec ----------------------------------------------------------------------------


def test_spec_normalises_dtypes():
    assert Spec("B T", dtype=np.int64).dtype == "int64"
    assert Spec("B", dtype="float").dtype == "float64"
    assert Spec("B", dtype="bfloat16").dtype == "bfloat16"


@pytest.mark.parametrize("kwargs, error", [
    ({"shape": "B T!", "dtype": "float32"}, "bad shape spec"),
    ({"shape": "B", "dtype": "float33"}, "unknown dtype 'float33'"),
    ({"shape": "B", "dtype": "str"}, "not numeric"),
    ({"shape": "B", "dtype": "int64", "low": 5, "high": 5}, r"low \(5\) must be below high"),
    ({"shape": "B", "low": 1.0, "high": 0.0}, "must be below high"),
    ({"shape": "B", "dtype": "int64", "low": 0.5, "high": 3}, "must be an integer"),
    ({"shape": "B", "dtype": "bool", "low": 0, "high": 1}, "takes no low/high"),
    ({"shape": "B", "low": float("nan")}, "must be a finite number"),
    ({"shape": "B", "dtype": "int8", "high": 1000}, "does not fit dtype int8"),
    ({"shape": "B", "dtype": "uint8", "low": -1, "high": 3}, "does not fit dtype uint8"),
])
def test_bad_specs_are_value_errors(kwargs, error):
    with pytest.raises(ValueError, match=error):
        Spec(**kwargs)


# ---- property: assert_shape accepts exactly the matching shapes ------------------------


def _reference_match(tokens: list[str], shape: tuple, bound: dict) -> bool:
    """A brute-force matcher written independently of the implementation."""
    if not tokens:
        return not shape
    tok, rest = tokens[0], tokens[1:]
    if tok == "...":
        return any(_reference_match(rest, shape[k:], bound) for k in range(len(shape) + 1))
    if tok.startswith("*"):
        name = tok[1:]
        for k in range(len(shape) + 1):
            seg = tuple(shape[:k])
            if name in bound and bound[name] != seg:
                continue
            if _reference_match(rest, shape[k:], {**bound, name: seg}):
                return True
        return False
    if not shape:
        return False
    if tok == "_":
        return _reference_match(rest, shape[1:], bound)
    if tok.isdigit():
        return int(tok) == shape[0] and _reference_match(rest, shape[1:], bound)
    if tok in bound and bound[tok] != shape[0]:
        return False
    return _reference_match(rest, shape[1:], {**bound, tok: shape[0]})


_fixed_token = st.one_of(st.sampled_from(["A", "B", "C", "_"]), st.integers(0, 3).map(str))


@st.composite
def _spec_and_shape(draw):
    tokens = draw(st.lists(_fixed_token, max_size=4))
    if draw(st.booleans()):
        tokens.insert(draw(st.integers(0, len(tokens))), draw(st.sampled_from(["...", "*S"])))
    bound = draw(st.fixed_dictionaries({}, optional={
        "A": st.integers(0, 3), "B": st.integers(0, 3), "S": st.lists(
            st.integers(0, 3), max_size=2).map(tuple)}))
    if draw(st.booleans()):
        # Build a shape that matches, so acceptance is exercised, not only rejection.
        sizes = dict(bound)
        shape: list[int] = []
        for tok in tokens:
            if tok == "...":
                shape += draw(st.lists(st.integers(0, 3), max_size=2))
            elif tok == "*S":
                sizes.setdefault("S", draw(st.lists(st.integers(0, 3), max_size=2).map(tuple)))
                shape += list(sizes["S"])
            elif tok == "_":
                shape.append(draw(st.integers(0, 3)))
            elif tok.isdigit():
                shape.append(int(tok))
            else:
                shape.append(sizes.setdefault(tok, draw(st.integers(0, 3))))
        shape_t = tuple(shape)
    else:
        shape_t = tuple(draw(st.lists(st.integers(0, 3), max_size=5)))
    return tokens, bound, shape_t


@contextlib.contextmanager
def _unreported():
    """Keep hundreds of expected rejections out of the session report."""
    nodeid, sink = report.current_nodeid(), report._active.sink
    report.deactivate()
    try:
        yield
    finally:
        if sink is not None:
            report.activate(nodeid, sink)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_spec_and_shape())
def test_assert_shape_accepts_exactly_the_matching_shapes(case):
    tokens, bound, shape = case
    spec = " ".join(tokens)
    expected = _reference_match(tokens, shape, bound)
    dims = dict(bound)
    try:
        with _unreported():
            result = assert_shape(np.zeros(shape), spec, dims)
    except AssertionError:
        assert not expected, f"{shape} should match {spec!r} with {bound}"
        assert dims == bound
    else:
        assert expected, f"{shape} should not match {spec!r} with {bound}"
        assert result == dims
        # Every binding reproduces the shape it came from.
        assert _reference_match(tokens, shape, dims)


# ---- numpy only --------------------------------------------------------------------------


def test_shapes_work_without_torch(pytester, numpy_only):
    pytester.makepyfile(test_np="""
        import sys
        import numpy as np
        import pytest
        from pytest_mlcheck import assert_shape, Spec, check_shapes, assert_batch_independent
        from pytest_mlcheck import assert_causal, assert_batch_invariant

        def test_torch_is_blocked():
            with pytest.raises(ImportError):
                import torch  # noqa: F401

        def test_assert_shape():
            dims = {}
            assert assert_shape(np.zeros((2, 3)), "B C", dims) == {"B": 2, "C": 3}
            with pytest.raises(AssertionError, match="C=3"):
                assert_shape(np.zeros((2, 4)), "B C", dims)

        def test_check_and_dependence_checks():
            check_shapes(lambda x: x.sum(-1), "B C", "B")
            with pytest.raises(AssertionError, match="smallest failing sizes"):
                check_shapes(lambda x: x.sum(-1, keepdims=True), "B C", "B")
            assert_batch_independent(lambda x: np.tanh(x), "B C")
            with pytest.raises(AssertionError, match="output row"):
                assert_batch_independent(lambda x: x - x.mean(0), "B C")
            assert_causal(lambda x: np.cumsum(x, axis=1), "B T")
            with pytest.raises(AssertionError, match="sees the future|depends on input at"):
                assert_causal(lambda x: np.cumsum(x[:, ::-1], axis=1)[:, ::-1], "B T")
            assert_batch_invariant(lambda x: x * 2, "B C")
            with pytest.raises(AssertionError, match="batch_invariance failed"):
                assert_batch_invariant(lambda x: x - x.mean(0), "B C")

        def test_torch_backend_says_torch_is_missing():
            with pytest.raises(ImportError, match="needs torch"):
                check_shapes(lambda x: x, "B", "B", backend="torch")
            assert "torch" not in sys.modules or sys.modules["torch"] is None
    """)
    result = numpy_only("-q")
    result.assert_outcomes(passed=4)
