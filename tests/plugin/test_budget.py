"""resource_budget: wall time, peak memory (Python/numpy, torch CPU, CUDA), parameters."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from pytest_mlcheck import budget
from pytest_mlcheck.budget import ResourceUsage, assert_param_budget, measure_resources


def _cpu_loop(n=200_000):
    total = 0
    for i in range(n):
        total += i * i
    return total


# ---- memory ----------------------------------------------------------------------


def test_big_numpy_array_fails_memory_budget():
    with pytest.raises(AssertionError) as info:
        with measure_resources(max_peak_mb=50):
            big = np.ones((100 * 1024 * 1024) // 8)  # seeded fault: 100 MiB materialised
            del big
    msg = str(info.value)
    assert "host peak memory" in msg and "> budget 50 MiB" in msg
    assert "Python/numpy traced 10" in msg  # ~100 MiB seen by tracemalloc
    assert "float64 where float32 was meant" in msg


def test_small_numpy_array_passes_memory_budget():
    with measure_resources(max_peak_mb=50) as used:
        small = np.ones((1024 * 1024) // 8)  # 1 MiB
        del small
    assert 0.9 < used.traced_peak_mb < 50
    assert used.peak_mb >= used.traced_peak_mb


def test_short_lived_peak_is_seen():
    with measure_resources() as used:
        for _ in range(3):
            np.ones((30 * 1024 * 1024) // 8).sum()  # 30 MiB, freed at once
    assert used.traced_peak_mb >= 29


def test_torch_allocation_seen_by_rss_sampler(monkeypatch):
    torch = pytest.importorskip("torch")
    # Without the kernel high-water mark only the background sampler can see it.
    monkeypatch.setattr(budget, "_reset_hwm", lambda: False)
    with measure_resources() as used:
        t = torch.ones(80 * 1024 * 1024 // 4)  # 80 MiB in torch's CPU allocator
        time.sleep(0.5)  # keep it alive for many 1 ms sampling periods
        del t
    assert used.rss_method == "sampled"
    assert used.traced_peak_mb < 10  # tracemalloc cannot see torch's allocator
    assert used.rss_peak_mb >= 70
    assert used.peak_mb >= 70


def test_torch_allocation_fails_budget():
    torch = pytest.importorskip("torch")
    with pytest.raises(AssertionError, match=r"RSS growth \d+(\.\d+)? MiB"):
        with measure_resources(max_peak_mb=40):
            t = torch.ones(80 * 1024 * 1024 // 4)  # still alive when the block ends
    del t
    with measure_resources(max_peak_mb=40):
        torch.ones(1024).add_(1)


def test_nested_blocks_keep_outer_peak():
    with measure_resources() as outer:
        big = np.ones((40 * 1024 * 1024) // 8)
        del big
        with measure_resources() as inner:
            np.ones(1000)
    assert inner.traced_peak_mb < 5
    assert outer.traced_peak_mb >= 39


def test_nested_blocks_keep_outer_rss_peak(monkeypatch):
    torch = pytest.importorskip("torch")
    if not budget._reset_hwm():
        pytest.skip("the kernel's peak-RSS mark cannot be reset here")
    monkeypatch.setattr(budget, "_SAMPLE_SECONDS", 60.0)  # no sampling: the mark alone
    with measure_resources() as outer:
        t = torch.ones(60 * 1024 * 1024 // 4)
        del t
        with measure_resources() as inner:  # resets the kernel's mark
            pass
    assert outer.rss_method == "hwm"
    assert inner.rss_peak_mb < 30
    assert outer.rss_peak_mb >= 55


def test_existing_tracemalloc_session_is_left_running():
    import tracemalloc

    tracemalloc.start()
    try:
        with measure_resources():
            np.ones(1000)
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()


# ---- time ------------------------------------------------------------------------


def test_zero_second_budget_fails_and_generous_budget_passes():
    with pytest.raises(AssertionError, match=r"(?s)wall time .* s > budget 0 s.*Python loop"):
        with measure_resources(max_seconds=0.0):
            _cpu_loop()
    with measure_resources(max_seconds=60) as used:
        _cpu_loop()
    assert 0 < used.seconds < 60
    assert used.traced is False and used.traced_peak_mb is None  # time alone: no tracemalloc
    assert used.as_metrics() == {"seconds": used.seconds, "peak_mb": used.peak_mb}


def test_exception_in_block_propagates_without_judging():
    with pytest.raises(KeyError):
        with measure_resources(max_seconds=0.0) as used:
            raise KeyError("boom")
    assert used.seconds is not None


def test_bad_budgets_are_errors():
    with pytest.raises(ValueError, match="max_seconds must be a finite number >= 0"):
        with measure_resources(max_seconds=-1):
            pass
    with pytest.raises(TypeError, match="max_peak_mb must be a finite number"):
        with measure_resources(max_peak_mb="100"):
            pass


# ---- parameters ------------------------------------------------------------------


def test_param_budget():
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.ReLU(), torch.nn.Linear(20, 2))
    assert assert_param_budget(model, 262) == {"total": 262, "trainable": 262, "frozen": 0}
    with pytest.raises(AssertionError) as info:
        assert_param_budget(model, 200)
    msg = str(info.value)
    assert "262 total parameters > budget 200" in msg
    assert "Largest: 0.weight (200)" in msg


def test_param_budget_counts_tied_weights_once_and_trainable():
    torch = pytest.importorskip("torch")

    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(100, 8)
            self.out = torch.nn.Linear(8, 100, bias=False)
            self.out.weight = self.embed.weight

    model = Tied()
    assert assert_param_budget(model, 800)["total"] == 800
    model.embed.weight.requires_grad_(False)
    assert assert_param_budget(model, 0, trainable_only=True) == {
        "total": 800, "trainable": 0, "frozen": 800}


def test_param_budget_bad_input():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        assert_param_budget(np.zeros(3), 10)
    with pytest.raises(ValueError, match="uninitialised"):
        assert_param_budget(torch.nn.LazyLinear(3), 10)
    with pytest.raises(ValueError, match="max_params must be an int >= 0"):
        assert_param_budget(torch.nn.Linear(2, 2), -1)
    assert assert_param_budget(torch.nn.ReLU(), 0)["total"] == 0


def test_cuda_peak_when_available():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    torch.zeros(1, device="cuda")  # initialise CUDA outside the block
    with measure_resources() as used:
        t = torch.ones(64 * 1024 * 1024 // 4, device="cuda")
        del t
    assert used.cuda_peak_mb is not None and used.cuda_peak_mb >= 63
    with pytest.raises(AssertionError, match="CUDA peak memory"):
        with measure_resources(max_cuda_mb=10):
            t = torch.ones(64 * 1024 * 1024 // 4, device="cuda")
            del t


# ---- the fixture in real sessions ------------------------------------------------


_SESSION = """
import numpy as np

