"""Hostile baseline and array files, odd values and odd encodings: each gives a clear error
naming the file, the entry or the metric, and the session still prints its summary and
writes its report."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

# Imported once here, outside pytester's sys.modules snapshots (see test_metric_regression).
import pytest_mlcheck.baselines  # noqa: F401
import pytest_mlcheck.metrics  # noqa: F401
from pytest_mlcheck.baselines import parse_toml

try:  # in-process pytester runs must find torch already imported: it cannot load twice
    import torch  # noqa: F401
except ImportError:  # pragma: no cover
    pass

TWO_TESTS = """
    import os
    SCALE = float(os.environ.get("SCALE", "1"))
    def test_b(metric_regression):
        metric_regression.check({"loss": 0.25 * SCALE, "accuracy": 0.75})
    def test_a(metric_regression):
        metric_regression.check({"loss": 0.5})
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def toml_path(pytester: pytest.Pytester) -> Path:
    return pytester.path / "mlcheck_baselines" / "test_model.toml"


# ---- item 11: unreadable baseline files ---------------------------------------------------


@pytest.mark.parametrize("damage, reason", [
    ("latin1", "not UTF-8 text (byte 0xe9 at offset *, line 2)*"),
    ("directory", "it is a directory, not a file*"),
])
def test_unreadable_baseline_is_a_test_error_naming_file_and_reason(pytester, damage, reason):
    pytester.makepyfile(test_model=TWO_TESTS)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=2)
    path = toml_path(pytester)
    if damage == "latin1":
        first, rest = path.read_bytes().split(b"\n", 1)
        path.write_bytes(first + b"\n# caf\xe9 (saved as Latin-1)\n" + rest)
    else:
        path.unlink()
        path.mkdir()
    before = path.read_bytes() if path.is_file() else None
    for args in ((), ("--mlcheck-update",)):
        result = run(pytester, "--mlcheck-report", "report.json", *args)
        result.assert_outcomes(errors=2)
        result.stdout.fnmatch_lines([
            f"*BaselineFileError: unreadable baseline file mlcheck_baselines/test_model.toml: "
            f"{reason}"])
        assert "INTERNALERROR" not in result.stdout.str()
        report = json.loads((pytester.path / "report.json").read_text())
        assert set(report["tests"].values()) == {"failed"}
        if before is not None:
            assert path.read_bytes() == before


