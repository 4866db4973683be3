"""``python -m pytest_mlcheck compare`` and the report schema, on reports of real pytester
runs: a numpy-only run against a torch run, and two seeds of a noisy metric."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Imported once here, outside pytester's sys.modules snapshots (see test_metric_regression).
import pytest_mlcheck.baselines  # noqa: F401
import pytest_mlcheck.metrics  # noqa: F401
from pytest_mlcheck.__main__ import main
from pytest_mlcheck.reports import ReportError, load_report, report_schema

try:  # in-process pytester runs must find torch already imported: it cannot load twice
    import torch  # noqa: F401
except ImportError:  # pragma: no cover
    torch = None

jsonschema = pytest.importorskip("jsonschema")

ENVIRONMENTS = """
    import numpy as np
    import pytest

    def test_metric(metric_regression):
        metric_regression.check({"accuracy": 0.9, "steps": 12})

    def test_snapshot(metric_regression):
        metric_regression.check_array("logits", np.linspace(0.0, 1.0, 6))

    def test_torch_only(metric_regression):
        torch = pytest.importorskip("torch")
        metric_regression.check({"norm": float(torch.ones(4).norm())})
"""

NOISY = """
    import numpy as np
    import pytest

    @pytest.mark.mlcheck
    def test_noisy(metric_regression):
        # The plugin seeds numpy per test from --mlcheck-seed: another seed, other noise.
        accuracy = 0.9 + 0.002 * float(np.random.standard_normal())
        metric_regression.check({"accuracy": accuracy}, atol=0.02)
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_numpy_only_run_against_a_torch_run(pytester, numpy_only, capsys):
    if torch is None:
        pytest.skip("needs torch for the torch side of the comparison")
    pytester.makepyfile(test_model=ENVIRONMENTS)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=3)
    numpy_only("-p", "no:cacheprovider", "--mlcheck-report", "numpy.json").assert_outcomes(
        passed=2, skipped=1)
    run(pytester, "--mlcheck-report", "torch.json").assert_outcomes(passed=3)
    a, b = (str(pytester.path / n) for n in ("numpy.json", "torch.json"))
    for path in (a, b):
        jsonschema.validate(json.loads(Path(path).read_text()), report_schema())

    code, out, _ = cli(capsys, "compare", a, b)
    assert code == 0, out
    assert f"  torch: none -> {torch.__version__.split('+')[0]}" in out.splitlines()
    assert "only in B (1):" in out
    assert "  test_model.py::test_torch_only metric norm" in out.splitlines()
    assert "0 of 3 checks in both reports changed, all within tolerance; 1 only in B" in out

    code, out, _ = cli(capsys, "compare", a, b, "--format", "markdown")
    assert code == 0
    assert f"| torch | none | {torch.__version__.split('+')[0]} |" in out.splitlines()
    assert "<details><summary>Only in B (1)</summary>" in out


def test_two_seeds_of_a_noisy_metric_pass_within_the_baseline_band_but_not_a_tight_atol(
        pytester, capsys):
    pytester.makepyfile(test_model=NOISY)
    run(pytester, "--mlcheck", "--mlcheck-seed", "1", "--mlcheck-update").assert_outcomes(
        passed=1)
    for seed in ("1", "2"):
        run(pytester, "--mlcheck", "--mlcheck-seed", seed, "--mlcheck-report",
            f"seed{seed}.json").assert_outcomes(passed=1)
    a, b = str(pytester.path / "seed1.json"), str(pytester.path / "seed2.json")
    before = load_report(a)["records"][0]["values"]["current"]
    after = load_report(b)["records"][0]["values"]["current"]
    assert before != after  # the seed moved the metric

    code, out, _ = cli(capsys, "compare", a, b)
    assert code == 0, out
    row = next(line for line in out.splitlines() if "test_noisy metric accuracy" in line)
    assert row.split()[-1] == "ok" and "±0.02" in row
    assert "1 of 1 checks in both reports changed, all within tolerance" in out

    code, out, _ = cli(capsys, "compare", a, b, "--atol", "1e-9", "--rtol", "0")
    assert code == 1
    row = next(line for line in out.splitlines() if "test_noisy metric accuracy" in line)
    assert row.split()[-1] == "FAIL" and "±1e-09" in row
    assert "1 past tolerance or newly failing" in out

    out_file = pytester.path / "summary.md"
    code, _, _ = cli(capsys, "compare", a, b, "--atol", "1e-9", "--format", "markdown",
                     "-o", str(out_file))
    assert code == 1
    assert "| `test_model.py::test_noisy metric accuracy` |" in out_file.read_text()
    assert "**FAIL**" in out_file.read_text()


