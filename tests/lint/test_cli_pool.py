"""The lint process pool never forks a threaded process (issue 9 item 5).

fork() in a process with threads can deadlock the child on a lock another thread held,
and Python 3.12+ warns about it (``This process is multi-threaded, use of fork() may
lead to deadlocks``). The pool uses forkserver where the platform has it, else spawn.
"""

from __future__ import annotations

import json
import subprocess
import sys

from mlcheck_lint import engine

# A child that is multi-threaded when the pool starts, records the start method of
# every pool it creates, and turns the fork warning into an error.
CHILD = """
import concurrent.futures, json, sys, threading, warnings
warnings.simplefilter("error", DeprecationWarning)
stop = threading.Event()
threading.Thread(target=stop.wait, daemon=True).start()
from mlcheck_lint import cli, engine
if sys.argv[1] == "fork":  # the seeded fault: the old default start method
    import multiprocessing
    engine._pool_context = lambda: multiprocessing.get_context("fork")
engine.default_jobs = lambda: 2  # a pool even on a one-core runner
methods = []
real = concurrent.futures.ProcessPoolExecutor
class Recording(real):
    def __init__(self, *args, mp_context=None, **kwargs):
        methods.append(mp_context.get_start_method() if mp_context else "default")
        super().__init__(*args, mp_context=mp_context, **kwargs)
concurrent.futures.ProcessPoolExecutor = Recording
try:
    code = cli.main(["--select", "MLC000", "--jobs", "2", "--no-cache", "--output-format", "json",
                     "."])
finally:
    stop.set()
    print("METHODS=" + json.dumps(methods), file=sys.stderr)
sys.exit(code)
"""


def _run(tmp_path, mode: str) -> tuple[int, list[str], str, str]:
    for i in range(6):
        (tmp_path / f"bad{i}.py").write_bytes(b"def broken(:\n")  # MLC000: a parse error
    proc = subprocess.run([sys.executable, "-c", CHILD, mode], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)
    line = [x for x in proc.stderr.splitlines() if x.startswith("METHODS=")]
    methods = json.loads(line[-1][len("METHODS="):]) if line else []
    return proc.returncode, methods, proc.stdout, proc.stderr


def test_pool_context_is_forkserver_or_spawn_never_fork():
    context = engine._pool_context()
    assert context.get_start_method() in ("forkserver", "spawn")


def test_a_threaded_process_lints_in_a_pool_without_forking(tmp_path):
    code, methods, out, err = _run(tmp_path, "default")
    assert code == 1, err
    assert methods and set(methods) <= {"forkserver", "spawn"}, methods
    findings = json.loads(out)["findings"]
    assert sorted(f["path"] for f in findings) == [f"bad{i}.py" for i in range(6)]
    assert "fork() may lead to deadlocks" not in err


def test_the_recording_child_sees_a_fork_pool(tmp_path):
    # The seeded fault, the twin of the test above: a pool built on fork is seen as such,
    # so the assertion there fails on it.
    _, methods, _, err = _run(tmp_path, "fork")
    assert methods == ["fork"], err


def test_a_tiny_run_starts_no_pool_and_a_larger_one_does(monkeypatch):
    """Starting a forkserver pool costs about a second: more than linting the handful of
    files a pre-commit run passes. Above the threshold the pool (and its crash
    isolation) is used."""
    pools, in_process = [], []

    def pool(spec, chunks, workers, results, progress):
        pools.append(sum(len(c) for c in chunks))
        results.update({t.rel: {} for c in chunks for t in c})
        return []

    def chunk(spec, tasks):
        in_process.extend(t.rel for t in tasks)
        return [(t.rel, {}) for t in tasks]

    monkeypatch.setattr(engine, "_run_pool", pool)
    monkeypatch.setattr(engine, "_lint_chunk", chunk)
    monkeypatch.setattr(engine, "default_jobs", lambda: 2)
    tasks = [engine.FileTask(f"/p/m{i}.py", f"m{i}.py", "python")
             for i in range(engine.SMALL_RUN_FILES + 1)]
    few = tasks[:engine.SMALL_RUN_FILES]
    assert set(engine.lint_tasks(few, {}, 2, {t.rel: 100 for t in tasks})) == {t.rel for t in few}
    assert (pools, len(in_process)) == ([], engine.SMALL_RUN_FILES)
    engine.lint_tasks(tasks, {}, 2, {t.rel: 100 for t in tasks})  # one file too many
    assert pools == [len(tasks)]
    engine.lint_tasks(few, {}, 2, {t.rel: engine.SMALL_RUN_BYTES for t in few})  # too big
    assert pools == [len(tasks), len(few)]


def test_pool_processes_never_import_the_checked_project(tmp_path):
    """A forkserver or spawn child starts with ``-c``, which puts the current folder first
    on its import path: run in a project holding ``signal.py``, it would run that file."""
    marker = tmp_path / "RAN"
    (tmp_path / "signal.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    for i in range(engine.SMALL_RUN_FILES + 2):
        (tmp_path / f"m{i}.py").write_text('"""A module."""\n')
    code = ("import sys\nsys.path.remove('') if '' in sys.path else None\n"
            "from mlcheck_lint import cli, engine\nengine.default_jobs = lambda: 2\n"
            "sys.exit(cli.main(['--jobs', '2', '--no-cache', '--select', 'MLC000', '.']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180)
    assert not marker.exists(), "a pool process imported the project's signal.py"
    assert proc.returncode == 0 and "All checks passed!" in proc.stdout, proc.stderr
