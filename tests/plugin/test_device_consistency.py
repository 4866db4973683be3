"""device_consistency: the same results on each device, with CPU-float64 standing in for a GPU.

Without a GPU, ``devices=("cpu", "cpu:float64")`` runs the reference in float32 and the
second run in double precision. A seeded fault whose result depends on precision beyond
float32's tolerance (a catastrophic cancellation) fails; its stable twin passes. Tests
marked ``cuda`` run the real CPU/GPU comparison and skip here.
"""

from __future__ import annotations

import json

import pytest

from pytest_mlcheck import report
from pytest_mlcheck.devices import (
    DEFAULT_TOLERANCES,
    assert_device_consistent,
    assert_training_device_consistent,
    parse_device,
)

torch = pytest.importorskip("torch")
nn = torch.nn

STAND_IN = ("cpu", "cpu:float64")


@pytest.fixture
def records():
    sink: list = []
    report.activate("tests::fake", sink)
    yield sink
    report.deactivate()


def _inputs():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(16, 8, generator=gen)


def shifted_logits(x):
    # Seeded fault: adding and removing a large offset cancels float32's low bits.
    return (x + 1e4) - 1e4


def stable_logits(x):
    # The fixed twin: the same value, computed without the cancellation.
    return x * 1.0


def naive_variance(y):
    # Seeded fault: E[y^2] - E[y]^2 on data far from 0 loses most significant digits.
    return (y * y).mean(dim=0) - y.mean(dim=0) ** 2


def stable_variance(y):
    # The fixed twin: torch's two-pass variance subtracts the mean first.
    return y.var(dim=0, unbiased=False)


# ---- check: seeded faults and fixed twins ------------------------------------------------


@pytest.mark.parametrize("fault, fixed, offset", [(shifted_logits, stable_logits, 0.0),
                                                  (naive_variance, stable_variance, 1e3)])
def test_precision_fault_fails_against_float64_and_its_fixed_twin_passes(records, fault, fixed,
                                                                         offset):
    x = _inputs() + offset  # the variance's data lies far from 0 (exact in float32)
    with pytest.raises(AssertionError) as info:
        assert_device_consistent(fault, x, devices=STAND_IN)
    text = str(info.value)
    assert f"device_consistency.check failed for {fault.__name__}: the results on 'cpu' " \
           "and 'cpu:float64' differ" in text
    assert "output: torch.Tensor of shape" in text and "max abs diff" in text
    assert "tolerance: atol 1e-05, rtol 1.3e-06 (the default for float32)" in text
    assert "floating-point precision: the run cast to float64" in text
    bad = records[-1]
    assert bad.kind == "device" and bad.verdict == "FAILED"
    assert bad.values["compared"] == ["cpu", "cpu:float64"] and bad.values["max_abs_diff"] > 1e-5
    out = assert_device_consistent(fixed, x, devices=STAND_IN)
    assert out.dtype == torch.float32 and records[-1].verdict == "ok"


def test_a_model_and_its_bound_method_are_copied_to_each_run_never_moved():
    model = nn.Sequential(nn.Linear(8, 4), nn.Tanh()).eval()
    before = [p.detach().clone() for p in model.parameters()]
    assert_device_consistent(model, _inputs(), devices=STAND_IN)
    assert_device_consistent(model.forward, _inputs(), devices=STAND_IN)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_nested_outputs_name_the_leaf_that_drifts(records):
    class Head(nn.Module):
        def forward(self, x):
            return {"stable": x.sum(dim=1), "drift": [x.mean(), (x + 3e4) - 3e4]}

    with pytest.raises(AssertionError, match=r"the largest error is at output\['drift'\]\[1\]"):
        assert_device_consistent(Head(), _inputs(), devices=STAND_IN)
    paths = [d["path"] for d in records[-1].values["differences"]]
    assert paths == ["output['drift'][1]"]


