"""``--show-source`` prints only the project's own lines, never blocks, and shows the
line the finding is on (issue 12 items 8 and 16, as far as the output goes)."""

from __future__ import annotations

import os
import threading

import pytest
from lint_engine_testkit import project, run_cli, test_rules, write  # noqa: F401

ARGS = ("--select", "MLC000,MLC991", "--no-cache", "--jobs", "1", "--show-source")


def test_a_symlink_out_of_the_project_shows_no_source(project, test_rules, capsys, tmp_path_factory):
    outside = tmp_path_factory.mktemp("secret") / "keys.py"
    outside.write_text("API_KEY = 'hunter2'\ndef bad_a(:\n")
    (project / "link.py").symlink_to(outside)
    code, out, _ = run_cli(capsys, *ARGS, ".")
    assert code == 1 and "link.py:1:1: MLC000" in out
    assert "hunter2" not in out and "bad_a" not in out


def test_a_symlink_inside_the_project_shows_its_source(project, test_rules, capsys):
    write(project, {"real/a.py": "def bad_a():\n    pass\n"})
    (project / "link.py").symlink_to(project / "real" / "a.py")
    _, out, _ = run_cli(capsys, *ARGS, "link.py")
    # The engine names an explicitly given link inside the project by its target.
    assert "real/a.py:1:5: MLC991 [*] function `bad_a` is bad\n    def bad_a():\n        ^^^^^\n" in out


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_like_python_does_not_hang_the_output(project, test_rules, capsys):
    os.mkfifo(project / "x.py")
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("run", run_cli(capsys, *ARGS, ".")),
                              daemon=True)
    worker.start()
    worker.join(60)
    if worker.is_alive():  # unblock the reader so the test process can end
        fd = os.open(project / "x.py", os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("mlcheck-lint --show-source blocked on a FIFO")
    code, out, _ = result["run"]
    assert code == 1 and "x.py:1:1: MLC000 cannot lint this file: not a regular file" in out


def test_the_line_shown_is_the_line_of_the_finding_past_a_form_feed(project, test_rules, capsys):
    # str.splitlines splits at \x0c too; Python (and the engine) do not.
    write(project, {"a.py": "x = 1  # page\x0cbreak\n\ndef bad_a():\n    pass\n"})
    _, out, _ = run_cli(capsys, *ARGS, ".")
    assert "a.py:3:5: MLC991 [*] function `bad_a` is bad\n    def bad_a():\n" in out


def test_the_caret_is_under_the_name_in_a_file_with_a_bom_and_a_coding_cookie(project, test_rules, capsys):
    write(project, {"a.py": "\ufeffdef bad_a():\n    pass\n",
                    "b.py": "# -*- coding: latin-1 -*-\ns = 'caf\xe9'; def_ = 1\ndef bad_b():\n    pass\n".encode("latin-1")})
    _, out, _ = run_cli(capsys, *ARGS, ".")
    assert "a.py:1:5: MLC991 [*] function `bad_a` is bad\n    def bad_a():\n        ^^^^^\n" in out
    assert "b.py:3:5: MLC991 [*] function `bad_b` is bad\n    def bad_b():\n        ^^^^^\n" in out
