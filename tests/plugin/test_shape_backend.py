"""Backend inference of the shape checks: numpy or torch inputs, from what ``fn`` reaches.

Seeded fault: a plain function wrapping a torch model used to get numpy inputs and
die in ``linear()`` with a TypeError that never mentioned ``backend=``. Each way a
function can reach a model (closure, bound method, partial, module global) now gets
torch inputs; where nothing is visible, the TypeError says which backend was used and
how to choose the other.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from pytest_mlcheck import assert_batch_invariant, check_shapes
from pytest_mlcheck.shapes.generation import infer_backend

torch = pytest.importorskip("torch")

MODEL = torch.nn.Linear(8, 3).eval()


def _global_predict(x):
    return MODEL(x)


# A registry hides the model from inference: a dict lookup is not an nn.Module.
_REGISTRY = {"model": torch.nn.Linear(8, 3).eval()}


def _registry_predict(x):
    return _REGISTRY["model"](x)


class Predictor:
    def __init__(self) -> None:
        self.model = torch.nn.Linear(8, 3).eval()

    def predict(self, x):
        return self.model(x)


def _run(model, x):
    return model(x)


def _closure_predict():
    model = torch.nn.Linear(8, 3).eval()

    def predict(x):
        return model(x)

    return predict


@pytest.mark.parametrize("make, reason", [
    (_closure_predict, "its closure variable 'model' is the nn.Module Linear"),
    (lambda: Predictor().predict, "the attribute Predictor.model is the nn.Module Linear"),
    (lambda: functools.partial(_run, torch.nn.Linear(8, 3).eval()),
     "the partial's argument 0 is the nn.Module Linear"),
    (lambda: _global_predict, "the global 'MODEL' is the nn.Module Linear"),
])
def test_a_function_wrapping_a_model_gets_torch_inputs(make, reason):
    fn = make()
    choice = infer_backend(fn)
    assert choice.name == "torch" and reason in choice.reason
    assert_batch_invariant(fn, "B 8")
    check_shapes(fn, "B 8", "B 3")


def test_numpy_functions_keep_numpy_inputs():
    choice = infer_backend(lambda x: np.tanh(x))
    assert choice.name == "numpy" and choice.sure and "the global 'np' is numpy" in choice.reason
    assert_batch_invariant(lambda x: np.tanh(x), "B 8")


def test_an_invisible_model_fails_naming_the_backend_and_the_fix():
    # Seeded fault: inference cannot see the model, so numpy inputs reach linear().
    choice = infer_backend(_registry_predict)
    assert choice.name == "numpy" and not choice.sure
    with pytest.raises(TypeError) as info:
        assert_batch_invariant(_registry_predict, "B 8")
    text = str(info.value) + "".join(getattr(info.value, "__notes__", []))
    assert "the generated inputs were numpy arrays (backend 'numpy'" in text
    assert "pass backend='torch'" in text
    assert info.value.mlcheck_backend == "numpy"
    # The fixed twin: choosing the backend makes the same check pass.
    assert_batch_invariant(_registry_predict, "B 8", backend="torch")


def test_a_given_backend_is_not_second_guessed_in_the_message():
    with pytest.raises(TypeError) as info:
        check_shapes(lambda x: torch.tanh(x), "B 8", "B 8", backend="numpy")
    text = "".join(getattr(info.value, "__notes__", [])) + str(info.value)
    assert "pass backend=" not in text


def test_the_fixture_message_names_the_backend(pytester):
    pytester.makepyfile(test_wrapped="""
        import torch

        REGISTRY = {"m": torch.nn.Linear(4, 2).eval()}

        def predict(x):
            return REGISTRY["m"](x)

        def test_hidden(shape_invariants):
            shape_invariants.batch_invariance(predict, "B 4")

        def test_hidden_fixed(shape_invariants):
            shape_invariants.batch_invariance(predict, "B 4", backend="torch")
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*the generated inputs were numpy arrays (backend 'numpy': "
                                 "nothing fn reaches is torch or numpy*pass backend='torch'"])
