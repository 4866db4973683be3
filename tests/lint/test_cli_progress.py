"""Progress on a terminal for long runs, and never anywhere else (issue 9 item 5).

The end-to-end tests run the real command with stderr on a pseudo-terminal (``pty``)
and on a pipe, with the one-second delay set to zero so a small tree is "long".
"""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
import time

import pytest

from mlcheck_lint import cli

pty = pytest.importorskip("pty", reason="pseudo-terminals are POSIX only")

MARK = b"files checked"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_waits_for_the_delay_throttles_and_erases_itself():
    clock, stream = FakeClock(), io.StringIO()
    progress = cli.Progress(stream, delay=1.0, clock=clock)
    progress(3, 10, 1)
    assert stream.getvalue() == ""  # a run under a second stays silent
    clock.now += 1.5
    progress(4, 10, 1)
    assert stream.getvalue() == "\r\x1b[Kmlcheck-lint: 4/10 files checked (1 from cache)"
    clock.now += 0.01
    progress(5, 10, 1)  # too soon after the last draw
    assert stream.getvalue().count("\r") == 1
    progress(10, 10, 1)  # the last one is always drawn
    assert stream.getvalue().endswith("10/10 files checked (1 from cache)")
    progress.close()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_progress_that_never_drew_erases_nothing():
    stream = io.StringIO()
    progress = cli.Progress(stream, delay=5.0, clock=FakeClock())
    progress(1, 1, 0)
    progress.close()
    assert stream.getvalue() == ""


@pytest.mark.parametrize("stream, fmt, quiet, env, expected", [
    (FakeTTY(), "text", False, {}, True),
    (io.StringIO(), "text", False, {}, False),  # a pipe or a file
    (FakeTTY(), "json", False, {}, False),
    (FakeTTY(), "sarif", False, {}, False),
    (FakeTTY(), "github", False, {}, False),
    (FakeTTY(), "text", True, {}, False),
    (FakeTTY(), "text", False, {"CI": "true"}, False),  # a CI log, even on a pty
    (FakeTTY(), "text", False, {"TERM": "dumb"}, False),
])
def test_progress_is_wanted_only_for_text_on_a_terminal(monkeypatch, stream, fmt, quiet, env, expected):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert cli.progress_wanted(stream, fmt, quiet) is expected


def _tree(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    for i in range(6):
        (tmp_path / f"m{i}.py").write_text(f"def f{i}(:\n")
    return tmp_path


def _run(tmp_path, stderr_on_tty: bool, *args: str, delay: float = 0.0) -> tuple[int, bytes, bytes]:
    code = ("import sys\nfrom mlcheck_lint import cli\n"
            f"cli.PROGRESS_DELAY_S = {delay!r}\ncli.PROGRESS_INTERVAL_S = 0.0\n"
            f"sys.exit(cli.main({list(args)!r}))\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["TERM"] = "xterm"
    if not stderr_on_tty:
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                              capture_output=True, timeout=120)
        return proc.returncode, proc.stdout, proc.stderr
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    err = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            err += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    out = proc.stdout.read()
    proc.stdout.close()
    return proc.wait(timeout=60), out, err


ARGS = ["--select", "MLC000", "--jobs", "1", "--no-cache", "."]


def test_progress_appears_on_a_terminal_and_is_erased(tmp_path):
    code, out, err = _run(_tree(tmp_path), True, *ARGS)
    assert code == 1
    assert MARK in err and b"6/6 files checked (0 from cache)" in err
    assert err.rstrip(b"\r\n").endswith(b"\r\x1b[K")  # erased before the findings
    assert out.count(b"MLC000") == 6 and b"\x1b" not in out


def test_progress_counts_cache_hits(tmp_path):
    _tree(tmp_path)
    cached = [a for a in ARGS if a != "--no-cache"]
    _run(tmp_path, False, *cached)
    code, _, err = _run(tmp_path, True, *cached)
    assert code == 1 and b"6/6 files checked (6 from cache)" in err


def test_no_progress_when_stderr_is_a_pipe(tmp_path):
    code, out, err = _run(_tree(tmp_path), False, *ARGS)
    assert code == 1 and out.count(b"MLC000") == 6
    assert MARK not in err and b"\x1b" not in err


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_no_progress_for_machine_formats_even_on_a_terminal(tmp_path, fmt):
    code, out, err = _run(_tree(tmp_path), True, "--output-format", fmt, *ARGS)
    assert code == 1 and MARK not in err and out.lstrip().startswith(b"{")


def test_no_progress_for_a_short_run(tmp_path):
    # A run that ends before the delay draws nothing (10 s here, so a loaded machine
    # cannot make six small files "long"; the fake-clock test covers the 1 s default).
    assert cli.PROGRESS_DELAY_S == 1.0
    code, _, err = _run(_tree(tmp_path), True, *ARGS, delay=10.0)
    assert code == 1 and MARK not in err