def test_memory_over(resource_budget):
    with resource_budget(max_peak_mb=20, name="features"):
        x = np.ones((64 * 1024 * 1024) // 8)
        del x

def test_memory_under(resource_budget):
    with resource_budget(max_seconds=60, max_peak_mb=20) as used:
        np.ones(1000)
    assert used.peak_mb < 20

def test_time_over(resource_budget):
    with resource_budget(max_seconds=0.0, name="loop"):
        sum(i * i for i in range(10000))
"""


def test_fixture_session_and_json_report(pytester):
    pytester.makepyfile(test_budget_demo=_SESSION)
    result = pytester.runpytest("-p", "no:cacheprovider", "--mlcheck-report=report.json")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "*resource budget exceeded by 'features': host peak memory * MiB > budget 20 MiB*",
        "*resource budget exceeded by 'loop': wall time * s > budget 0 s*",
    ])
    data = json.loads((pytester.path / "report.json").read_text())
    recs = {r["nodeid"].split("::")[1]: r for r in data["records"]}
    over = recs["test_memory_over"]
    assert over["kind"] == "budget" and over["name"] == "features"
    assert over["verdict"] == "FAILED"
    assert over["values"]["peak_mb"] >= 60 and over["values"]["max_peak_mb"] == 20
    under = recs["test_memory_under"]
    assert under["verdict"] == "ok" and under["values"]["seconds"] < 60
    assert set(under["values"]) >= {"seconds", "peak_mb", "traced_peak_mb", "rss_peak_mb",
                                    "cuda_peak_mb", "rss_method"}


def test_params_fixture_session(pytester):
    pytest.importorskip("torch")
    pytester.makepyfile(test_params="""
import torch

def test_small(resource_budget):
    resource_budget.params(torch.nn.Linear(4, 2), max_params=10)

def test_big(resource_budget):
    resource_budget.params(torch.nn.Linear(100, 100), max_params=1000)
""")
    result = pytester.runpytest("-p", "no:cacheprovider", "--mlcheck-report=report.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*parameter budget exceeded by Linear: 10,100 total parameters"
                                 " > budget 1,000*"])
    data = json.loads((pytester.path / "report.json").read_text())
    values = {r["nodeid"].split("::")[1]: r["values"] for r in data["records"]}
    assert values["test_small"]["total"] == 10 and values["test_big"]["trainable"] == 10100


def test_numpy_only_session(pytester, numpy_only):
    pytester.makepyfile(test_budget_demo=_SESSION)
    result = numpy_only("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)


def test_plain_functions_are_exported():
    import pytest_mlcheck

    assert pytest_mlcheck.measure_resources is measure_resources
    assert pytest_mlcheck.assert_param_budget is assert_param_budget
    assert isinstance(ResourceUsage().as_metrics(), dict)