def _run_without_root_powers(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run pytest in a subprocess that file permissions apply to, even as root."""
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    if hasattr(os, "getuid") and os.getuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: chmod 000 cannot be tested")
        # Root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH obeys file modes.
        cmd = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *cmd]
    return pytester.run(*cmd, timeout=300)


def test_baseline_without_read_permission_is_a_test_error(pytester):
    pytester.makepyfile(test_model=TWO_TESTS)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=2)
    path = toml_path(pytester)
    before = path.read_bytes()
    path.chmod(0o000)
    try:
        result = _run_without_root_powers(pytester, "--mlcheck-update", "--mlcheck-report",
                                          "report.json")
    finally:
        path.chmod(0o644)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*BaselineFileError: unreadable baseline file "
                                 "mlcheck_baselines/test_model.toml: Permission denied*"])
    assert "INTERNALERROR" not in result.stdout.str()
    assert json.loads((pytester.path / "report.json").read_text())["summary"]["total"] == 0
    assert path.read_bytes() == before


# ---- item 12: an unwritable report path ----------------------------------------------------


@pytest.mark.parametrize("target", ["a_directory", "a_file.txt/report.json"])
def test_unwritable_report_path_is_one_error_line_and_the_summary_is_printed(pytester, target):
    pytester.makepyfile(test_model=TWO_TESTS)
    (pytester.path / "a_directory").mkdir()
    (pytester.path / "a_file.txt").write_text("x")
    result = run(pytester, "--mlcheck-update", "--mlcheck-report", target)
    result.assert_outcomes(passed=2)
    assert result.ret == 1
    out = result.stdout.str()
    assert "Traceback" not in out and "INTERNALERROR" not in out
    result.stdout.fnmatch_lines([
        "*= mlcheck =*", "*test_model.py::test_b*loss*", "baselines written (2):*",
        f"could not write the JSON report --mlcheck-report {target}: *"])
    assert [line for line in out.splitlines() if "could not write the JSON report" in line] \
        and toml_path(pytester).exists()


# ---- item 13: unreadable .npz files ---------------------------------------------------------


ARRAY_TEST = """
    import numpy as np
    def test_pred(metric_regression):
        metric_regression.check_array("logits", np.arange(6.0).reshape(2, 3))
"""


@pytest.mark.parametrize("damage, reason", [
    ("npy", "it is a plain .npy file, not the .npz archive pytest-mlcheck writes"),
    ("truncated", "it is truncated or damaged (*"),
    ("empty", "the file is empty"),
    ("text", "it is not an .npz (zip) archive"),
])
def test_unreadable_array_file_errors_clearly_and_update_re_records_it(pytester, damage, reason):
    pytester.makepyfile(test_model=ARRAY_TEST)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    name = parse_toml(toml_path(pytester).read_text(), "t")["test_pred"]["logits"]["array"]["file"]
    npz = toml_path(pytester).parent / name
    good = npz.read_bytes()
    if damage == "npy":
        with open(npz, "wb") as fh:
            np.save(fh, np.arange(6.0))
    elif damage == "truncated":
        npz.write_bytes(good[: len(good) // 2])
    elif damage == "empty":
        npz.write_bytes(b"")
    else:
        npz.write_text("version https://git-lfs.github.com/spec/v1\n")
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"*BaselineEntryError: array file {name} of baseline entry [[]test_pred.logits[]] in "
        f"mlcheck_baselines/test_model.toml cannot be read: {reason}; re-record it with "
        f"pytest test_model.py::test_pred --mlcheck-update*"])
    for bad in ("TypeError", "BadZipFile", "EOFError"):
        assert bad not in result.stdout.str()
    result = run(pytester, "--mlcheck-update")
    result.assert_outcomes(passed=1)
    assert np.array_equal(np.load(npz)["array"], np.arange(6.0).reshape(2, 3))
    run(pytester).assert_outcomes(passed=1)


# ---- item 14: values out of range, odd names, tables in the wrong place --------------------


@pytest.mark.parametrize("edit, expected", [
    ("loss = 1" + "0" * 400, "metric 'loss' is int 1000000000*(401 characters), expected a "
                             "finite number (integers within 64 bits)"),
    ("loss = 9223372036854775808", "metric 'loss' is int 9223372036854775808, expected a "
                                   "finite number (integers within 64 bits)"),
    ("loss = {mean = 0.25, std = -1e300, n = 3, min = 0.0, max = 1.0}",
     "metric 'loss' n/std is tuple (3, -1e+300), expected n >= 1 and std >= 0"),
])
def test_values_out_of_range_in_the_file_are_clear_errors_not_overflow(pytester, edit, expected):
    pytester.makepyfile(test_model=TWO_TESTS)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=2)
    path = toml_path(pytester)
    path.write_text(path.read_text().replace("loss = 0.25", edit))
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        f"*BaselineEntryError: baseline entry [[]test_b.default[]] in "
        f"mlcheck_baselines/test_model.toml: {expected}*"])
    assert "OverflowError" not in result.stdout.str()


def test_a_std_near_the_float_range_in_the_file_compares_without_overflow(pytester):
    # std = 1e300 once gave an OverflowError (its square); the noise band is now computed
    # on scaled values, so a huge but finite std is a valid baseline.
    pytester.makepyfile(test_model="""
        import os
        MEAN = float(os.environ.get("MEAN", "1e300"))
        def test_b(metric_regression):
            metric_regression.check_repeated(lambda s: {"loss": MEAN}, seeds=[1, 2, 3])
    """)
    (pytester.path / "mlcheck_baselines").mkdir()
    (pytester.path / "mlcheck_baselines" / "test_model.toml").write_text(
        "[test_b.default.metrics]\n"
        "loss = {mean = 1e300, std = 1e300, n = 3, min = 0.0, max = 2e300}\n")
    strict = ("-W", "error::RuntimeWarning")
    run(pytester, *strict).assert_outcomes(passed=1)  # band 3 * 1e300 / sqrt(3)
    pytester._monkeypatch.setenv("MEAN", "2.7e300")
    run(pytester, *strict).assert_outcomes(passed=1)
    pytester._monkeypatch.setenv("MEAN", "2.8e300")
    result = run(pytester, *strict)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*loss*1e+300 ± 1e+300 (n=3)*2.8e+300*REGRESSED*"])
    assert "OverflowError" not in result.stdout.str()


def test_an_integer_toml_cannot_hold_is_refused_naming_the_metric(pytester):
    pytester.makepyfile(test_model="""
        def test_big(metric_regression):
            metric_regression.check({"tokens_seen": 2 ** 63})
        def test_fine(metric_regression):
            metric_regression.check({"tokens_seen": 2 ** 63 - 1, "steps": 10})
    """)
    result = run(pytester, "--mlcheck-update")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*ValueError: cannot record metric 'tokens_seen' of [[]test_big.default[]]: refusing to "
        "record the integer 9223372036854775808: TOML integers are 64-bit*"])
    data = parse_toml(toml_path(pytester).read_text(), "t")
    assert set(data) == {"test_fine"}
    stored = data["test_fine"]["default"]["metrics"]
    assert stored == {"tokens_seen": 2 ** 63 - 1, "steps": 10}
    assert type(stored["steps"]) is int  # integers stay integers in the file
    assert "steps = 10\n" in toml_path(pytester).read_text()


SURROGATE_TESTS = """
    def test_bad_name(metric_regression):
        metric_regression.check({"acc": 0.5, "f1\\udce9": 0.25})
    def test_good(metric_regression):
        metric_regression.check({"acc": 0.5})
"""


@pytest.mark.parametrize("update", [False, True])
def test_lone_surrogate_metric_name_fails_only_its_own_test(pytester, update):
    pytester.makepyfile(test_model=SURROGATE_TESTS)
    args = ("--mlcheck-update",) if update else ()
    result = run(pytester, *args)
    result.assert_outcomes(passed=1 if update else 0, failed=2 if not update else 1)
    result.stdout.fnmatch_lines(["*'f1\\udce9'*lone surrogate '\\udce9'*"])
    if update:
        assert set(parse_toml(toml_path(pytester).read_text(), "t")) == {"test_good"}


def test_lone_surrogate_metric_name_under_xdist_is_no_internal_error(pytester, numpy_only):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_model=SURROGATE_TESTS)
    result = numpy_only("-p", "no:cacheprovider", "-n", "2", "--mlcheck-update",
                        "--mlcheck-report", "report.json")
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1, failed=1)
    assert set(parse_toml(toml_path(pytester).read_text(), "t")) == {"test_good"}
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["tests"] == {"test_model.py::test_bad_name": "failed",
                               "test_model.py::test_good": "passed"}
    # The workers' view of the collected suite reaches the controller's report.
    assert report["suite"]["collected"] == 2 and len(report["suite"]["collected_sha256"]) == 64


@pytest.mark.parametrize("edit, expected", [
    ("[test_b.default.metricz]\nloss = 0.25\n",
     "baseline entry [[]test_b.default[]] in mlcheck_baselines/test_model.toml: unknown key(s) "
     "'metricz'*a typo?*"),
    ("[test_b]\ndefault = 3\n",
     "baseline file mlcheck_baselines/test_model.toml: [[]test_b.default[]] is int 3, where an "
     "entry table belongs*"),
    ('test_b = "gone"\n',
     "baseline file mlcheck_baselines/test_model.toml: [[]test_b[]] is str 'gone', where a "
     "table of the test's groups belongs*"),
])
def test_a_value_or_stray_table_where_an_entry_belongs_is_an_error_not_new(
        pytester, edit, expected):
    pytester.makepyfile(test_model=TWO_TESTS)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=2)
    path = toml_path(pytester)
    text = path.read_text()
    head = text[:text.index("[test_a.default]")]
    body_a = text[text.index("[test_a.default]"):text.index("[test_b.default]")]
    # test_b's entry is replaced; a bare key must come before the first table header.
    path.write_text(head + body_a + edit if edit.startswith("[") else head + edit + "\n" + body_a)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"*BaselineEntryError: {expected}"])
    assert "NEW" not in result.stdout.str()


# ---- item 15: line endings and the byte-order mark ------------------------------------------


def test_crlf_files_stay_crlf_and_a_bom_is_accepted_and_kept(pytester, monkeypatch):
    pytester.makepyfile(test_model=TWO_TESTS)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=2)
    path = toml_path(pytester)
    lf = path.read_bytes()
    for bom, recorded, scale in ((b"", "1", "3"), (b"\xef\xbb\xbf", "3", "2")):
        path.write_bytes(bom + lf.replace(b"\n", b"\r\n"))
        monkeypatch.setenv("SCALE", recorded)
        run(pytester).assert_outcomes(passed=2)  # read fine, BOM or not
        monkeypatch.setenv("SCALE", scale)
        result = run(pytester, "--mlcheck-update")
        result.assert_outcomes(passed=2)
        result.stdout.fnmatch_lines(["baselines written (1):"])
        new = path.read_bytes()
        assert new.startswith(bom + b"# pytest-mlcheck baselines")
        assert new.count(b"\n") == new.count(b"\r\n") > 5
        assert b"loss = " + (b"0.5" if bom else b"0.75") + b"\r\n" in new
        run(pytester).assert_outcomes(passed=2)
        lf = new[len(bom):].replace(b"\r\n", b"\n")