def test_given_tolerances_replace_the_dtype_defaults():
    assert_device_consistent(shifted_logits, _inputs(), devices=STAND_IN, atol=1e-2)
    with pytest.raises(AssertionError, match=r"tolerance: atol 1e-09, rtol 0 \(as given\)"):
        assert_device_consistent(stable_variance, _inputs() + 1e3, devices=STAND_IN, atol=1e-9,
                                 rtol=0)


def test_integer_outputs_compare_exactly(records):
    def argmax_of_shifted(x):
        return ((x + 1e4) - 1e4).argmax(dim=1)

    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(3)) * 1e-3
    with pytest.raises(AssertionError, match=r"torch.Tensor of shape \(64,\), dtype int64"):
        assert_device_consistent(argmax_of_shifted, x, devices=STAND_IN)
    assert_device_consistent(lambda t: t.argmax(dim=1), x, devices=STAND_IN)


def test_dtype_promotion_on_one_run_is_named():
    def promotes(x):
        # A float64 array mixed in promotes the half-precision run to float64.
        scale = torch.full((x.shape[1],), 2.0, dtype=torch.float64)
        return x * scale if x.dtype == torch.float16 else x * 2

    with pytest.raises(AssertionError, match="dtype promotion"):
        assert_device_consistent(promotes, _inputs(), devices=("cpu", "cpu:float16"))


def test_a_common_dtype_casts_every_run():
    out = assert_device_consistent(lambda x: x * 2, _inputs(), devices=STAND_IN,
                                   dtype=torch.float16)
    assert out.dtype == torch.float16
    assert DEFAULT_TOLERANCES["float16"] == (1e-5, 1e-3)


# ---- check_training --------------------------------------------------------------------------


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))


def _batch():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(32, 8, generator=gen), torch.randn(32, 1, generator=gen)


def step_with_offset_loss(model, optimizer, batch):
    # Seeded fault: the loss is computed through a large offset, so float32 rounds the
    # predictions before the error is taken and the gradients differ from float64's.
    x, y = batch
    optimizer.zero_grad()
    loss = (((model(x) + 1e5) - (y + 1e5)) ** 2).mean()
    loss.backward()
    optimizer.step()
    return loss


def step(model, optimizer, batch):
    x, y = batch
    optimizer.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    optimizer.step()
    return loss


def test_training_drift_fails_naming_the_parameter_and_the_fixed_step_passes(records):
    model = _model()
    with pytest.raises(AssertionError) as info:
        assert_training_device_consistent(step_with_offset_loss, model, _batch(), steps=3,
                                          devices=STAND_IN)
    text = str(info.value)
    assert "device_consistency.check_training failed for step_with_offset_loss" in text
    assert "training['losses'][0]: torch.Tensor of shape (), dtype float32" in text
    assert "training['parameters']['0.weight']: torch.Tensor of shape (16, 8)" in text
    assert "differences grow over optimizer steps" in text
    assert_training_device_consistent(step, model, _batch(), steps=3, devices=STAND_IN)
    assert records[-1].verdict == "ok" and records[-1].values["devices"] == list(STAND_IN)
    # The caller's model was never trained.
    fresh = _model()
    assert all(torch.equal(a, b) for a, b in zip(fresh.parameters(), model.parameters()))


def test_training_takes_an_optimizer_factory():
    assert_training_device_consistent(step, _model(), _batch(), steps=2, devices=STAND_IN,
                                      optimizer=lambda ps: torch.optim.Adam(ps, lr=1e-3))
    with pytest.raises(TypeError, match="the optimizer factory must return a torch.optim.Optimizer"):
        assert_training_device_consistent(step, _model(), _batch(), devices=STAND_IN,
                                          optimizer=lambda ps: None)


# ---- bad input and absent devices -----------------------------------------------------------


@pytest.mark.parametrize("devices, error, text", [
    (("cpu",), ValueError, "needs at least two entries"),
    ("cpu", TypeError, "devices must be a tuple"),
    (("cpu", "tpu"), ValueError, "'tpu' is not a device; use 'cpu', 'cuda', 'cuda:N' or 'mps'"),
    (("cpu", "cpu"), ValueError, "repeats an entry"),
    (("cpu", "cuda:x"), ValueError, "'cuda:x' is not a device"),
])
def test_bad_devices_are_rejected_clearly(devices, error, text):
    with pytest.raises(error, match=text):
        assert_device_consistent(stable_logits, _inputs(), devices=devices)


