"""``merge`` of shard reports and ``prune --reports``, on reports of real pytester runs:
a duplicate test id names both shards, and pruning refuses a partial merged run and
deletes exactly the unused entries of a whole one."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

# Imported once here, outside pytester's sys.modules snapshots (see test_metric_regression).
import pytest_mlcheck.baselines  # noqa: F401
import pytest_mlcheck.metrics  # noqa: F401
from pytest_mlcheck.__main__ import main
from pytest_mlcheck.baselines import parse_toml
from pytest_mlcheck.reports import report_schema
from pytest_mlcheck.reports.merge import merged_suite

try:  # in-process pytester runs must find torch already imported: it cannot load twice
    import torch  # noqa: F401
except ImportError:  # pragma: no cover
    pass

SUITE = """
    import os
    import numpy as np
    import pytest
    OLD = os.environ.get("OLD") == "1"

    @pytest.mark.parametrize("i", range(4))
    def test_shard(metric_regression, i):
        metric_regression.check({"m": float(i)})

    def test_array(metric_regression):
        metric_regression.check_array("x", np.arange(3.0))

    @pytest.mark.skip(reason="kept although it did not run")
    def test_skipped(metric_regression):
        pass

    if OLD:
        def test_renamed(metric_regression):
            metric_regression.check({"m": 9.0})
            metric_regression.check_array("y", np.ones(2))
