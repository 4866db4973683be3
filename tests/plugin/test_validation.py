"""Argument checks (pytest_mlcheck.validation): one answer and one message per mistake."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from pytest_mlcheck import (
    assert_batch_invariant,
    assert_deterministic,
    assert_no_label_leakage,
    assert_seed_invariant,
    seed_everything,
)
from pytest_mlcheck import validation as v


@pytest.mark.parametrize("value", [1, 0.5, np.float32(1e-6), np.float64(2.0), np.int64(3),
                                   np.int8(0)])
def test_numbers_accept_python_and_numpy_scalars(value):
    assert v.tolerance(value) == float(value)


@pytest.mark.parametrize("value, error, text", [
    (True, TypeError, "atol must be a finite number >= 0, got bool (True)"),
    (np.bool_(False), TypeError, "got bool"),  # numpy 2: bool (np.False_); numpy 1: bool_ (False)
    ("1e-3", TypeError, "got str ('1e-3')"),
    (None, TypeError, "got NoneType (None)"),
    (-1e-9, ValueError, "atol must be a finite number >= 0, got -1e-09"),
    (float("nan"), ValueError, "got nan"),
    (float("inf"), ValueError, "got inf"),
])
def test_tolerances_reject_bools_strings_negatives_and_non_finite(value, error, text):
    with pytest.raises(error) as info:
        v.tolerance(value, check="my_check")
    assert str(info.value).startswith("my_check: ") and text in str(info.value)


def test_ranges_and_hints_are_in_the_message():
    assert v.number(0.5, "p", low=0, high=1, low_open=True, high_open=True) == 0.5
    with pytest.raises(ValueError, match=r"p must be a finite number in \(0, 1\), got 1"):
        v.number(1, "p", low=0, high=1, low_open=True, high_open=True)
    with pytest.raises(ValueError, match=r"runs must be an int >= 2, got 1; one run has"):
        v.integer(1, "runs", low=2, hint="one run has nothing to compare with")
    with pytest.raises(TypeError, match=r"runs must be an int >= 2, got float \(2.0\)"):
        v.integer(2.0, "runs", low=2)
    assert v.integer(np.int32(7), "n") == 7 and type(v.integer(np.int32(7), "n")) is int


def test_seeds_and_sequences_of_ints():
    assert v.seed(np.uint32(5)) == 5
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*32\), got 4294967296"):
        v.seed(2**32)
    assert v.seeds(range(3)) == [0, 1, 2]
    with pytest.raises(ValueError, match=r"seeds must all differ, got \(1, 1\)"):
        v.seeds([1, 1])
    with pytest.raises(TypeError, match=r"seeds\[1\] must be an int, got str"):
        v.seeds([1, "2"])
    with pytest.raises(TypeError, match="seeds must be a sequence of ints such as"):
        v.seeds("01")
    with pytest.raises(ValueError, match="seeds needs at least 3 different seeds"):
        v.seeds([0, 1], minimum=3)
    with pytest.raises(TypeError, match=r"sizes\[0\] must be an int >= 1, got bool"):
        v.integers([True], "sizes", low=1)


def test_names_callables_and_choices():
    assert v.names("acc", "higher") == ("acc",)
    assert v.names(["acc", "f1*"], "higher") == ("acc", "f1*")
    assert v.names(None, "higher") == ()
    with pytest.raises(TypeError, match=r"higher must hold metric names \(str\), got int"):
        v.names(["acc", 3], "higher", what="metric names")
    with pytest.raises(ValueError, match="higher holds an empty string"):
        v.names([""], "higher")
    with pytest.raises(TypeError, match=r"fn must be a callable \(x\) -> y, got int \(3\); "
                                        "pass the function itself, not its result"):
        v.function(3, signature="(x) -> y")
    assert v.choice("auto", "method", ("auto", "perturbation")) == "auto"
    with pytest.raises(ValueError, match="method must be one of 'auto', 'perturbation', got 'x'"):
        v.choice("x", "method", ("auto", "perturbation"))
    with pytest.raises(ValueError):
        v.choice(True, "flag", (1, 0))  # True is not the option 1


def test_fn_name_is_one_name_for_every_kind_of_callable():
    def outer():
        def inner(x):
            return x
        return inner

    class Model:
        def predict(self, x):
            return x

    assert v.fn_name(outer()) == "inner"
    assert v.fn_name(Model().predict) == "Model.predict"
    assert v.fn_name(functools.partial(len)) == "partial(len)"
    assert v.fn_name(lambda x: x).endswith("<locals>.<lambda>")
    assert v.fn_name(np.tanh) == "tanh"


def test_format_value_is_the_one_value_formatter():
    assert v.format_value(np.float32(0.5)) == "0.5"
    assert v.format_value(1 / 3) == "0.333333333"
    assert v.format_value(1 / 3, digits=3) == "0.333"
    assert v.format_value(None) == "-" and v.format_value(np.int64(7)) == "7"
    assert v.format_number(0.123456) == "0.123" and v.format_number(None) == "-"


# ---- the same mistake gets the same answer in every family ---------------------------------


@pytest.mark.parametrize("call", [
    lambda tol: assert_deterministic(len, [1], atol=tol),
    lambda tol: assert_seed_invariant(len, [1], rtol=tol),
    lambda tol: assert_batch_invariant(lambda x: x, "B C", atol=tol),
    lambda tol: assert_no_label_leakage(np.zeros((4, 2)), np.array([0, 1, 0, 1]), threshold=tol),
])
def test_a_bool_tolerance_is_the_same_type_error_everywhere(call):
    with pytest.raises(TypeError, match=r"must be a finite number .*got bool \(True\)"):
        call(True)


@pytest.mark.parametrize("call", [
    lambda tol: assert_deterministic(len, [1], atol=tol),
    lambda tol: assert_batch_invariant(lambda x: x, "B C", atol=tol),
])
def test_a_numpy_scalar_tolerance_is_accepted_everywhere(call):
    call(np.float32(1e-6))


def test_seeds_are_checked_the_same_way_by_seeding_and_determinism():
    for call in (lambda: seed_everything(-1), lambda: assert_deterministic(len, [1], seed=-1)):
        with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*32\), got -1"):
            call()
