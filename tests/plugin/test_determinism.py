"""Determinism checks: each proven on a seeded fault and on its fixed twin."""

from __future__ import annotations

import collections
import dataclasses
import json
import random
import warnings

import numpy as np
import pytest

from pytest_mlcheck import report
from pytest_mlcheck.determinism import (
    UncomparableOutputError,
    assert_deterministic,
    assert_seed_invariant,
    assert_seed_sensitive,
    compare,
)


@pytest.fixture
def records():
    sink: list = []
    report.activate("tests::fake", sink)
    yield sink
    report.deactivate()


# ---- seeded faults (numpy) ----------------------------------------------------------------


def augment_unseeded(image):
    rng = np.random.default_rng()  # the fault: a fresh, clock-seeded generator
    return image + rng.normal(0.0, 0.1, size=image.shape)


def augment_seeded(image):
    rng = np.random.default_rng(np.random.randint(2**32))  # seeded from the global seed
    return image + rng.normal(0.0, 0.1, size=image.shape)


def normalise_in_place(x):
    x -= x.mean(axis=0)
    x /= x.std(axis=0)
    return x


def normalise(x):
    return (x - x.mean(axis=0)) / x.std(axis=0)


class HardCodedSampler:
    """Ignores the seed: its generator always starts from 0."""

    def __init__(self, n):
        self.n = n

    def indices(self):
        return np.random.RandomState(0).permutation(self.n)


class SeededSampler(HardCodedSampler):
    def indices(self):
        return np.random.RandomState(np.random.randint(2**32)).permutation(self.n)


def test_unseeded_augmentation_fails_check(records):
    image = np.zeros((4, 4))
    with pytest.raises(AssertionError) as excinfo:
        assert_deterministic(augment_unseeded, image)
    msg = str(excinfo.value)
    assert "`augment_unseeded` is not deterministic" in msg
    assert "output: numpy.ndarray of shape (4, 4), dtype float64" in msg
    assert "16 of 16 elements differ" in msg
    assert "first at index (0, 0)" in msg and "max abs diff" in msg
    assert "did not draw from the global RNGs" in msg and "np.random.default_rng()" in msg
    assert records[-1].kind == "determinism" and records[-1].verdict == "FAILED"
    assert records[-1].values["n_diff"] == 16


def test_seeded_augmentation_passes_and_returns_first_output(records):
    image = np.zeros((4, 4))
    out = assert_deterministic(augment_seeded, image, runs=3, seed=7)
    expected = np.random.default_rng(np.random.RandomState(7).randint(2**32)).normal(0.0, 0.1, (4, 4))
    np.testing.assert_array_equal(out, expected)
    assert records[-1].verdict == "ok" and records[-1].values["runs"] == 3


def test_unseeded_augmentation_also_fails_seed_sensitive_as_not_reproducible():
    with pytest.raises(AssertionError, match="not reproducible: two calls with the same seed"):
        assert_seed_sensitive(augment_unseeded, np.zeros(3))


def test_in_place_normalisation_is_named():
    data = np.arange(12.0).reshape(4, 3)
    with pytest.raises(AssertionError) as excinfo:
        assert_deterministic(normalise_in_place, data)
    msg = str(excinfo.value)
    assert "`normalise_in_place` modified its input in place" in msg
    assert "argument 'x' (args[0]): 12 of 12 elements changed" in msg
    assert "x = x - mean" in msg


def test_in_place_mutation_of_nested_and_keyword_arguments_is_named():
    def scale(batch, *, factor):
        batch["image"] *= factor
        return batch["image"].sum()

    with pytest.raises(AssertionError, match=r"argument 'batch' \(args\[0\]\)\['image'\]"):
        assert_deterministic(scale, {"image": np.ones(3), "label": np.zeros(3)}, factor=2.0)


def test_out_of_place_normalisation_passes():
    data = np.arange(12.0).reshape(4, 3)
    before = data.copy()
    out = assert_deterministic(normalise, data)
    np.testing.assert_array_equal(data, before)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-12)


def test_sampler_ignoring_the_seed_fails_seed_sensitive(records):
    with pytest.raises(AssertionError) as excinfo:
        assert_seed_sensitive(HardCodedSampler(10).indices)
    msg = str(excinfo.value)
    assert "not seed-sensitive: seeds 0 and 1 gave identical outputs" in msg
    assert "never drew from the global RNGs" in msg
    assert records[-1].values["identical"] == [0, 1]


def test_seeded_sampler_passes_seed_sensitive():
    out = assert_seed_sensitive(SeededSampler(10).indices, seeds=(0, 1, 2))
    assert sorted(out.tolist()) == list(range(10))