"""

SHARDS = {"s1": "test_shard and (0 or 1) or test_skipped", "s2": "test_shard and (2 or 3) or array"}


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def sharded(pytester, monkeypatch):
    """Record every baseline (with an old test), then run the suite as two -k shards."""
    pytester.makepyfile(test_model=SUITE)
    pytester.makepyfile(test_removed="def test_x(metric_regression):\n"
                                     "    metric_regression.check({'m': 1.0})\n")
    monkeypatch.setenv("OLD", "1")
    run(pytester, "--mlcheck-update").assert_outcomes(passed=7, skipped=1)
    monkeypatch.delenv("OLD")
    (pytester.path / "test_removed.py").unlink()
    for name, keyword in SHARDS.items():
        run(pytester, "-k", keyword, "--mlcheck-report", f"{name}.json")
    return pytester


def entries(pytester: pytest.Pytester) -> set[str]:
    text = (pytester.path / "mlcheck_baselines" / "test_model.toml").read_text()
    data = parse_toml(text, "t")
    return {f"{t}.{g}" for t, groups in data.items() for g in groups}


def test_merge_joins_shards_into_one_valid_report(sharded, capsys):
    jsonschema = pytest.importorskip("jsonschema")
    path = sharded.path
    code, out, _ = cli(capsys, "merge", str(path / "s1.json"), str(path / "s2.json"),
                       "-o", str(path / "all.json"))
    assert code == 0, out
    assert "merged 2 report(s): 6 tests, 5 checks" in out and "a whole-suite run" in out
    merged = json.loads((path / "all.json").read_text())
    jsonschema.validate(merged, report_schema())
    assert len(merged["tests"]) == 6 and merged["summary"]["total"] == 5
    assert [s["source"] for s in merged["shards"]] == [str(path / "s1.json"),
                                                       str(path / "s2.json")]
    assert merged["suite"]["selection"] == [] and merged["suite"]["partial"] == []
    # One shard alone is a selection: the merged report says so.
    code, out, _ = cli(capsys, "merge", str(path / "s1.json"), "-o", str(path / "one.json"))
    one = json.loads((path / "one.json").read_text())
    assert one["suite"]["selection"] == ["the shards ran 3 of the 6 collected tests"]


def test_a_test_id_in_two_shards_is_an_error_naming_both(sharded, capsys):
    path = sharded.path
    shutil.copy(path / "s1.json", path / "s1-retry.json")
    code, _, err = cli(capsys, "merge", str(path / "s1.json"), str(path / "s2.json"),
                       str(path / "s1-retry.json"), "-o", str(path / "all.json"))
    assert code == 2
    assert (f"test id test_model.py::test_shard[0] is in two shards: {path / 's1.json'} and "
            f"{path / 's1-retry.json'}") in err
    assert not (path / "all.json").exists()


def test_prune_from_reports_refuses_a_partial_run_and_deletes_exactly_the_unused(
        sharded, capsys):
    path = sharded.path
    base = path / "mlcheck_baselines"
    before = entries(sharded)
    assert before == {"test_renamed.default", "test_renamed.y", "test_array.x",
                      *(f"test_shard[{i}].default" for i in range(4))}
    npz_before = sorted(p.name for p in base.glob("test_model-*.npz"))
    assert len(npz_before) == 2

    # One shard's report: refused, nothing deleted.
    code, _, err = cli(capsys, "prune", "--reports", str(path / "s1.json"))
    assert code == 1
    assert "refused, nothing deleted" in err and "covers only part of the suite: -k selected" in err
    # The merge of one shard only: refused too.
    cli(capsys, "merge", str(path / "s1.json"), "-o", str(path / "partial.json"))
    code, _, err = cli(capsys, "prune", "--reports", str(path / "partial.json"))
    assert code == 1 and "the shards ran 3 of the 6 collected tests" in err
    assert entries(sharded) == before and (base / "test_removed.toml").exists()

    # Dry run of the whole merged run lists, deletes nothing.
    cli(capsys, "merge", str(path / "s1.json"), str(path / "s2.json"), "-o", str(path / "all.json"))
    code, out, _ = cli(capsys, "prune", "--reports", str(path / "all.json"), "--dry-run")
    assert code == 0 and "would delete 4 unused baseline item(s)" in out
    assert entries(sharded) == before

    code, out, err = cli(capsys, "prune", "--reports", str(path / "all.json"))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("deleted 5 unused baseline item(s) under ")
    assert sorted(lines[1:]) == sorted([
        "  mlcheck_baselines/test_model.toml [test_renamed.default]",
        "  mlcheck_baselines/test_model.toml [test_renamed.y]",
        "  mlcheck_baselines/test_removed.toml [test_x.default]",
        "  mlcheck_baselines/test_removed.toml (file deleted)",
        f"  mlcheck_baselines/{next(n for n in npz_before if n not in kept_arrays(sharded))} "
        f"(file deleted)",
    ])
    assert entries(sharded) == before - {"test_renamed.default", "test_renamed.y"}
    assert not (base / "test_removed.toml").exists()
    assert sorted(p.name for p in base.glob("test_model-*.npz")) == sorted(kept_arrays(sharded))
    # The skipped test's shard counted: nothing of it was deleted, and the suite still passes.
    run(sharded).assert_outcomes(passed=5, skipped=1)


def test_prune_from_reports_refuses_a_shard_that_stopped_early(sharded, monkeypatch, capsys):
    path = sharded.path
    # s2 again, but a failure stops it early (-x), before every selected test ran.
    sharded.makepyfile(test_model=SUITE.replace('metric_regression.check({"m": float(i)})',
                                                'assert i != 2\n        metric_regression.check('
                                                '{"m": float(i)})'))
    run(sharded, "-k", SHARDS["s2"], "-x", "--mlcheck-report", "s2.json")
    cli(capsys, "merge", str(path / "s1.json"), str(path / "s2.json"), "-o", str(path / "all.json"))
    code, _, err = cli(capsys, "prune", "--reports", str(path / "all.json"))
    assert code == 1
    assert f"is not of a whole-suite run: {path / 's2.json'}: the session stopped early" in err


def kept_arrays(pytester: pytest.Pytester) -> list[str]:
    data = parse_toml((pytester.path / "mlcheck_baselines" / "test_model.toml").read_text(), "t")
    return [g["array"]["file"] for groups in data.values() for g in groups.values()
            if "array" in g]


# ---- docs/report.md and the schema agree --------------------------------------------------

REPORT_DOC = Path(__file__).resolve().parents[2] / "docs" / "report.md"


def _doc_tables() -> dict[str, dict[str, bool]]:
    """Return each table of docs/report.md as key -> required, by section."""
    tables: dict[str, dict[str, bool]] = {}
    section = ""
    for line in REPORT_DOC.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^## (?:`(\w+)`|(.+))$", line)
        if heading:
            section = heading.group(1) or heading.group(2).strip()
            continue
        row = re.match(r"^\| `(\w+)` \| (yes|no) \|", line)
        if row:
            tables.setdefault(section, {})[row.group(1)] = row.group(2) == "yes"
    return tables


def test_report_doc_lists_exactly_the_schema_keys_and_which_are_required():
    schema = report_schema()
    shard = schema["properties"]["shards"]["items"]
    expected = {
        "Top-level keys": schema,
        "records": schema["$defs"]["record"],
        "suite": schema["$defs"]["suite"],
        "shards": shard,
    }
    tables = _doc_tables()
    assert set(tables) == set(expected)
    for section, part in expected.items():
        want = {key: key in part.get("required", ()) for key in part["properties"]}
        assert tables[section] == want, section


def test_report_doc_examples_are_valid_reports():
    jsonschema = pytest.importorskip("jsonschema")
    blocks = re.findall(r"```json\n(.*?)```", REPORT_DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 2
    single, merged = (json.loads(b) for b in blocks)
    for example in (single, merged):
        jsonschema.validate(example, report_schema())
    assert {"tests", "suite"} <= set(single) and "shards" not in single
    assert {"tests", "suite", "shards"} <= set(merged)
    # The merged example is what merge makes of its shards (tests, ownership, suite).
    assert set(merged["tests"]) == {t for s in merged["shards"] for t in s["tests"]}
    assert merged["suite"] == merged_suite(merged["shards"], merged["tests"])
