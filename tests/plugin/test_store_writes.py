"""The store's write protocol: arrays and TOML commit together, only our own files are
touched, locks and caches stay private to the user, and file modes follow the umask."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Imported once here, outside pytester's sys.modules snapshots (see test_metric_regression).
import pytest_mlcheck.baselines  # noqa: F401
import pytest_mlcheck.metrics  # noqa: F401
from pytest_mlcheck.baselines import parse_toml
from pytest_mlcheck.baselines.state_dir import user_state_dir

try:  # in-process pytester runs must find torch already imported: it cannot load twice
    import torch  # noqa: F401
except ImportError:  # pragma: no cover
    pass


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


ARRAYS = """
    import os
    import numpy as np
    SCALE = float(os.environ.get("SCALE", "1"))
    def test_pred(metric_regression):
        metric_regression.check_array("logits", SCALE * np.arange(6.0).reshape(2, 3))
"""


def base_dir(pytester: pytest.Pytester) -> Path:
    return pytester.path / "mlcheck_baselines"


def named_array(pytester: pytest.Pytester) -> str:
    data = parse_toml((base_dir(pytester) / "test_model.toml").read_text(), "t")
    return data["test_pred"]["logits"]["array"]["file"]


# ---- item 1: arrays and the TOML file commit together ------------------------------------


def test_a_failed_toml_write_keeps_the_old_array_so_a_regression_still_fails(
        pytester, monkeypatch):
    pytester.makepyfile(test_model=ARRAYS)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    old_name = named_array(pytester)
    old_bytes = (base_dir(pytester) / old_name).read_bytes()
    toml_before = (base_dir(pytester) / "test_model.toml").read_bytes()

    real_replace = os.replace

    def full_disk_at_the_toml(src, dst, *args, **kwargs):
        if str(dst).endswith(".toml"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full_disk_at_the_toml)
    monkeypatch.setenv("SCALE", "2")
    result = run(pytester, "--mlcheck-update")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*could not write mlcheck_baselines/test_model.toml*"])
    monkeypatch.setattr(os, "replace", real_replace)
    # The TOML file and the array it names are the old ones; the new array is gone.
    assert (base_dir(pytester) / "test_model.toml").read_bytes() == toml_before
    assert sorted(p.name for p in base_dir(pytester).iterdir()) == sorted(
        ["test_model.toml", old_name])
    assert (base_dir(pytester) / old_name).read_bytes() == old_bytes
    # So the changed array is still caught (it used to pass against an overwritten .npz).
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*array 'logits' of test_model.py::test_pred differs*"])

    # A successful update names a new array file, then deletes the old one.
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    new_name = named_array(pytester)
    assert new_name != old_name
    assert sorted(p.name for p in base_dir(pytester).iterdir()) == sorted(
        ["test_model.toml", new_name])
    run(pytester).assert_outcomes(passed=1)


def test_array_names_hash_the_content_and_an_unchanged_array_keeps_its_file(pytester):
    pytester.makepyfile(test_model=ARRAYS)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    name = named_array(pytester)
    path = base_dir(pytester) / name
    os.utime(path, (1_000_000, 1_000_000))
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    assert named_array(pytester) == name and path.stat().st_mtime == 1_000_000


# ---- item 3: only our own files are written or pruned ------------------------------------


def test_baseline_dir_dot_with_prune_never_touches_a_foreign_toml_file(pytester):
    pytester.makeini("[pytest]\nmlcheck_baseline_dir = .\n")
    tests = pytester.mkpydir("tests")
    (tests / "test_model.py").write_text(
        "def test_a(metric_regression):\n    metric_regression.check({'m': 1.0})\n")
    # Another tool's file whose tables even look like a baseline entry; no settings.py.
    foreign = tests / "settings.toml"
    foreign.write_text('[db.default]\nrecorded_in = {}\n\n[db.default.metrics]\nport = 5432\n')
    before = foreign.read_bytes()
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    assert (tests / "test_model.toml").exists()
    result = run(pytester, "--mlcheck-prune")
    result.assert_outcomes(passed=1)
    assert "settings.toml" not in result.stdout.str()
    assert foreign.read_bytes() == before


def test_update_refuses_to_write_a_file_without_our_header(pytester):
    pytester.makepyfile(test_model="def test_a(metric_regression):\n"
                                   "    metric_regression.check({'m': 1.0})\n")
    path = base_dir(pytester) / "test_model.toml"
    path.parent.mkdir()
    path.write_text("# some other tool's settings\n[server]\nport = 80\n")
    before = path.read_bytes()
    result = run(pytester, "--mlcheck-update")
    assert result.ret != 0
    result.stdout.fnmatch_lines([
        "baseline files NOT written:",
        "*mlcheck_baselines/test_model.toml does not start with the line "
        "'# pytest-mlcheck baselines for ...', so it may belong to another tool*"])
    assert path.read_bytes() == before


# ---- item 6: locks and caches are private to the user ------------------------------------


def test_locks_and_parse_cache_live_in_a_private_per_user_directory(pytester):
    # Big enough (> 20,000 characters) for the parse cache to be used.
    pytester.makepyfile(test_model="""
        import os
        SCALE = float(os.environ.get("SCALE", "1"))
        def test_big(metric_regression):
            metric_regression.check({f"metric_{i:04d}": SCALE * i for i in range(1500)})
    """)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    home = pytester.path / ".cache" / "pytest-mlcheck"  # pytester points HOME at its folder
    for kind in ("locks", "cache"):
        assert stat.S_IMODE((home / kind).stat().st_mode) == 0o700
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert list((home / "locks").glob("*.lock"))
    run(pytester).assert_outcomes(passed=1)  # parsed, and cached
    assert list((home / "cache").glob("*.json"))


def test_a_cache_planted_in_the_shared_temp_dir_cannot_make_a_regression_pass(
        pytester, monkeypatch):
    pytester.makepyfile(test_model="""
        import os
        SCALE = float(os.environ.get("SCALE", "1"))
        def test_big(metric_regression):
            metric_regression.check({f"metric_{i:04d}": SCALE * i for i in range(1500)})
    """)
    run(pytester, "--mlcheck-update").assert_outcomes(passed=1)
    path = base_dir(pytester) / "test_model.toml"
    text = path.read_text()
    data = parse_toml(text, "t")
    data["test_big"]["default"]["metrics"] = {f"metric_{i:04d}": 2.0 * i for i in range(1500)}
    # Where the old versions read their cache from: shared by every user of the machine.
    digest = hashlib.sha256(os.path.realpath(str(path)).encode()).hexdigest()[:24]
    shared = Path(tempfile.gettempdir()) / "pytest-mlcheck-cache"
    shared.mkdir(exist_ok=True)
    planted = shared / f"{digest}.json"
    planted.write_text(json.dumps({"sha256": hashlib.sha256(text.encode()).hexdigest(),
                                   "data": data}))
    try:
        monkeypatch.setenv("SCALE", "2")
        run(pytester).assert_outcomes(failed=1)
    finally:
        planted.unlink()


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0,
                    reason="needs root to hand a directory to another user")
def test_a_state_dir_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    theirs = tmp_path / "pytest-mlcheck"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 65534, 65534)
    found = user_state_dir("locks")
    assert theirs not in found.parents
    assert found.parent.name == f"pytest-mlcheck-{os.getuid()}"
    assert stat.S_IMODE(found.stat().st_mode) == 0o700


# ---- item 10: modes follow the umask, and a replaced file keeps its mode ----------------


def test_new_files_respect_the_umask_and_rewrites_keep_the_mode(pytester, monkeypatch):
    pytester.makepyfile(test_model=ARRAYS)
    old = os.umask(0o002)
    try:
        run(pytester, "--mlcheck-update", "--mlcheck-report", "report.json").assert_outcomes(
            passed=1)
        toml = base_dir(pytester) / "test_model.toml"
        npz = base_dir(pytester) / named_array(pytester)
        for path in (toml, npz, pytester.path / "report.json"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o664, path
        toml.chmod(0o640)
        (pytester.path / "report.json").chmod(0o600)
        monkeypatch.setenv("SCALE", "3")
        run(pytester, "--mlcheck-update", "--mlcheck-report", "report.json").assert_outcomes(
            passed=1)
        assert stat.S_IMODE(toml.stat().st_mode) == 0o640
        assert stat.S_IMODE((pytester.path / "report.json").stat().st_mode) == 0o600
        new_npz = base_dir(pytester) / named_array(pytester)
        assert new_npz != npz and stat.S_IMODE(new_npz.stat().st_mode) == 0o664
    finally:
        os.umask(old)
    assert np.load(new_npz)["array"][1, 2] == 15.0