def test_sampler_reseeding_the_global_rng_is_diagnosed():
    def sample():
        np.random.seed(1234)  # the fault: overrides the caller's seed
        return np.random.permutation(8)

    with pytest.raises(AssertionError, match="re-seeded the global RNG itself"):
        assert_seed_sensitive(sample)


def test_output_that_ignores_the_draw_is_diagnosed():
    def sample():
        return np.sort(np.random.permutation(8))

    with pytest.raises(AssertionError, match="does not depend on the draw"):
        assert_seed_sensitive(sample)


def test_seed_invariant_catches_randomness_in_inference_and_passes_clean_code():
    weights = np.linspace(-1, 1, 12).reshape(4, 3)

    def predict_noisy(x):
        return x @ weights + np.random.normal(0, 1e-3, size=3)

    def predict(x):
        return x @ weights

    x = np.ones((2, 4))
    with pytest.raises(AssertionError) as excinfo:
        assert_seed_invariant(predict_noisy, x)
    assert "drew from the global numpy RNG" in str(excinfo.value)
    np.testing.assert_array_equal(assert_seed_invariant(predict, x, seeds=(0, 1, 2)), x @ weights)


def test_state_carried_between_calls_fails():
    rng = np.random.default_rng(0)  # created once, outside the function

    def jitter(x):
        return x + rng.normal()

    with pytest.raises(AssertionError, match="state carried between calls"):
        assert_deterministic(jitter, 1.0)


def test_a_reused_output_buffer_cannot_hide_a_difference():
    buffer = np.zeros(3)
    calls = []

    def fill():
        calls.append(1)
        buffer[:] = len(calls)  # overwrites what the previous call returned
        return buffer

    with pytest.raises(AssertionError, match=r"1\.0 \(run 1\) vs 2\.0 \(run 2\)"):
        assert_deterministic(fill)


def test_global_rng_state_is_restored_after_a_check():
    np.random.seed(99)
    random.seed(99)
    expected_np, expected_py = np.random.RandomState(99).rand(), random.Random(99).random()
    np.random.seed(99)
    random.seed(99)
    assert_deterministic(lambda: np.random.rand() + random.random(), seed=3)
    assert np.random.rand() == expected_np and random.random() == expected_py


# ---- structural comparison ---------------------------------------------------------------


@dataclasses.dataclass
class Batch:
    logits: np.ndarray
    name: str


Pair = collections.namedtuple("Pair", "score extra")


def test_compare_names_the_leaf_path_and_gives_the_numbers():
    a = (np.zeros(2), [{"logits": np.array([[1.0, 2.0], [3.0, 4.0]])}])
    b = (np.zeros(2), [{"logits": np.array([[1.0, 2.0], [3.0, 4.5]])}])
    diff = compare(a, b)
    assert diff.path == "output[1][0]['logits']"
    assert "shape (2, 2), dtype float64" in diff.text
    assert "1 of 4 elements differ" in diff.text
    assert "first at index (1, 1): 4.0 (run 1) vs 4.5 (run 2)" in diff.text
    assert "max abs diff 0.5" in diff.text
    assert diff.values["max_abs_diff"] == 0.5


def test_compare_dataclass_and_namedtuple_paths():
    diff = compare(Batch(np.ones(2), "a"), Batch(np.ones(2), "b"))
    assert diff.path == "output.name" and "'a' (run 1) vs 'b' (run 2)" in diff.text
    diff = compare(Pair(1.0, {"k": 2}), Pair(1.0, {"k": 3}))
    assert diff.path == "output.extra['k']"


def test_nan_equals_nan_in_the_same_position_only():
    assert compare(np.array([1.0, np.nan]), np.array([1.0, np.nan])) is None
    assert compare(float("nan"), float("nan")) is None
    diff = compare(np.array([1.0, np.nan]), np.array([np.nan, 1.0]))
    assert "2 of 2 elements differ" in diff.text and "NaN/Inf on one side only" in diff.text


def test_zero_tolerance_is_bitwise_and_tolerances_relax_it():
    assert compare(np.array([0.0]), np.array([-0.0])) is not None
    a, b = np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-9])
    assert compare(a, b) is not None
    assert compare(a, b, atol=1e-8) is None
    assert compare(a, b, rtol=1e-8) is None
    assert compare(a, np.array([1.0, 2.1]), atol=1e-3) is not None


def test_dtype_shape_type_and_structure_differences_are_reported():
    assert compare(np.zeros(2, np.float32), np.zeros(2, np.float64)).what == "dtype"
    assert compare(np.zeros(2), np.zeros(3)).what == "shape"
    assert compare(1, 1.0).what == "type"
    assert compare([1, 2], [1, 2, 3]).what == "structure"
    assert compare({"a": 1}, {"b": 1}).what == "structure"
    assert compare((1,), [1]).what == "type"
    assert compare({"b": 1, "a": 2}, {"a": 2, "b": 1}) is None  # key order is not a difference


