"""The plugin's basics in real sessions: the mlcheck marker, the header line, the summary
section and the JSON report, alone and under pytest-xdist."""

from __future__ import annotations

import json

import jsonschema
import pytest

# Imported once here, outside pytester's sys.modules snapshots (see test_metric_regression).
import hypothesis  # noqa: F401
import pytest_mlcheck.environment  # noqa: F401
import pytest_mlcheck.metrics  # noqa: F401
from pytest_mlcheck.environment import fingerprint

REPORT_SCHEMA = {
    "type": "object",
    "required": ["schema_version", "tool", "environment", "summary", "records"],
    "properties": {
        "schema_version": {"const": 1},
        "tool": {"const": "pytest-mlcheck"},
        "environment": {
            "type": "object",
            "required": ["python", "numpy", "torch", "cuda", "device", "platform"],
            "additionalProperties": {"type": "string"},
        },
        "summary": {"type": "object", "required": ["total"],
                    "additionalProperties": {"type": "integer"}},
        "records": {"type": "array", "items": {
            "type": "object",
            "required": ["kind", "nodeid", "name", "group", "verdict", "values", "message"],
            "properties": {
                "kind": {"enum": ["metric", "array", "determinism", "shape", "train", "leakage",
                                  "budget", "guard"]},
                "nodeid": {"type": "string", "minLength": 1},
                "name": {"type": "string"},
                "group": {"type": "string"},
                "verdict": {"enum": ["ok", "improved", "written", "REGRESSED", "NEW", "MISSING",
                                     "NON-FINITE", "FAILED", "ERROR"]},
                "values": {"type": "object"},
                "message": {"type": "string"},
            },
        }},
        "baselines_written": {"type": "array", "items": {"type": "string"}},
    },
}

METRIC_TESTS = """
    import pytest
    @pytest.mark.parametrize("i", range(6))
    def test_param(metric_regression, i):
        metric_regression.check({"acc": 0.5 + i / 100, "loss": 1.0 - i / 100},
                                higher_is_better=["acc"])
    @pytest.mark.mlcheck
    def test_slow(metric_regression):
        metric_regression.check({"acc": 0.9})
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def test_mlcheck_marked_tests_are_skipped_without_the_flag(pytester):
    pytester.makepyfile(test_model="""
        import pytest
        @pytest.mark.mlcheck
        def test_slow():
            pass
        def test_fast():
            pass
    """)
    result = run(pytester, "-rs", "--strict-markers")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED [[]1[]] test_model.py:*: ML check: run pytest --mlcheck"])
    result = run(pytester, "--mlcheck", "--strict-markers", "-W", "error")
    result.assert_outcomes(passed=2)


def test_markers_are_registered(pytester):
    result = run(pytester, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.mlcheck: a slow ML check; runs only with "
                                 "pytest --mlcheck."])


def test_header_shows_the_environment_fingerprint_only_with_the_flag(pytester):
    pytester.makepyfile(test_model="def test_x():\n    pass\n")
    info = fingerprint()
    result = run(pytester, "--mlcheck")
    result.stdout.fnmatch_lines([f"mlcheck: python {info['python']}, numpy {info['numpy']}, "
                                 f"*device {info['device']}, platform {info['platform']}*"])
    if info["torch"] != "none":
        result.stdout.fnmatch_lines([f"mlcheck: *torch {info['torch']} (*"])
    assert "mlcheck: python" not in run(pytester).stdout.str()


def test_no_summary_section_when_no_check_ran(pytester):
    pytester.makepyfile(test_model="def test_x():\n    pass\n")
    result = run(pytester, "--mlcheck")
    assert "= mlcheck =" not in result.stdout.str()


def test_summary_section_has_a_row_per_metric_and_a_count_line(pytester):
    pytester.makepyfile(test_model=METRIC_TESTS)
    run(pytester, "--mlcheck", "--mlcheck-update").assert_outcomes(passed=7)
    pytester.makepyfile(test_model=METRIC_TESTS.replace("0.5 + i / 100", "0.5 + i / 100 "
                                                        "+ (0.2 if i == 0 else -0.2 if i == 1 "
                                                        "else 0)"))
    result = run(pytester, "--mlcheck")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines([
        "*= mlcheck =*",
        "test*metric*baseline*current*Δ*verdict",
        "*test_param[[]0[]]*acc*0.5*0.7*0.2 (40%)*improved",
        "*test_param[[]1[]]*acc*0.51*0.31*REGRESSED",
        "13 metrics: 11 ok, 1 improved, 1 regressed",
    ])


def test_json_report_schema(pytester):
    pytester.makepyfile(test_model=METRIC_TESTS)
    report = pytester.path / "out" / "report.json"
    run(pytester, "--mlcheck", "--mlcheck-update", f"--mlcheck-report={report}")
    data = json.loads(report.read_text())
    jsonschema.validate(data, REPORT_SCHEMA)
    assert data["summary"] == {"total": 13, "written": 13}
    assert len(data["baselines_written"]) == 7
    run(pytester, "--mlcheck", f"--mlcheck-report={report}").assert_outcomes(passed=7)
    data = json.loads(report.read_text())
    jsonschema.validate(data, REPORT_SCHEMA)
    assert data["environment"] == fingerprint()
    rec = next(r for r in data["records"] if r["nodeid"] == "test_model.py::test_param[2]"
               and r["name"] == "acc")
    assert rec["kind"] == "metric" and rec["verdict"] == "ok" and rec["group"] == ""
    values = rec["values"]
    assert values["baseline"] == values["current"] == 0.52 and values["delta"] == 0.0
    assert values["direction"] == "higher" and values["band"] > 0
    assert values["file"] == "mlcheck_baselines/test_model.toml"
    assert values["entry"] == '["test_param[2]".default]'


def test_records_and_summary_are_merged_under_xdist(pytester, numpy_only):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_model=METRIC_TESTS)
    report = pytester.path / "report.json"
    single = pytester.path / "single.json"
    run(pytester, "--mlcheck", "--mlcheck-update").assert_outcomes(passed=7)
    run(pytester, "--mlcheck", f"--mlcheck-report={single}").assert_outcomes(passed=7)
    # numpy-only: spares the controller the seconds of importing torch for the header
    result = numpy_only("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-n", "2",
                        "--mlcheck", f"--mlcheck-report={report}")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(["13 metrics: 13 ok"])
    data = json.loads(report.read_text())
    jsonschema.validate(data, REPORT_SCHEMA)

    def key(r):
        return (r["nodeid"], r["group"], r["name"])

    one = sorted(json.loads(single.read_text())["records"], key=key)
    assert sorted(data["records"], key=key) == one


def test_loading_the_plugin_imports_no_heavy_library():
    """pytest loads the plugin in every session, ML or not: it must stay cheap."""
    import subprocess
    import sys

    code = ("import sys, pytest_mlcheck, pytest_mlcheck.plugin; "
            "print(sorted(m for m in ('numpy', 'torch', 'hypothesis', 'libcst', 'tomlkit', "
            "'filelock', 'mlcheck_lint') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
