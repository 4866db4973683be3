"""Baselines under pytest-xdist: workers write one file concurrently, the controller reports
what was written and decides pruning from the merged records."""

from __future__ import annotations


import pytest

from pytest_mlcheck.baselines import parse_toml

pytest.importorskip("xdist")

MANY = """
    import os
    import pytest
    ROUND = int(os.environ.get("ROUND", "0"))
    @pytest.mark.parametrize("i", range(200))
    def test_many(metric_regression, i):
        metric_regression.check({"value": i + ROUND / 10, "const": 1.0})
"""


def toml_loads(text: str) -> dict:
    """Parse TOML on every supported Python (tomllib is 3.11+)."""
    return parse_toml(text, "test")


@pytest.fixture
def run_xdist(numpy_only):
    """Run ``pytest -n 2`` in a subprocess; numpy-only, which also spares each worker the
    seconds of importing torch for the environment fingerprint."""

    def run(*args: str) -> pytest.RunResult:
        return numpy_only("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-n", "2",
                          *args)

    return run


def test_two_workers_updating_one_file_never_lose_an_entry(pytester, monkeypatch, run_xdist):
    pytester.makepyfile(test_many=MANY)
    path = pytester.path / "mlcheck_baselines" / "test_many.toml"
    for round_ in range(5):
        # every round changes every value, so both workers rewrite (and merge) the file
        monkeypatch.setenv("ROUND", str(round_))
        result = run_xdist("--mlcheck-update")
        result.assert_outcomes(passed=200)
        result.stdout.fnmatch_lines(["baselines written (200):"])
        data = toml_loads(path.read_text())
        assert len(data) == 200, f"round {round_}: {len(data)} entries"
        for i in range(200):
            assert data[f"test_many[{i}]"]["default"]["metrics"] == {
                "value": i + round_ / 10, "const": 1.0}, (round_, i)
        text = path.read_text()
        assert text.index('"test_many[0]"') < text.index('"test_many[1]"')
        assert data["test_many[0]"]["default"]["recorded_in"]["torch"] == "none"
    result = run_xdist()
    result.assert_outcomes(passed=200)
    result.stdout.fnmatch_lines(["400 metrics: 400 ok"])


def test_prune_under_xdist_is_decided_on_the_controller(pytester, monkeypatch, run_xdist):
    pytester.makepyfile(test_model="""
        import os
        import pytest
        N = int(os.environ.get("N", "10"))
        @pytest.mark.parametrize("i", range(N))
        def test_p(metric_regression, i):
            metric_regression.check({"m": float(i)})
        @pytest.mark.skip(reason="kept")
        def test_skipped(metric_regression):
            pass
    """)
    path = pytester.path / "mlcheck_baselines" / "test_model.toml"
    run_xdist("--mlcheck-update").assert_outcomes(passed=10, skipped=1)
    text = path.read_text()
    path.write_text(text + '\n[test_skipped.default.metrics]\nm = 1.0\n')
    monkeypatch.setenv("N", "6")
    result = run_xdist("--mlcheck-prune", "-k", "test_p")
    result.stdout.fnmatch_lines(["--mlcheck-prune did nothing: -k selected tests*"])
    assert len(toml_loads(path.read_text())) == 11
    result = run_xdist("--mlcheck-prune", "--deselect", "test_model.py::test_p[0]")
    result.stdout.fnmatch_lines(["--mlcheck-prune did nothing: 1 test(s) were deselected*"])
    result = run_xdist("--mlcheck-prune")
    result.assert_outcomes(passed=6, skipped=1)
    result.stdout.fnmatch_lines(["pruned unused baselines (4):"])
    data = toml_loads(path.read_text())
    assert set(data) == {f"test_p[{i}]" for i in range(6)} | {"test_skipped"}
