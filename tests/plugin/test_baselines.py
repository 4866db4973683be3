"""The baseline store: file layout, TOML round trips, comments, atomic writes, corrupt and
hand-edited files, unsafe names, pruning, and two pytest processes at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Imported once here, outside pytester's sys.modules snapshots (see test_metric_regression).
import hypothesis  # noqa: F401
import pytest_mlcheck.baselines  # noqa: F401
import pytest_mlcheck.environment  # noqa: F401
import pytest_mlcheck.metrics  # noqa: F401
import tomlkit  # noqa: F401
from pytest_mlcheck.baselines import (
    BaselineFileError,
    atomic_write_bytes,
    parse_toml,
    render_entry,
    toml_key,
)

try:  # in-process pytester runs must find torch already imported: it cannot load twice
    import torch  # noqa: F401
except ImportError:  # pragma: no cover
    pass


def toml_loads(text: str) -> dict:
    """Parse TOML on every supported Python (tomllib is 3.11+)."""
    return parse_toml(text, "test")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def toml_file(pytester: pytest.Pytester, stem: str = "test_model") -> Path:
    return pytester.path / "mlcheck_baselines" / f"{stem}.toml"


TWO_TESTS = """
    import os
    SCALE = float(os.environ.get("SCALE", "1"))
    def test_b(metric_regression):
        metric_regression.check({"loss": 0.25 * SCALE, "accuracy": 0.75})
    def test_a(metric_regression):
        metric_regression.check({"loss": 0.5})
