"""The cache as untrusted input (issue 12 items 6, 9, 10 and 18): only a folder we
created, never the working directory without a project, entries of the wrong shape or
from someone else ignored, modes that follow the umask."""

from __future__ import annotations

import json
import os
import stat

import pytest
from lint_engine_testkit import project, run_cli, run_json, test_rules, write  # noqa: F401

from mlcheck_lint import cache as cache_mod

BAD = "def bad_a():\n    pass\n"
ARGS = ("--select", "MLC991", "--jobs", "1", ".")
CACHE = ".mlcheck-lint-cache"


def _stored(project):
    [path] = (project / CACHE).glob("*.json")
    return path


def test_an_existing_folder_that_is_not_ours_is_refused(project, test_rules, capsys):
    # Before: cache-dir = "tests" wrote a .gitignore of "*" into tests/, and git
    # stopped seeing the tests.
    write(project, {"tests/test_a.py": "def test_a():\n    pass\n", "a.py": BAD})
    (project / "pyproject.toml").write_text('[tool.mlcheck.lint]\ncache-dir = "tests"\n')
    code, out, err = run_cli(capsys, *ARGS)
    assert code == 2 and out == ""
    assert f"mlcheck-lint: error: {project / 'tests'}: cache-dir: exists and is not an mlcheck-lint " \
           f"cache" in err and "--no-cache" in err
    assert sorted(p.name for p in (project / "tests").iterdir()) == ["test_a.py"]
    assert run_cli(capsys, "--no-cache", *ARGS)[0] == 1  # --no-cache still works


@pytest.mark.parametrize("make", ["folder with a file", "file", "foreign tag"])
def test_cache_dir_on_the_command_line_must_be_new_or_ours(project, test_rules, capsys, make):
    target = project / "store"
    if make == "folder with a file":
        target.mkdir()
        (target / "keep.txt").write_text("mine\n")
    elif make == "file":
        target.write_text("notes\n")
    else:  # another tool's cache (ruff's tag does not name us)
        target.mkdir()
        (target / "CACHEDIR.TAG").write_text(cache_mod.CACHEDIR_SIGNATURE + "\n# ruff\n")
    write(project, {"a.py": BAD})
    code, _, err = run_cli(capsys, "--cache-dir", str(target), *ARGS)
    assert code == 2 and f"{target}: cache-dir: " in err
    assert not (target / ".gitignore").exists() if target.is_dir() else target.read_text() == "notes\n"


def test_a_new_folder_is_created_and_marked_then_reused(project, test_rules, capsys):
    write(project, {"a.py": BAD})
    (project / "pyproject.toml").write_text('[tool.mlcheck.lint]\ncache-dir = "build/lint"\n')
    assert run_cli(capsys, *ARGS)[0] == 1
    folder = project / "build" / "lint"
    assert cache_mod.is_ours(folder)
    assert (folder / ".gitignore").read_text().splitlines()[-1] == "*"
    assert not (project / "build" / ".gitignore").exists()  # only inside the folder we made
    _, data = run_json(capsys, *ARGS)
    assert data["summary"]["cached"] == 1
    assert [p.name for p in (project / "build").iterdir()] == ["lint"]  # no staging left


def test_an_empty_existing_folder_is_taken_and_marked(project, test_rules, capsys, tmp_path_factory):
    # ``--cache-dir "$(mktemp -d)"``: nothing in it for a .gitignore to hide.
    target = tmp_path_factory.mktemp("empty")
    write(project, {"a.py": BAD})
    assert run_cli(capsys, "--cache-dir", str(target), *ARGS)[0] == 1
    assert cache_mod.is_ours(target) and (target / ".gitignore").exists()
    _, data = run_json(capsys, "--cache-dir", str(target), *ARGS)
    assert data["summary"]["cached"] == 1


def test_a_cache_folder_from_the_previous_release_is_still_ours(project, test_rules, capsys):
    folder = project / CACHE
    folder.mkdir()
    (folder / "CACHEDIR.TAG").write_text(cache_mod.CACHEDIR_SIGNATURE + "\n# mlcheck-lint cache; safe to delete.\n")
    write(project, {"a.py": BAD})
    assert run_cli(capsys, *ARGS)[0] == 1 and list(folder.glob("*.json"))


def test_two_runs_creating_the_folder_at_once_both_succeed(tmp_path):
    folder = tmp_path / "c"
    cache_mod._create_folder(folder, private=False)
    cache_mod._create_folder(folder, private=False)  # the loser finds ours and goes on
    assert cache_mod.is_ours(folder) and sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_without_pyproject_the_cache_is_private_and_not_in_the_working_folder(
        tmp_path, test_rules, capsys, monkeypatch):
    work, xdg = tmp_path / "work", tmp_path / "xdg"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    write(work, {"a.py": BAD})
    assert run_cli(capsys, *ARGS)[0] == 1
    assert sorted(p.name for p in work.iterdir()) == ["a.py"]
    [folder] = (xdg / "mlcheck-lint").iterdir()
    assert folder == cache_mod.user_cache_dir(work)
    for level in (xdg / "mlcheck-lint", folder):
        assert stat.S_IMODE(os.stat(level).st_mode) == 0o700
    _, data = run_json(capsys, *ARGS)
    assert data["summary"]["cached"] == 1


