"""The environment fingerprint: CUDA facts when present, and baselines keyed by the device."""

from __future__ import annotations

import types

import pytest

from pytest_mlcheck import environment
from pytest_mlcheck.environment import CUDA_KEYS, cuda_facts, describe, environment_note


def _fake_torch(available: bool = True, deterministic: tuple[bool, bool] = (False, False),
                broken: str = "") -> types.SimpleNamespace:
    """A stand-in with torch's CUDA attributes, as a GPU machine reports them."""
    def capability(index):
        if broken == "capability":
            raise RuntimeError("no capability here")
        return (9, 0)

    cuda = types.SimpleNamespace(is_available=lambda: available,
                                 get_device_name=lambda i: "NVIDIA H200",
                                 get_device_capability=capability)
    backends = types.SimpleNamespace(
        cuda=types.SimpleNamespace(matmul=types.SimpleNamespace(allow_tf32=False)),
        cudnn=types.SimpleNamespace(version=lambda: 90100, allow_tf32=True))
    return types.SimpleNamespace(
        cuda=cuda, backends=backends,
        _C=types.SimpleNamespace(_cuda_getDriverVersion=lambda: 12040),
        are_deterministic_algorithms_enabled=lambda: deterministic[0],
        is_deterministic_algorithms_warn_only_enabled=lambda: deterministic[1])


def test_cuda_facts_name_driver_cudnn_gpu_capability_tf32_and_determinism():
    facts = cuda_facts(_fake_torch(deterministic=(True, True)))
    assert facts == {"device": "cuda:NVIDIA H200", "gpu": "NVIDIA H200",
                     "compute_capability": "9.0", "cuda_driver": "12.4", "cudnn": "9.1.0",
                     "tf32": "matmul off, cudnn on", "deterministic": "warn-only"}
    assert set(facts) - {"device"} == set(CUDA_KEYS)
    assert cuda_facts(_fake_torch(deterministic=(True, False)))["deterministic"] == "on"


def test_no_cuda_device_means_no_cuda_keys_and_a_broken_reader_is_left_out():
    assert cuda_facts(_fake_torch(available=False)) == {}
    facts = cuda_facts(_fake_torch(broken="capability"))
    assert "compute_capability" not in facts and facts["gpu"] == "NVIDIA H200"


def test_describe_shows_the_gpu_facts_and_the_cpu_fingerprint_has_none():
    info = {"python": "3.11.7", "numpy": "2.1", "torch": "2.13.0", "cuda": "12.4",
            "platform": "linux-x86_64", **cuda_facts(_fake_torch())}
    text = describe(info)
    assert "torch 2.13.0 (CUDA 12.4), device cuda:NVIDIA H200 (sm 9.0), driver 12.4" in text
    assert "cuDNN 9.1.0, TF32 matmul off, cudnn on, deterministic algorithms off" in text
    here = environment.fingerprint()
    if here["device"] == "cpu":
        assert not set(CUDA_KEYS) & set(here)


def test_environment_note_names_each_differing_facet():
    now = environment.recording_environment()
    assert environment_note(dict(now)) == []
    assert environment_note(None) == []
    note = environment_note({**now, "device": "cuda:NVIDIA H200", "cudnn": "9.1.0"})
    assert note and "device cuda:NVIDIA H200 (now cpu)" in note[0] or now["device"] != "cpu"
    assert "cudnn 9.1.0 (now none)" in note[0]


# ---- baselines keyed by the device facet ------------------------------------------------

_GPU_FACTS = {"device": "cuda:Test GPU", "gpu": "Test GPU", "compute_capability": "8.0",
              "cuda_driver": "12.4", "cudnn": "9.1.0", "tf32": "matmul off, cudnn on",
              "deterministic": "off"}

_METRIC_TEST = """
import torch  # once torch is imported, baselines record the full fingerprint

def test_eval(metric_regression):
    metric_regression.check({{"accuracy": {value}}}, env=("device",))
"""


@pytest.fixture
def machine(monkeypatch):
    """Switch this process between a CPU machine and one with a (pretend) CUDA GPU."""
    pytest.importorskip("torch", reason="the device facet is recorded once torch is imported")
    real = environment.cuda_facts

    def switch(gpu: bool) -> None:
        monkeypatch.setattr(environment, "cuda_facts",
                            (lambda torch: dict(_GPU_FACTS)) if gpu else real)
        environment.fingerprint.cache_clear()

    yield switch
    monkeypatch.undo()
    environment.fingerprint.cache_clear()


def _run(pytester: pytest.Pytester, machine, gpu: bool, value: float,
         *args: str) -> pytest.RunResult:
    machine(gpu)
    pytester.makepyfile(test_model=_METRIC_TEST.format(value=value))
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_a_cuda_baseline_never_disturbs_the_cpu_one(pytester, machine):
    _run(pytester, machine, False, 0.91, "--mlcheck-update").assert_outcomes(passed=1)
    path = pytester.path / "mlcheck_baselines" / "test_model.toml"
    cpu_text = path.read_text()
    assert "device=cpu" in cpu_text
    # On the GPU machine the same test has no baseline yet: it fails, naming the variant.
    result = _run(pytester, machine, True, 0.93)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no baseline recorded for test_model.py::test_eval in the "
                                 "environment variant 'device=cuda:Test GPU'*"])
    _run(pytester, machine, True, 0.93, "--mlcheck-update").assert_outcomes(passed=1)
    both = path.read_text()
    assert "device=cuda:Test GPU" in both and 'gpu = "Test GPU"' in both
    assert 'compute_capability = "8.0"' in both
    # The CPU entry is byte for byte what it was, and each machine passes on its own value.
    cpu_block = cpu_text[cpu_text.index("[test_eval"):].strip()
    assert cpu_block in both
    _run(pytester, machine, False, 0.91).assert_outcomes(passed=1)
    _run(pytester, machine, True, 0.93).assert_outcomes(passed=1)
    _run(pytester, machine, False, 0.93).assert_outcomes(failed=1)