def test_device_entries_parse_with_an_optional_dtype():
    assert parse_device("cuda:1:bfloat16").device == "cuda:1"
    assert parse_device("cuda:1:bfloat16").dtype == "bfloat16"
    assert parse_device("mps").kind == "mps" and parse_device("cpu:float64").dtype == "float64"


def test_an_absent_device_skips_naming_it_or_fails_when_cuda_is_required(pytester, monkeypatch):
    import pytest_mlcheck.devices as devices

    # This machine's devices are whatever it has: make CUDA and MPS absent for the
    # in-process runs below (monkeypatch restores the real lookup afterwards).
    monkeypatch.setattr(devices, "device_available",
                        lambda d: (True, "") if d == "cpu" else (False, "hidden by the test"))
    monkeypatch.delenv("MLCHECK_REQUIRE_CUDA", raising=False)
    pytester.makepyfile(test_dev="""
        import pytest
        import torch

        def test_cuda(device_consistency):
            device_consistency.check(lambda x: x * 2, torch.ones(3))

        def test_mps(device_consistency):
            device_consistency.check(lambda x: x * 2, torch.ones(3), devices=("cpu", "mps"))

        @pytest.mark.cuda
        def test_marked():
            pass

        def test_stand_in(device_consistency):
            device_consistency.check(lambda x: x * 2, torch.ones(3), devices=("cpu", "cpu:float64"))
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.fnmatch_lines_random([
        "*device_consistency.check: device 'cuda' is not available here (hidden by the test)*",
        "*device_consistency.check: device 'mps' is not available here*",
        "*a test marked cuda: device 'cuda' is not available here*",
    ])
    monkeypatch.setenv("MLCHECK_REQUIRE_CUDA", "1")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1, failed=1, errors=1)
    result.stdout.fnmatch_lines_random([
        "*needs device 'cuda', which is not available here: hidden by the test; "
        "MLCHECK_REQUIRE_CUDA=1 makes that a failure*",
    ])


def test_fixture_records_reach_the_json_report(pytester):
    pytester.makepyfile(test_dev="""
        import torch

        def test_drift(device_consistency):
            device_consistency.check(lambda x: (x + 1e4) - 1e4, torch.linspace(0, 1, 50),
                                     devices=("cpu", "cpu:float64"))

        def test_fine(device_consistency):
            device_consistency.check(lambda x: x * 3, torch.linspace(0, 1, 50),
                                     devices=("cpu", "cpu:float64"))
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "--mlcheck-report=r.json")
    result.assert_outcomes(passed=1, failed=1)
    data = json.loads((pytester.path / "r.json").read_text())
    device = [r for r in data["records"] if r["kind"] == "device"]
    assert [r["verdict"] for r in device] == ["FAILED", "ok"]
    assert device[0]["values"]["compared"] == ["cpu", "cpu:float64"]


# ---- on a GPU machine (scripts/gpu-check) ---------------------------------------------------


@pytest.mark.cuda
def test_cuda_matches_cpu_for_a_small_model():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    assert_device_consistent(model, _inputs(), devices=("cpu", "cuda"))


@pytest.mark.cuda
def test_cuda_precision_fault_is_caught_and_the_fixed_twin_passes():
    with pytest.raises(AssertionError, match="'cpu' and 'cuda:float64'"):
        assert_device_consistent(shifted_logits, _inputs(), devices=("cpu", "cuda:float64"))
    assert_device_consistent(stable_logits, _inputs(), devices=("cpu", "cuda"))


@pytest.mark.cuda
def test_cuda_training_matches_cpu():
    assert_training_device_consistent(step, _model(), _batch(), steps=3, devices=("cpu", "cuda"),
                                      atol=1e-4, rtol=1e-4)
