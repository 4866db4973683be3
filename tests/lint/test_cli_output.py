"""The command line's output and flags as ruff users expect them (issue 9 item 5), exit
code 2 for an internal error (issue 12 item 19), --jobs capped at the cores and explicit
files always linted (issue 12 item 18)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from lint_engine_testkit import project, run_cli, run_json, test_rules, write  # noqa: F401

from mlcheck_lint import cli, engine

BAD = "def bad_a():\n    print(1)\n"


def test_clean_run_says_all_checks_passed_and_quiet_silences_it(project, test_rules, capsys):
    write(project, {"a.py": "def fine():\n    pass\n"})
    assert run_cli(capsys, "--select", "MLC991", ".") == (0, "All checks passed!\n", "")
    assert run_cli(capsys, "--select", "MLC991", "--quiet", ".") == (0, "", "")
    assert run_cli(capsys, "--select", "MLC991", "-q", "--statistics", ".") == (0, "", "")
    # A machine format stays pure: no sentence in the JSON, SARIF or annotations.
    assert run_cli(capsys, "--select", "MLC991", "--output-format", "github", ".") == (0, "", "")


def test_quiet_prints_findings_only(project, test_rules, capsys):
    write(project, {"a.py": BAD})
    code, out, err = run_cli(capsys, "--select", "MLC991", "--quiet", ".")
    assert code == 1 and out == "a.py:1:5: MLC991 [*] function `bad_a` is bad\n" and err == ""
    code, out, err = run_cli(capsys, "--select", "MLC991", "--quiet", "--fix", ".")
    assert code == 0 and out == "" and err == ""
    assert (project / "a.py").read_text() == "def good_a():\n    print(1)\n"


def test_a_run_with_an_internal_error_does_not_say_all_checks_passed(project, test_rules, capsys):
    write(project, {"a.py": "CRASH = 1\n"})
    code, out, err = run_cli(capsys, "--select", "MLC993", ".")
    assert code == 2 and "All checks passed" not in out and "internal error in a.py" in err


def test_output_format_is_primary_and_format_an_alias(project, test_rules, capsys):
    write(project, {"a.py": BAD})
    one = run_cli(capsys, "--select", "MLC991", "--output-format", "json", "--no-cache", ".")
    two = run_cli(capsys, "--select", "MLC991", "--format", "json", "--no-cache", ".")
    assert one[0] == two[0] == 1 and one[1] == two[1] and '"schema_version": 1' in one[1]
    assert "--output-format" in cli.build_parser().format_help()
    code, _, err = run_cli(capsys, "--output-format", "markdown", ".")
    assert code == 2 and "--output-format: markdown is only for --list-rules" in err


def test_statistics_end_with_the_total(project, test_rules, capsys):
    write(project, {"a.py": BAD, "b.py": "def bad_b():\n    pass\n"})
    code, out, _ = run_cli(capsys, "--select", "MLC991", "--statistics", ".")
    assert code == 1
    assert out == "     2  MLC991  [*] function named bad_*\nFound 2 findings (2 fixable with --fix).\n"
    # With a machine format on stdout the table and its total go to stderr.
    code, out, err = run_cli(capsys, "--select", "MLC991", "--statistics", "--output-format", "json", ".")
    assert err.splitlines()[-1] == "Found 2 findings (2 fixable with --fix)."


def test_show_fixes_lists_the_fixes_applied(project, test_rules, capsys):
    write(project, {"a.py": "def bad_a():\n    def bad_b():\n        print(1)\n", "b.py": BAD})
    code, out, err = run_cli(capsys, "--select", "MLC991,MLC992", "--fix", "--show-fixes", ".")
    assert out.startswith("Fixed 3 findings:\n- a.py:\n    2 \u00d7 MLC991 (bad-name)\n"
                          "- b.py:\n    1 \u00d7 MLC991 (bad-name)\n")
    assert "b.py:2:5: MLC992 print call" in out and "Fixed 3 findings in 2 files." in err
    assert (project / "a.py").read_text() == "def good_a():\n    def good_b():\n        print(1)\n"
    # Nothing left to fix: the listing says so instead of staying silent.
    code, out, _ = run_cli(capsys, "--select", "MLC991", "--fix", "--show-fixes", ".")
    assert code == 0 and out == "No findings fixed.\nAll checks passed!\n"


def test_show_fixes_without_fix_describes_each_fix(project, test_rules, capsys):
    write(project, {"a.py": BAD})
    _, out, _ = run_cli(capsys, "--select", "MLC991,MLC992", "--show-fixes", ".")
    assert out.splitlines()[:4] == [
        "a.py:1:5: MLC991 [*] function `bad_a` is bad",
        "    = fix (safe, --fix): rename to good_a",
        "a.py:2:5: MLC992 print call",
        "    = fix (unsafe, --fix --unsafe-fixes): call log"]


def test_diff_shows_only_safe_fixes_unless_unsafe_fixes(project, test_rules, capsys):
    write(project, {"a.py": BAD})
    code, out, err = run_cli(capsys, "--select", "MLC991,MLC992", "--diff", ".")
    assert code == 1
    assert out == ("--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n-def bad_a():\n+def good_a():\n"
                   "     print(1)\n")
    assert err == "Would fix 1 finding in 1 file (1 more fix with --diff --unsafe-fixes).\n"
    code, out, err = run_cli(capsys, "--select", "MLC991,MLC992", "--diff", "--unsafe-fixes",
                             "--show-fixes", ".")
    assert "+def good_a():\n+    log(1)\n" in out
    assert err == ("Would fix 2 findings:\n- a.py:\n    1 \u00d7 MLC991 (bad-name)\n"
                   "    1 \u00d7 MLC992 (print-call)\nWould fix 2 findings in 1 file.\n")
    assert (project / "a.py").read_text() == BAD
    write(project, {"a.py": "def good():\n    print(1)\n"})
    code, out, err = run_cli(capsys, "--select", "MLC991,MLC992", "--diff", ".")
    assert (code, out) == (0, "") and err == "No fixes available (1 more fix with --diff --unsafe-fixes).\n"


def test_an_uncaught_internal_error_exits_2_not_1(project, test_rules, capsys, monkeypatch):
    write(project, {"a.py": BAD})

    def broken(*args, **kwargs):
        raise KeyError("files")

    monkeypatch.setattr(engine, "run", broken)
    code, out, err = run_cli(capsys, "--select", "MLC991", ".")
    assert code == 2 and out == ""
    assert err.startswith("mlcheck-lint: internal error: KeyError: 'files'\nThis is a bug in mlcheck-lint")
    assert "Traceback (most recent call last):" in err and "in broken" in err


def test_an_internal_error_exits_2_from_the_installed_command(tmp_path):
    # The real process: before the fix, Python's own handler printed the traceback and
    # exited 1, which CI reads as "findings".
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "a.py").write_text("x = 1\n")
    code = ("import sys, mlcheck_lint.engine as e\n"
            "def boom(*a, **k): raise MemoryError('simulated')\n"
            "e.run = boom\n"
            "from mlcheck_lint.cli import main\n"
            "sys.exit(main(['--no-cache', '.']))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "internal error: MemoryError: simulated" in proc.stderr


def test_jobs_is_capped_at_the_cores(project, test_rules, capsys, monkeypatch):
    write(project, {f"m{i}.py": BAD for i in range(4)})
    seen = []
    real = engine.run
    monkeypatch.setattr(engine, "run", lambda *a, **k: seen.append(k["jobs"]) or real(*a, **k))
    monkeypatch.setattr(engine, "default_jobs", lambda: 2)
    code, _ = run_json(capsys, "--select", "MLC991", "--jobs", "9999", "--no-cache", ".")
    assert code == 1 and seen == [2]
    code, _ = run_json(capsys, "--select", "MLC991", "--jobs", "1", "--no-cache", ".")
    assert seen == [2, 1]


@pytest.mark.parametrize("name, content, expected", [
    ("tool", "#!/usr/bin/env python3\ndef bad_a():\n    pass\n", ("MLC991", 2)),
    ("script.pyw", "def bad_a():\n    pass\n", ("MLC991", 1)),
    ("data.bin", b"\x00\x01\x02", ("MLC000", 1)),
])
def test_an_explicitly_named_file_is_always_linted(project, test_rules, capsys, name, content, expected):
    # Before: a file without .py was silently skipped and the run exited 0.
    write(project, {name: content})
    code, data = run_json(capsys, "--select", "MLC000,MLC991", "--no-cache", name)
    assert code == 1
    assert [(f["code"], f["line"]) for f in data["findings"]] == [expected]
    assert data["findings"][0]["path"] == name


def test_output_survives_a_terminal_that_cannot_encode_it(tmp_path):
    # A path (or a message quoting code) the output encoding cannot hold must print
    # escaped, not end the run with UnicodeEncodeError.
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "caf\u00e9.py").write_text("def f(:\n")
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    proc = subprocess.run([sys.executable, "-m", "mlcheck_lint", "--select", "MLC000", "--no-cache", "."],
                          cwd=tmp_path, capture_output=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith(b"caf\\xe9.py:1:7: MLC000 cannot lint this file")