def test_uncomparable_objects_raise_naming_the_path():
    class Opaque:
        pass

    with pytest.raises(TypeError, match=r"output\['model'\] is a .*Opaque, which cannot be compared"):
        compare({"model": Opaque()}, {"model": Opaque()})
    with pytest.raises(UncomparableOutputError, match=r"output\[0\] is a numpy array of dtype object"):
        assert_deterministic(lambda: [np.array([object()])])
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(TypeError, match="reference cycle"):
        compare(cyclic, cyclic)


# ---- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("call, error, text", [
    (lambda: assert_deterministic(len, [1], runs=1), ValueError, "runs must be an int >= 2, got 1; one run has nothing to compare with"),
    (lambda: assert_deterministic(len, [1], runs=2.0), TypeError, "runs must be an int >= 2, got float"),
    (lambda: assert_deterministic(42), TypeError, "fn must be a callable"),
    (lambda: assert_deterministic(len, [1], atol=-1.0), ValueError, "atol must be a finite number >= 0"),
    (lambda: assert_deterministic(len, [1], seed=-1), ValueError, "assert_deterministic: seed must be in"),
    (lambda: assert_seed_invariant(len, [1], seeds=()), ValueError, "seeds is empty"),
    (lambda: assert_seed_invariant(len, [1], seeds=(3,)), ValueError, "needs at least 2 different seeds"),
    (lambda: assert_seed_sensitive(len, [1], seeds=(1, 1)), ValueError, "seeds must all differ"),
    (lambda: assert_seed_sensitive(len, [1], seeds="01"), TypeError, "seeds must be a sequence"),
    (lambda: assert_seed_sensitive("fn"), TypeError, "fn must be a callable"),
])
def test_bad_input_is_rejected_clearly(call, error, text):
    with pytest.raises(error, match=text):
        call()


# ---- torch ---------------------------------------------------------------------------------


def _torch():
    return pytest.importorskip("torch")


def test_eval_path_with_functional_dropout_fails_seed_invariant_and_its_fix_passes():
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional

    class Net(nn.Module):  # the bug shipped in a widely used MNIST example
        def __init__(self, fixed):
            super().__init__()
            self.fc1, self.fc2, self.fixed = nn.Linear(8, 16), nn.Linear(16, 4), fixed

        def forward(self, x):
            h = F.relu(self.fc1(x))
            h = F.dropout(h, 0.5, training=self.training) if self.fixed else F.dropout(h, 0.5)
            return {"logits": self.fc2(h)}

    torch.manual_seed(0)
    x = torch.randn(5, 8)
    buggy = Net(fixed=False).eval()
    with pytest.raises(AssertionError) as excinfo:
        assert_seed_invariant(buggy, x)
    msg = str(excinfo.value)
    assert "`Net` is not seed-invariant" in msg
    assert "output['logits']: torch.Tensor of shape (5, 4), dtype float32" in msg
    assert "global torch RNG" in msg and "training=self.training" in msg
    fixed = Net(fixed=True)
    fixed.load_state_dict(buggy.state_dict())
    out = assert_seed_invariant(fixed.eval(), x)
    assert out["logits"].shape == (5, 4)
    assert_deterministic(buggy, x)  # same seed, same dropout mask: only seed_invariant sees it


def test_model_left_in_training_mode_names_its_dropout():
    torch = _torch()
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5))
    with pytest.raises(AssertionError, match=r"`Sequential\.1` is in training mode; call `model\.eval\(\)`"):
        assert_seed_invariant(model, torch.ones(3, 4))
    assert_seed_invariant(model.eval(), torch.ones(3, 4))


def test_batchnorm_running_stats_updated_by_the_call_are_named():
    torch = _torch()
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    with pytest.raises(AssertionError, match=r"buffer '1\.running_mean'"):
        assert_deterministic(model, torch.randn(8, 3))
    assert_deterministic(model.eval(), torch.randn(8, 3))


def test_sampler_with_a_fresh_torch_generator_ignores_the_seed():
    torch = _torch()

    def shuffle_buggy(n=10):
        return torch.randperm(n, generator=torch.Generator())  # default seed, always the same

    def shuffle(n=10):
        g = torch.Generator()
        g.manual_seed(int(torch.randint(2**62, ())))
        return torch.randperm(n, generator=g)

    with pytest.raises(AssertionError, match="never drew from the global RNGs"):
        assert_seed_sensitive(shuffle_buggy)
    assert sorted(assert_seed_sensitive(shuffle).tolist()) == list(range(10))