"""


# ---- layout and format -------------------------------------------------------------------


def test_default_location_is_beside_the_module(pytester):
    pytester.mkpydir("pkg")
    (pytester.path / "pkg" / "test_deep.py").write_text(
        "def test_x(metric_regression):\n    metric_regression.check({'m': 1.0})\n")
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    assert (pytester.path / "pkg" / "mlcheck_baselines" / "test_deep.toml").exists()


def test_baseline_dir_ini_moves_files_and_keeps_module_paths(pytester):
    pytester.makeini("[pytest]\nmlcheck_baseline_dir = ci/baselines\n")
    pytester.mkpydir("pkg")
    (pytester.path / "pkg" / "test_deep.py").write_text(
        "def test_x(metric_regression):\n    metric_regression.check({'m': 1.0})\n")
    pytester.makepyfile(test_top="def test_y(metric_regression):\n"
                                 "    metric_regression.check({'m': 2.0})\n")
    result = run(pytester, "--mlcheck-update")
    result.assert_outcomes(passed=2)
    assert (pytester.path / "ci" / "baselines" / "pkg" / "test_deep.toml").exists()
    assert (pytester.path / "ci" / "baselines" / "test_top.toml").exists()
    assert not (pytester.path / "pkg" / "mlcheck_baselines").exists()
    run(pytester).assert_outcomes(passed=2)


def test_file_is_sorted_commented_and_floats_round_trip_exactly(pytester):
    values = [0.1 + 0.2, 1e-300, 123456789.12345679, -2.5e17, 1 / 3, 5e-324]
    metrics = ", ".join(f'"m{i}": {v!r}' for i, v in enumerate(values))
    pytester.makepyfile(test_model=f"""
        def test_z(metric_regression):
            metric_regression.check({{{metrics}}})
        def test_a(metric_regression):
            metric_regression.check({{"x": 1}})
    """)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=2)
    text = toml_file(pytester).read_text()
    assert text.startswith("# pytest-mlcheck baselines for test_model.py.")
    assert text.index("[test_a.default]") < text.index("[test_z.default]")
    data = toml_loads(text)
    stored = data["test_z"]["default"]["metrics"]
    assert [stored[f"m{i}"] for i in range(len(values))] == values  # exact, not approximate
    assert data["test_a"]["default"]["metrics"]["x"] == 1
    recorded = data["test_a"]["default"]["recorded_in"]
    assert set(recorded) == {"python", "numpy", "torch", "cuda", "device", "platform"}
    run(pytester).assert_outcomes(passed=2)


def test_comments_and_formatting_survive_an_update(pytester, monkeypatch):
    pytester.makepyfile(test_model=TWO_TESTS)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=2)
    path = toml_file(pytester)
    text = path.read_text()
    text = text.replace("[test_b.default]", "# reviewed in PR 42: loss went down\n[test_b.default]")
    text = text.replace("loss = 0.25", "loss = 0.25  # after the tokenizer fix")
    text = text.replace("accuracy = 0.75", "accuracy    =    0.75")
    path.write_text(text)
    monkeypatch.setenv("SCALE", "2")
    run(pytester).assert_outcomes(passed=1, failed=1)
    result = run(pytester, "--mlcheck-update")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["baselines written (1):",
                                 "  mlcheck_baselines/test_model.toml [[]test_b.default[]]"])
    new = path.read_text()
    assert "# reviewed in PR 42: loss went down\n[test_b.default]" in new
    assert "loss = 0.5  # after the tokenizer fix" in new
    assert "accuracy    =    0.75" in new
    # the other entry is untouched, byte for byte
    block = text[text.index("[test_a.default]"):text.index("# reviewed")]
    assert block in new
    run(pytester).assert_outcomes(passed=2)


def test_unchanged_values_do_not_rewrite_the_file(pytester):
    pytester.makepyfile(test_model=TWO_TESTS)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=2)
    path = toml_file(pytester)
    os.utime(path, (1_000_000, 1_000_000))
    before = path.read_bytes()
    result = run(pytester, "--mlcheck-update")
    result.assert_outcomes(passed=2)
    assert "baselines written" not in result.stdout.str()
    assert path.read_bytes() == before and path.stat().st_mtime == 1_000_000


def test_names_and_ids_with_odd_characters_cannot_escape_the_baseline_dir(pytester):
    pytester.makepyfile(test_model="""
        import numpy as np
        import pytest
        IDS = ["a b", "x.y", 'q"uote', "../../etc/passwd", "br[ack]et", "ünï€ode", "\\\\"]
        @pytest.mark.parametrize("tag", IDS)
        def test_odd(metric_regression, tag):
            metric_regression.check({tag: 1.0, "m.with/dots": 2.0}, name=tag)
            metric_regression.check_array("../" + tag, np.arange(3.0))
    """)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=7)
    base = pytester.path / "mlcheck_baselines"
    files = sorted(p.name for p in base.iterdir())
    assert len(files) == 8 and "test_model.toml" in files
    assert all(f == "test_model.toml" or (f.startswith("test_model-") and f.endswith(".npz"))
               for f in files)
    # Caches of other tools (__pycache__, .hypothesis, ...) may appear; nothing else may.
    ours = [p for p in pytester.path.rglob("*") if p.is_file()
            and not any(part.startswith((".", "__")) for part in p.relative_to(pytester.path).parts)]
    assert sorted(map(str, ours)) == sorted(
        [str(pytester.path / "test_model.py")] + [str(base / f) for f in files])
    for up in (pytester.path.parent, pytester.path.parent.parent):
        assert not (up / "etc").exists() and not list(up.glob("*.npz"))
    data = toml_loads((base / "test_model.toml").read_text())
    assert data["test_odd[../../etc/passwd]"]["../../etc/passwd"]["metrics"] == {
        "../../etc/passwd": 1.0, "m.with/dots": 2.0}
    run(pytester).assert_outcomes(passed=7)


def test_toml_helpers_quote_anything():
    for key in ["plain", "a b", 'q"', "\\", "\x7f", "tab\t", "ü", "a.b", "[x]", ""]:
        text = render_entry((key, key, "v=" + key), {"metrics": {key: 1.5}})
        data = parse_toml(text, "mem")
        assert data[key][key]["variants"]["v=" + key]["metrics"] == {key: 1.5}
    assert toml_key("plain_key-1") == "plain_key-1"
    with pytest.raises(ValueError, match="non-finite"):
        render_entry(("t", "g", ""), {"metrics": {"m": float("nan")}})


# ---- corrupt and hand-edited files -------------------------------------------------------


def test_corrupt_file_errors_with_location_and_is_never_overwritten(pytester):
    pytester.makepyfile(test_model=TWO_TESTS)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=2)
    path = toml_file(pytester)
    broken = path.read_text().replace("[test_b.default]", "<<<<<<< HEAD\n[test_b.default]")
    path.write_text(broken)
    line = broken.splitlines().index("<<<<<<< HEAD") + 1
    for args in ((), ("--mlcheck-update",)):
        result = run(pytester, *args)
        result.assert_outcomes(errors=2)
        result.stdout.fnmatch_lines([
            f"*BaselineFileError: corrupt baseline file mlcheck_baselines/test_model.toml, "
            f"line {line}: *",
            "*never overwrites a baseline file it cannot parse, not even with --mlcheck-update*",
        ])
        assert path.read_text() == broken


def test_parse_error_message_names_file_and_line():
    with pytest.raises(BaselineFileError, match=r"corrupt baseline file x\.toml, line 2: "):
        parse_toml("[a]\nb = = 1\n", "x.toml")


@pytest.mark.parametrize("edit, expected", [
    ('loss = "0.25"', "metric 'loss' is str '0.25', expected a finite number"),
    ("loss = nan", "metric 'loss' is float nan, expected a finite number"),
    ("loss = true", "metric 'loss' is bool True, expected a finite number"),
    ("loss = [0.25]", "metric 'loss' is list [[]0.25[]], expected a finite number"),
])
def test_wrong_types_from_hand_edits_name_the_entry(pytester, edit, expected):
    pytester.makepyfile(test_model=TWO_TESTS)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=2)
    path = toml_file(pytester)
    path.write_text(path.read_text().replace("loss = 0.25", edit))
    for args in ((), ("--mlcheck-update",)):
        result = run(pytester, *args)
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines([
            f"*BaselineEntryError: baseline entry [[]test_b.default[]] in "
            f"mlcheck_baselines/test_model.toml: {expected}*"])


def test_array_file_name_from_a_hand_edit_must_stay_in_the_directory(pytester):
    pytester.makepyfile(test_model="""
        import numpy as np
        def test_a(metric_regression):
            metric_regression.check_array("p", np.arange(3.0))
    """)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    path = toml_file(pytester)
    text = path.read_text()
    start = text.index('file = "') + len('file = "')
    name = text[start:text.index('"', start)]
    path.write_text(text.replace(name, "../../secret.npz"))
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*array file is str '../../secret.npz', expected a plain .npz "
                                 "file name beside the TOML file*"])


# ---- atomic writes -----------------------------------------------------------------------


def test_failure_at_os_replace_leaves_the_old_file_intact(pytester, monkeypatch):
    pytester.makepyfile(test_model=TWO_TESTS)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=2)
    path = toml_file(pytester)
    before = path.read_bytes()
    real_replace = os.replace

    def failing_replace(src, dst, *args, **kwargs):
        if str(dst).endswith(".toml"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", failing_replace)
    monkeypatch.setenv("SCALE", "3")
    result = run(pytester, "--mlcheck-update")
    assert result.ret != 0
    result.stdout.fnmatch_lines([
        "baseline files NOT written:",
        "*could not write mlcheck_baselines/test_model.toml: OSError: *No space left on device*"
        "the previous file is intact"])
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["test_model.toml"]  # no temp file


def test_atomic_write_kill_before_replace_keeps_old_file(tmp_path):
    target = tmp_path / "b.toml"
    target.write_text("old = 1\n")
    script = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from pathlib import Path
from pytest_mlcheck.baselines import atomic_write_bytes
os.replace = lambda *a, **k: os._exit(9)   # killed between writing and renaming
atomic_write_bytes(Path({str(target)!r}), b"new = 2\\n")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == 9, proc.stderr
    assert target.read_text() == "old = 1\n"
    atomic_write_bytes(target, b"new = 2\n")
    assert target.read_text() == "new = 2\n"


def test_two_pytest_processes_updating_one_file_lose_nothing(pytester, numpy_only):
    pytester.makepyfile(test_model="""
        import pytest
        @pytest.mark.parametrize("i", range(40))
        def test_even(metric_regression, i):
            metric_regression.check({"v": float(2 * i)})
        @pytest.mark.parametrize("i", range(40))
        def test_odd(metric_regression, i):
            metric_regression.check({"v": float(2 * i + 1)})
    """)
    # numpy-only (the numpy_only fixture's blocker plugin) to spare each process torch's import
    base = [sys.executable, "-m", "pytest", "-p", "mlcheck_block_torch", "-p", "no:cacheprovider",
            "-q", "--mlcheck-update"]
    procs = [subprocess.Popen(base + ["-k", k], cwd=pytester.path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT) for k in ("test_even", "test_odd")]
    outputs = [p.communicate(timeout=240)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    data = toml_loads(toml_file(pytester).read_text())
    assert len(data) == 80
    for i in range(40):
        assert data[f"test_even[{i}]"]["default"]["metrics"]["v"] == 2 * i
        assert data[f"test_odd[{i}]"]["default"]["metrics"]["v"] == 2 * i + 1


# ---- unused entries and pruning ----------------------------------------------------------


PRUNE_TESTS = """
    import os
    import numpy as np
    import pytest
    KEEP = os.environ.get("KEEP", "all")
    def test_kept(metric_regression):
        metric_regression.check({"m": 1.0})
    if KEEP == "all":
        def test_renamed(metric_regression):
            metric_regression.check({"m": 2.0})
            metric_regression.check_array("p", np.arange(3.0))
    @pytest.mark.skipif(KEEP != "all", reason="skipped now")
    def test_skipped(metric_regression):
        metric_regression.check({"m": 3.0})
    def test_groups(metric_regression):
        metric_regression.check({"m": 4.0})
        if KEEP == "all":
            metric_regression.check({"m": 5.0}, name="dropped")