def test_a_relative_xdg_cache_home_is_not_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", "cache")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_mod.user_cache_root() == tmp_path / ".cache" / "mlcheck-lint"


def _poison(data, how):
    entry = data["files"]["a.py"]
    finding = entry["findings"][0]
    if how == "files is a list":
        data["files"] = [entry]
    elif how == "entry is a list":
        data["files"]["a.py"] = [entry]
    elif how == "no findings key":
        del entry["findings"]
    elif how == "line is text":
        finding["line"] = "1"
    elif how == "no code":
        del finding["code"]
    elif how == "edit of four numbers":
        finding["fix"]["edits"] = [[1, 4, 1, 9]]
    elif how == "unknown safety":
        finding["fix"]["safety"] = "trust-me"
    elif how == "noqa is a dict":
        entry["noqa"] = {"1": "x"}
    elif how == "facts is a list":
        entry["facts"] = []
    elif how == "another file's path":
        finding["path"] = "../../etc/passwd"
    elif how == "errors recorded":
        entry["errors"] = [{"rule": "X", "path": "a.py", "message": "m"}]
    elif how == "top level is a list":
        return [data]
    elif how == "deeply nested":
        return "[" * 100_000 + "]" * 100_000
    return data


@pytest.mark.parametrize("how", [
    "files is a list", "entry is a list", "no findings key", "line is text", "no code",
    "edit of four numbers", "unknown safety", "noqa is a dict", "facts is a list",
    "another file's path", "errors recorded", "top level is a list", "deeply nested"])
def test_a_cache_entry_of_the_wrong_shape_is_ignored(project, test_rules, capsys, how):
    # Before: KeyError and friends from deep inside the engine.
    write(project, {"a.py": BAD})
    run_json(capsys, *ARGS)
    stored = _stored(project)
    poisoned = _poison(json.loads(stored.read_text()), how)
    stored.write_text(poisoned if isinstance(poisoned, str) else json.dumps(poisoned))
    code, data = run_json(capsys, *ARGS)
    assert code == 1 and data["summary"]["parsed"] == 1 and data["summary"]["cached"] == 0
    assert [(f["path"], f["code"], f["line"]) for f in data["findings"]] == [("a.py", "MLC991", 1)]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_a_cache_file_owned_by_another_user_is_ignored(project, test_rules, capsys):
    write(project, {"a.py": BAD})
    run_json(capsys, *ARGS)
    os.chown(_stored(project), 65534, 65534)
    _, data = run_json(capsys, *ARGS)
    assert data["summary"]["cached"] == 0


def test_a_world_writable_cache_file_is_ignored(project, test_rules, capsys):
    write(project, {"a.py": BAD})
    run_json(capsys, *ARGS)
    os.chmod(_stored(project), 0o666)
    _, data = run_json(capsys, *ARGS)
    assert data["summary"]["cached"] == 0


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o002, 0o664, 0o775), (0o077, 0o600, 0o700),
                                                       (0o022, 0o644, 0o755)])
def test_cache_files_follow_the_umask_and_are_still_used(project, test_rules, capsys, umask,
                                                          file_mode, dir_mode):
    # Before: 0600 whatever the umask, which a team folder shared by group cannot use.
    write(project, {"a.py": BAD})
    old = os.umask(umask)
    try:
        run_json(capsys, *ARGS)
        _, data = run_json(capsys, *ARGS)
    finally:
        os.umask(old)
    assert data["summary"]["cached"] == 1
    assert stat.S_IMODE(os.stat(_stored(project)).st_mode) == file_mode
    assert stat.S_IMODE(os.stat(project / CACHE).st_mode) == dir_mode


def test_an_entry_answers_only_for_the_full_content(project, test_rules, capsys):
    # A change in the last byte of a 2 MB file is a miss: the hash covers every byte.
    body = BAD + "#" * (2 * 1024 * 1024) + "\n"
    write(project, {"a.py": body})
    run_json(capsys, *ARGS)
    write(project, {"a.py": body[:-2] + "!\n"})
    _, data = run_json(capsys, *ARGS)
    assert data["summary"]["cached"] == 0 and data["summary"]["parsed"] == 1
    assert cache_mod.valid_entry("a.py", json.loads(_stored(project).read_text())["files"]["a.py"])