def test_nondeterministic_kernel_is_named_and_the_previous_mode_restored(records):
    torch = _torch()
    calls = []

    def scatter():
        calls.append(1)
        out = torch.zeros(6)
        out.put_(torch.tensor([1, 1, 2]), torch.tensor([1.0, 2.0, float(len(calls))]))
        return out

    assert not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(AssertionError) as excinfo:
        assert_deterministic(scatter)
    assert "torch reported `put_`" in str(excinfo.value)
    assert records[-1].values["nondeterministic_ops"] == ["put_"]
    assert not torch.are_deterministic_algorithms_enabled()

    def scatter_same():
        out = torch.zeros(6)
        out.put_(torch.tensor([1, 2]), torch.tensor([1.0, 2.0]))
        return out

    torch.use_deterministic_algorithms(True)  # a user's strict mode stays strict
    try:
        with pytest.raises(RuntimeError, match="put_ does not have a deterministic implementation"):
            assert_deterministic(scatter_same)
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    with pytest.warns(UserWarning, match="torch reported nondeterministic kernels: put_"):
        assert_deterministic(scatter_same)
    assert records[-1].verdict == "ok" and records[-1].values["nondeterministic_ops"] == ["put_"]


def test_tensor_and_array_leaves_compare_by_type_dtype_and_value():
    torch = _torch()
    assert compare(torch.ones(2), np.ones(2, np.float32)).what == "type"
    assert compare(torch.ones(2, dtype=torch.float64), torch.ones(2)).what == "dtype"
    assert compare(torch.tensor([1.0, float("nan")]), torch.tensor([1.0, float("nan")])) is None
    assert compare(torch.ones(2, dtype=torch.bfloat16), torch.ones(2, dtype=torch.bfloat16)) is None
    diff = compare({"h": torch.ones(2, 2, requires_grad=True) * 2}, {"h": torch.full((2, 2), 2.5)})
    assert diff.path == "output['h']" and "4 of 4 elements differ" in diff.text


def test_other_warnings_raised_by_fn_are_not_swallowed():
    def noisy():
        warnings.warn("something the user should still see", UserWarning)
        return 1

    with pytest.warns(UserWarning, match="something the user should still see"):
        assert_deterministic(noisy)


# ---- the fixture in real pytest sessions ---------------------------------------------------


def test_fixture_records_and_fails_in_a_session(pytester):
    pytester.makepyfile("""
        import numpy as np

        def augment(x):
            return x + np.random.default_rng().normal(size=x.shape)

        def test_buggy(determinism):
            determinism.check(augment, np.zeros(3))

        def test_fixed(determinism):
            out = determinism.check(lambda x: x * 2, np.ones(3), runs=3)
            assert out.tolist() == [2.0, 2.0, 2.0]
            determinism.check_seed_invariant(lambda x: x.sum(), np.ones(3))
            determinism.check_seed_sensitive(lambda: np.random.permutation(5))
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "--mlcheck-report=report.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*`augment` is not deterministic: run 1 and run 2 with the same seed (0)*",
        "*output: numpy.ndarray of shape (3,), dtype float64*",
        "*test_buggy*determinism*deterministic(a*FAILED*",
    ])
    data = json.loads((pytester.path / "report.json").read_text())
    kinds = {(r["name"], r["verdict"]) for r in data["records"] if r["kind"] == "determinism"}
    assert ("deterministic(augment)", "FAILED") in kinds
    assert ("seed_sensitive(test_fixed.<locals>.<lambda>)", "ok") in kinds and len(kinds) == 4


def test_determinism_works_without_torch(pytester, numpy_only):
    pytester.makepyfile("""
        import sys
        import numpy as np
        import pytest
        import pytest_mlcheck

        def test_torch_is_blocked():
            with pytest.raises(ImportError):
                import torch

        def test_checks(determinism):
            determinism.check(lambda x: x / 2, np.ones(3))
            with pytest.raises(AssertionError, match="did not draw from the global RNGs"):
                pytest_mlcheck.assert_deterministic(lambda: np.random.default_rng().random())
            with pytest.raises(AssertionError, match="never drew from the global RNGs"):
                pytest_mlcheck.assert_seed_sensitive(lambda: np.random.RandomState(0).rand())
            pytest_mlcheck.assert_seed_sensitive(lambda: np.random.rand())
            pytest_mlcheck.assert_seed_invariant(lambda: 3)
            assert "torch" not in sys.modules or sys.modules["torch"] is None
    """)
    result = numpy_only("-p", "no:cacheprovider", "--mlcheck")
    result.assert_outcomes(passed=2)