"""


def test_prune_lists_then_deletes_unused_entries_only_after_a_whole_suite_run(
        pytester, monkeypatch):
    pytester.makepyfile(test_model=PRUNE_TESTS)
    pytester.makepyfile(test_gone="def test_x(metric_regression):\n"
                                  "    metric_regression.check({'m': 1.0})\n")
    run(pytester, "--mlcheck-update").assert_outcomes(passed=5)
    base = pytester.path / "mlcheck_baselines"
    npz = [p.name for p in base.glob("*.npz")]
    assert len(npz) == 1
    (pytester.path / "test_gone.py").unlink()
    monkeypatch.setenv("KEEP", "some")
    result = run(pytester)
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines([
        "unused baselines (5), no test used them in this whole-suite run; delete them with "
        "pytest --mlcheck-prune:",
        "  mlcheck_baselines/test_gone.toml [[]test_x.default[]]",
        "  mlcheck_baselines/test_model.toml [[]test_groups.dropped[]]",
        "  mlcheck_baselines/test_model.toml [[]test_renamed.default[]]",
        "  mlcheck_baselines/test_model.toml [[]test_renamed.p[]]",
        f"  mlcheck_baselines/{npz[0]} (orphaned array file)",
    ])
    assert "test_skipped" not in result.stdout.str().split("unused baselines")[1]
    # a partial run never prunes
    for args in (("-k", "kept"), ("test_model.py::test_kept",)):
        result = run(pytester, "--mlcheck-prune", *args)
        result.stdout.fnmatch_lines(["--mlcheck-prune did nothing: *; unused baselines are only "
                                     "known after a run of the whole suite."])
    assert (base / "test_gone.toml").exists() and (base / npz[0]).exists()
    result = run(pytester, "--mlcheck-prune")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["pruned unused baselines (6):",
                                 "  mlcheck_baselines/test_gone.toml [[]test_x.default[]]",
                                 "  mlcheck_baselines/test_gone.toml (file deleted)",
                                 "  mlcheck_baselines/test_model.toml [[]test_groups.dropped[]]",
                                 "  mlcheck_baselines/test_model.toml [[]test_renamed.default[]]",
                                 "  mlcheck_baselines/test_model.toml [[]test_renamed.p[]]",
                                 f"  mlcheck_baselines/{npz[0]} (file deleted)"])
    assert sorted(p.name for p in base.iterdir()) == ["test_model.toml"]
    data = toml_loads((base / "test_model.toml").read_text())
    assert set(data) == {"test_kept", "test_skipped", "test_groups"}
    assert set(data["test_groups"]) == {"default"}
    result = run(pytester)
    assert "unused baselines" not in result.stdout.str()


def test_failed_tests_keep_their_entries(pytester, monkeypatch):
    pytester.makepyfile(test_model="""
        import os
        def test_a(metric_regression):
            assert os.environ.get("BREAK") != "1", "fails before its check"
            metric_regression.check({"m": 1.0})
    """)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    monkeypatch.setenv("BREAK", "1")
    result = run(pytester, "--mlcheck-prune")
    result.assert_outcomes(failed=1)
    assert "unused" not in result.stdout.str() and "pruned" not in result.stdout.str()
    assert "test_a" in toml_file(pytester).read_text()


def test_merge_puts_a_new_test_in_sorted_place_and_keeps_comments():
    from pytest_mlcheck.baselines import Staged, merge_into_text

    text = (
        "# header\n\n"
        "[test_a.default]\nrecorded_in = {python = \"3.11\"}\n\n"
        "[test_a.default.metrics]\nloss = 0.5  # after the fix\nacc = 0.9\n\n"
        "# c is flaky, see #12\n"
        "[test_c.default]\nrecorded_in = {python = \"3.11\"}\n\n"
        "[test_c.default.metrics]\nloss = 0.1\n"
    )
    env = {"python": "3.12"}
    staged = {
        ("test_a", "default", ""): Staged({"recorded_in": env,
                                           "metrics": {"loss": 0.25, "f1": 0.5}}, {}),
        ("test_b", "default", ""): Staged({"recorded_in": env, "metrics": {"loss": 0.3}}, {}),
    }
    new = merge_into_text(text, staged, set(), "m.py")
    assert "loss = 0.25  # after the fix" in new and "acc = 0.9" not in new
    assert new.index("[test_a.default]") < new.index("[test_b.default]") \
        < new.index("# c is flaky, see #12") < new.index("[test_c.default]")
    data = toml_loads(new)
    assert data["test_a"]["default"] == {"recorded_in": env, "metrics": {"loss": 0.25, "f1": 0.5}}
    assert data["test_b"]["default"]["metrics"] == {"loss": 0.3}
    assert data["test_c"]["default"]["metrics"] == {"loss": 0.1}
    # a new group of an existing test and a multi-line array take the tomlkit path
    staged = {("test_c", "val", ""): Staged({"recorded_in": env, "metrics": {"x": 1.0}}, {})}
    odd = text + "\n[zz_notes]\nitems = [\n  1,\n]\n"
    data = toml_loads(merge_into_text(odd, staged, set(), "m.py"))
    assert data["test_c"]["val"]["metrics"] == {"x": 1.0} and data["zz_notes"]["items"] == [1]
    assert data["test_a"]["default"]["metrics"] == {"loss": 0.5, "acc": 0.9}
