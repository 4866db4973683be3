"""The environment fingerprint: CUDA facts when present, and baselines keyed by the device."""

from __future__ import annotations

import json
import types
from pathlib import Path

import jsonschema
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


# -- the header and the run's environment, without importing torch for them -----------

REPORT_SCHEMA = json.loads((Path(environment.__file__).parent / "reports" / "report-v1.schema.json")
                           .read_text(encoding="utf-8"))

_WHERE_TORCH = '''
import sys

def pytest_sessionfinish(session):
    role = "worker" if hasattr(session.config, "workerinput") else "controller"
    with open(f"torch-in-{role}-{'torch' in sys.modules}", "w"):
        pass
'''


def _torch_installed_here() -> None:
    if not environment.torch_installed():
        pytest.skip("torch is not installed: the header shows the whole fingerprint")


def test_header_does_not_import_torch_and_a_numpy_run_adds_no_line(pytester):
    _torch_installed_here()
    pytester.makeconftest(_WHERE_TORCH)
    pytester.makepyfile(test_model="""
        import numpy as np

        def test_metric(metric_regression):
            metric_regression.check({"accuracy": float(np.mean([0.9, 0.9]))})
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--mlcheck",
                                           "--mlcheck-update", "--mlcheck-report=r.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["mlcheck: *torch * device not probed yet (torch not imported)*"])
    assert "tests ran on" not in result.stdout.str()
    assert (pytester.path / "torch-in-controller-False").exists()
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["environment"]["device"] == "cpu"
    assert report["environment"]["torch"] == environment.recording_environment()["torch"]
    baseline = next((pytester.path / "mlcheck_baselines").glob("*.toml")).read_text()
    assert 'device = "cpu"' in baseline


def test_summary_names_the_device_a_torch_run_probed(pytester):
    pytest.importorskip("torch")
    pytester.makepyfile(test_model="""
        import torch

        def test_metric(metric_regression):
            metric_regression.check({"loss": float(torch.ones(2).sum())})
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--mlcheck", "--mlcheck-update")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["mlcheck: *device not probed yet*",
                                 "mlcheck: tests ran on *torch * device cpu*"])
    quiet = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "--mlcheck")
    quiet.stdout.fnmatch_lines(["mlcheck: python *, torch * device cpu*; base seed *"])
    assert "not probed" not in quiet.stdout.str()


def test_xdist_controller_reports_the_workers_environment_without_torch(pytester):
    pytest.importorskip("xdist")
    pytest.importorskip("torch")
    pytester.makeconftest(_WHERE_TORCH)
    pytester.makepyfile(test_model="""
        import pytest
        import torch

        @pytest.mark.parametrize("n", range(4))
        def test_metric(metric_regression, n):
            metric_regression.check({"loss": float(torch.ones(n + 1).sum())})
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--mlcheck",
                                           "--mlcheck-update", "--mlcheck-report=r.json")
    result.assert_outcomes(passed=4)
    assert (pytester.path / "torch-in-controller-False").exists()
    assert (pytester.path / "torch-in-worker-True").exists()
    result.stdout.fnmatch_lines(["mlcheck: *device not probed yet*",
                                 "mlcheck: tests ran on *device cpu*"])
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["environment"] == environment.fingerprint()
    assert "worker_environments" not in report  # the workers agree
    jsonschema.validate(report, REPORT_SCHEMA)


def test_workers_in_different_environments_are_all_in_the_report(pytester):
    # A worker on another machine (--tx ssh=...) or another GPU: simulated by one worker
    # claiming another device in what it sends the controller.
    pytest.importorskip("xdist")
    pytester.makeconftest('''
        import pytest

        @pytest.hookimpl(wrapper=True)
        def pytest_sessionfinish(session):
            yield
            out = getattr(session.config, "workeroutput", {}).get("mlcheck")
            if out and out["worker"] == "gw1":
                out["environment"] = dict(out["environment"], device="cuda:NVIDIA H200")
    ''')
    pytester.makepyfile(test_model="""
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_metric(metric_regression, n):
            metric_regression.check({"loss": float(n)})
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--mlcheck",
                                           "--mlcheck-update", "--mlcheck-report=r.json")
    result.assert_outcomes(passed=4)
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["worker_environments"]["gw1"]["device"] == "cuda:NVIDIA H200"
    assert report["environment"] == report["worker_environments"]["gw0"]
    jsonschema.validate(report, REPORT_SCHEMA)
    result.stdout.fnmatch_lines(["mlcheck: xdist worker(s) gw1 ran in another environment*"])