def test_a_check_that_starts_failing_fails_the_comparison(pytester, monkeypatch, capsys):
    pytester.makepyfile(test_model="""
        import os
        def test_a(metric_regression):
            metric_regression.check({"loss": float(os.environ.get("LOSS", "0.5"))})
    """)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    run(pytester, "--mlcheck-report", "good.json").assert_outcomes(passed=1)
    monkeypatch.setenv("LOSS", "0.7")
    run(pytester, "--mlcheck-report", "bad.json").assert_outcomes(failed=1)
    code, out, _ = cli(capsys, "compare", str(pytester.path / "good.json"),
                       str(pytester.path / "bad.json"))
    assert code == 1
    row = next(line for line in out.splitlines() if "metric loss" in line)
    assert "0.5" in row and "0.7" in row and "ok -> REGRESSED" in row and row.endswith("FAIL")
    # The same report compared with itself: nothing changed.
    code, out, _ = cli(capsys, "compare", str(pytester.path / "bad.json"),
                       str(pytester.path / "bad.json"))
    assert code == 0 and "0 of 1 checks in both reports changed" in out


def test_real_reports_validate_against_the_shipped_schema(pytester):
    pytester.makepyfile(test_model="""
        import numpy as np
        import pytest
        def test_metrics(metric_regression):
            metric_regression.check({"acc": 0.9, "nan_free": float("nan")})
        def test_repeated(metric_regression):
            metric_regression.check_repeated(lambda seed: {"acc": 0.9 + seed * 1e-4}, seeds=3)
        def test_array(metric_regression):
            metric_regression.check_array("x", np.arange(4, dtype=np.int64))
        def test_determinism(determinism):
            determinism.check(lambda: np.ones(3))
        @pytest.mark.skip(reason="skipped on purpose")
        def test_skipped():
            pass
    """)
    run(pytester, "--mlcheck-update", "--mlcheck-report", "r.json")
    data = json.loads((pytester.path / "r.json").read_text())
    jsonschema.Draft202012Validator.check_schema(report_schema())
    jsonschema.validate(data, report_schema())
    kinds = {r["kind"] for r in data["records"]}
    assert {"metric", "array", "determinism"} <= kinds
    assert data["tests"]["test_model.py::test_skipped"] == "skipped"
    assert data["suite"]["collected"] == 5 and data["suite"]["partial"] == []
    # A seeded fault in a report is caught by the schema, naming the key.
    data["records"][0]["verdict"] = 3
    broken = pytester.path / "broken.json"
    broken.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=r"broken\.json does not match the report schema "
                                          r"\(version 1\) at \['records'\]\[0\]\['verdict'\]"):
        load_report(broken)


def test_readers_reject_a_newer_major_version_and_non_reports(tmp_path, capsys):
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"schema_version": 2, "tool": "pytest-mlcheck",
                                 "environment": {}, "summary": {"total": 0}, "records": []}))
    code, _, err = cli(capsys, "compare", str(newer), str(newer))
    assert code == 2
    assert ("newer.json was written by a newer pytest-mlcheck (report schema version 2); this "
            "version reads schema version 1 only. Upgrade pytest-mlcheck") in err
    other = tmp_path / "other.json"
    other.write_text('{"tool": "something-else"}')
    with pytest.raises(ReportError, match="is not a pytest-mlcheck report"):
        load_report(other)
    torn = tmp_path / "torn.json"
    torn.write_text('{"schema_version": 1, "tool": "pytest-ml')
    with pytest.raises(ReportError, match=r"torn\.json is not JSON: .* at line 1, column"):
        load_report(torn)
    code, _, err = cli(capsys, "merge", str(tmp_path / "missing.json"), "-o",
                       str(tmp_path / "out.json"))
    assert code == 2 and "cannot read report" in err and "missing.json" in err


def test_module_entry_point_and_console_script_are_declared(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest_mlcheck", "compare", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--format {text,markdown}" in proc.stdout
    from pytest_mlcheck.baselines.codec import parse_toml

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    scripts = parse_toml(pyproject.read_text(), "pyproject.toml")["project"]["scripts"]
    assert scripts["mlcheck"] == "pytest_mlcheck.__main__:main"
