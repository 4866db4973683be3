"""Run real ML libraries' own test suites plain, with ``--mlcheck`` and with ``-n 2 --mlcheck``.

The question: does turning the session guards on change any outcome in a test suite no
one here wrote, and when it does, is that a real finding, a false alarm or a bug of ours?
Each suite's test outcomes are compared test by test; every test whose outcome differs is
printed with the plugin's message, to be judged by a person (see ``benchmarks/README.md``).

For each suite this script:

1. downloads the named sdist with ``pip download --no-binary :all: --no-deps`` and
   unpacks it (the sdist ships the tests; the package is imported from that tree);
2. makes a virtual environment for the suite *on top of* the project's ``.venv``: a
   ``.pth`` line adds ``.venv``'s site-packages, so the suite shares the project's torch
   and pytest-mlcheck, and only its own missing dependencies are installed (by pip, from
   the registry);
3. runs the selected tests three times, ``-p no:randomly -p no:cacheprovider`` each time,
   with a JUnit XML report per run, and measures wall time and the CPU time of the
   pytest process and its children (``resource.getrusage``);
4. prints the outcome counts, the guard overhead (``--mlcheck`` over plain, same run) and
   every test whose outcome differs, with the first lines of its failure message.

Run: ``.venv/bin/python benchmarks/real_suites.py [--suite einops --suite skorch ...]
[--work /work/venvs/real_suites] [--no-xdist] [--json results.json]``.
A suite's test subset is part of its definition below (``SUITES``), and can be narrowed
further with ``--k EXPR`` (applies to every suite chosen).

``--overhead [--rounds 3] [--only-xdist]`` measures the guards' cost instead: on each
suite's smaller overhead subset (``overhead_tests``/``overhead_args``), ``--rounds``
interleaved rounds of plain, ``--mlcheck`` and (unless ``--no-xdist``) ``-n 2`` and
``-n 2 --mlcheck`` (``--mlcheck`` runs compared with their plain twin), the order rotating
each round; per run the wall time, the CPU time of pytest and its children
(``getrusage(RUSAGE_CHILDREN)`` delta) and the ``uptime`` line; then medians and ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from typing import Iterable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Suite:
    """One real test suite: which sdist, what it needs and which tests to run.

    Attributes:
        name: The distribution name on the registry.
        version: The exact version downloaded.
        deps: Requirements installed into the suite's environment (beyond ``.venv``).
        tests: Test paths inside the unpacked sdist.
        args: Extra pytest arguments (``-k`` subsets, ``-W`` options, ``-p`` plugins).
        env: Environment variables the suite's tests read.
        note: Why the subset or options were chosen, printed with the results.
        overhead_tests: Test paths for ``--overhead`` (default: ``tests``).
        overhead_args: Extra pytest arguments for ``--overhead`` (default: ``args``).
        overhead_note: What the overhead subset is and why.
    """

    name: str
    version: str
    deps: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    note: str = ""
    overhead_tests: tuple[str, ...] = ()
    overhead_args: tuple[str, ...] = ()
    overhead_note: str = ""


SUITES: dict[str, Suite] = {s.name: s for s in (
    Suite("einops", "0.8.2", deps=(), tests=("einops/tests",),
          env=(("EINOPS_TEST_BACKENDS", "numpy,torch"),),
          note="numpy and torch backends (the ones installed); test_notebooks needs nbconvert "
               "and is deselected",
          overhead_args=("-k", "not test_notebooks and not torch_compile",
                         "-o", "mlcheck_allow_nonfinite=einops/tests/test_layers.py::test_reduce_imperative"),
          overhead_note="all of einops/tests but test_notebooks (nbconvert missing) and the 3 "
                        "torch.compile tests (inductor compile time, 190 s of 218 s, would swamp "
                        "the guards); test_reduce_imperative's expected Inf opted out so both "
                        "configurations run the same code"),
    Suite("skorch", "1.4.0", deps=("scikit-learn", "scipy", "tabulate", "tqdm", "pandas", "flaky"),
          tests=("skorch/tests/test_classifier.py", "skorch/tests/test_regressor.py",
                 "skorch/tests/test_probabilistic.py", "skorch/tests/callbacks/test_scoring.py",
                 "skorch/tests/test_history.py", "skorch/tests/test_helper.py"),
          note="the files where the issue's findings were (recwarn tests, NaN from raw logits, "
               "the incidental F1 warning, the probabilistic (gpytorch) nets); test_net.py and "
               "the optional integrations are left out for time",
          overhead_tests=("skorch/tests/test_regressor.py",),
          overhead_note="test_regressor.py only: NeuralNetRegressor fit/predict/score, the "
                        "recwarn and broadcast-warning tests; small nets trained for a few "
                        "epochs (a time budget on the loaded 2-core machine)"),
    Suite("einx", "0.4.3", deps=("sympy", "frozendict"),
          tests=("test/test_values.py", "test/test_shapes.py", "test/test_adapt.py",
                 "test/test_tensor_conversion.py"),
          # setup_backend ids index test/conftest.py's list: 0 is numpy, 8/11/14/17/20 the
          # eager torch CPU backends (numpylike, vmap, einsum, torch, default).
          args=("-k", "setup_backend0 or setup_backend8 or setup_backend11 or setup_backend14 or "
                      "setup_backend17 or setup_backend20",),
          note="numpy and the eager torch CPU backends (torch, numpylike, vmap, einsum, "
               "default); the torch.compile variants recompile every op with inductor, too "
               "slow for the shared machine, and jax, tensorflow, mlx are not installed",
          overhead_tests=("test/test_shapes.py",),
          overhead_args=("-k", "setup_backend0 or setup_backend17"),
          overhead_note="test_shapes.py on the numpy and eager torch backends (setup_backend0, "
                        "setup_backend17): einx ops as functions, few nn.Module calls"),
    Suite("gpytorch", "1.15.2", deps=("linear_operator>=0.6", "jaxtyping", "mpmath", "scipy",
                                      "scikit-learn"),
          tests=("test/examples",),
          args=("-k", "simple_gp or kissgp_gp_regression or white_noise or spectral_mixture or "
                      "grid_gp or sgpr or batch_gp",),
          note="exact, grid, sparse and batch GP regression examples: whole models trained "
               "through gpytorch's own Module.__call__; the rest is left out for time",
          overhead_tests=("test/examples/test_white_noise_regression.py",
                          "test/examples/test_sgpr_regression.py"),
          overhead_note="the white-noise and SGPR regression examples: exact and sparse GPs "
                        "trained for tens of iterations through gpytorch's Module.__call__"),
)}


def run(cmd: list[str], cwd: str | None = None, env: dict | None = None, timeout: float = 3600,
        check: bool = True) -> subprocess.CompletedProcess:
    """Run a command, printing it first; raise with its output when it fails and ``check``."""
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}:\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-3000:]}")
    return proc


def prepare(suite: Suite, work: str) -> tuple[str, str]:
    """Download and unpack the sdist, build the suite's environment; return (python, srcdir)."""
    sdists = os.path.join(work, "sdists")
    os.makedirs(sdists, exist_ok=True)
    archive = next((os.path.join(sdists, f) for f in os.listdir(sdists)
                    if f.lower().startswith(f"{suite.name.lower()}-{suite.version}.")), None)
    if archive is None:
        # ``--no-binary NAME`` rather than ``:all:``: the same sdist comes down, but pip may
        # take the build backend (hatchling, setuptools) as wheels; with ``:all:`` it builds
        # the whole backend chain from source first, minutes per suite.
        run([sys.executable, "-m", "pip", "download", "--no-binary", suite.name, "--no-deps",
             "-d", sdists, f"{suite.name}=={suite.version}"])
        archive = next(os.path.join(sdists, f) for f in os.listdir(sdists)
                       if f.lower().startswith(f"{suite.name.lower()}-{suite.version}."))
    src = os.path.join(work, "src", f"{suite.name}-{suite.version}")
    if not os.path.isdir(src):
        with tarfile.open(archive) as tar:
            top = os.path.realpath(os.path.join(work, "src"))
            for member in tar.getmembers():  # an sdist must not write outside its folder
                target = os.path.realpath(os.path.join(top, member.name))
                if not target.startswith(top + os.sep) or member.issym() or member.islnk():
                    raise RuntimeError(f"{archive}: refusing to unpack {member.name!r}")
            tar.extractall(top)
    venv = os.path.join(work, "venvs", suite.name)
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        base = getattr(sys, "_base_executable", sys.executable)
        run([base, "-m", "venv", venv])
        site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
        ours = run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
                   ).stdout.strip()
        with open(os.path.join(site, "zz_project_venv.pth"), "w", encoding="utf-8") as f:
            # addsitedir, not a bare path: .venv's own .pth files (the editable install of
            # pytest-mlcheck) must be processed too.
            f.write(f"import site; site.addsitedir({ours!r})\n")
    if suite.deps:
        run([python, "-m", "pip", "install", "-q", *suite.deps], timeout=1800)
    return python, src


@dataclasses.dataclass
class Outcome:
    """One pytest run of a suite: per-test outcomes, messages and times."""

    label: str
    outcomes: dict[str, str]
    messages: dict[str, str]
    wall: float
    cpu: float
    returncode: int
    tail: str


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_pytest(suite: Suite, python: str, src: str, label: str, extra: list[str],
               k: str | None, work: str, timeout: float, tests: tuple[str, ...] | None = None,
               suite_args: tuple[str, ...] | None = None) -> Outcome:
    """Run the suite's tests once and read the outcomes back from the JUnit XML report.

    ``tests`` and ``suite_args`` replace the suite's own ``tests`` and ``args`` when given
    (the overhead mode's subset).
    """
    xml = os.path.join(work, "results", f"{suite.name}-{label.replace(' ', '_')}.xml")
    os.makedirs(os.path.dirname(xml), exist_ok=True)
    if os.path.exists(xml):
        os.remove(xml)
    tests = suite.tests if tests is None else tests
    suite_args = suite.args if suite_args is None else suite_args
    args = [python, "-m", "pytest", *tests, "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
            "-o", "addopts=", "--junitxml", xml, "-o", "junit_family=xunit2", *suite_args, *extra]
    if k:
        args += ["-k", k]
    env = {**os.environ, **dict(suite.env), "PYTHONDONTWRITEBYTECODE": "1"}
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = run(args, cwd=src, env=env, timeout=timeout, check=False)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    outcomes, messages = read_junit(xml) if os.path.exists(xml) else ({}, {})
    return Outcome(label, outcomes, messages, wall, cpu, proc.returncode,
                   (proc.stdout + proc.stderr)[-4000:])


def read_junit(path: str) -> tuple[dict[str, str], dict[str, str]]:
    """Return ``{test id: outcome}`` and ``{test id: message}`` from a JUnit XML report."""
    outcomes: dict[str, str] = {}
    messages: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        test = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "error"
                messages[test] = (child.get("message") or "") + "\n" + (child.text or "")
            elif child.tag == "skipped":
                outcome = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
        if test in outcomes and outcomes[test] != "passed":
            continue  # a teardown error after a failure keeps the failure
        outcomes[test] = outcome
    return outcomes, messages


def counts(outcomes: dict[str, str]) -> str:
    """Return e.g. ``120 passed, 3 skipped``."""
    tally: dict[str, int] = {}
    for o in outcomes.values():
        tally[o] = tally.get(o, 0) + 1
    return ", ".join(f"{n} {o}" for o, n in sorted(tally.items(), key=lambda kv: -kv[1])) or "no tests"


def differences(plain: Outcome, other: Outcome) -> list[tuple[str, str, str, str]]:
    """Return ``(test, plain outcome, other outcome, other's message)`` for each changed test."""
    out = []
    for test in sorted(set(plain.outcomes) | set(other.outcomes)):
        a, b = plain.outcomes.get(test, "not run"), other.outcomes.get(test, "not run")
        if a != b:
            out.append((test, a, b, other.messages.get(test, "")))
    return out


def _excerpt(message: str, lines: int = 12) -> str:
    """The plugin's part of a failure message, or its first lines."""
    text = message.strip().splitlines()
    for i, line in enumerate(text):
        if "NaN/Inf" in line or "silent-bug warning" in line or "mlcheck" in line:
            return "\n".join(text[i:i + lines])
    return "\n".join(text[:lines])


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _uptime() -> str:
    """The ``uptime`` line (load averages), or ``os.getloadavg()`` where there is no uptime."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def overhead(suite: Suite, python: str, src: str, opts: argparse.Namespace) -> dict:
    """Measure the guards' overhead on one suite: interleaved rounds, medians.

    Every round runs each configuration once (plain, ``--mlcheck``, and ``-n 2 --mlcheck``
    unless ``--no-xdist``); the order rotates from round to round so that a load swing
    does not land on one configuration only. Each run's wall time, CPU time of pytest and
    its children (``RUSAGE_CHILDREN`` delta) and the ``uptime`` line before it are kept.
    One ``--collect-only`` run first warms the file cache and is not counted. The guarded
    runs use ``mlcheck_guards = report``, so their outcomes match the plain run's.
    """
    tests = suite.overhead_tests or suite.tests
    args = suite.overhead_args or suite.args
    # Findings are reported, not failures: every guard still does all its work, and a test
    # that a guard would fail runs to its end as in the plain run (same work to time).
    guarded = ["--mlcheck", "-o", "mlcheck_guards=report"]
    configs = [("plain", []), ("mlcheck", guarded)]
    if not opts.no_xdist:  # -n 2 against -n 2: two workers' start-up is not the guards' cost
        configs += [("xdist plain", ["-n", "2"]), ("xdist mlcheck", ["-n", "2", *guarded])]
    if opts.only_xdist:
        configs = configs[2:]
    run_pytest(suite, python, src, "warmup", ["--collect-only"], opts.k, opts.work, opts.timeout,
               tests, args)
    rounds: list[dict] = []
    for r in range(opts.rounds):
        order = configs[r % len(configs):] + configs[:r % len(configs)]
        for label, extra in order:
            load = _uptime()
            o = run_pytest(suite, python, src, f"overhead {label}", extra, opts.k, opts.work,
                           opts.timeout, tests, args)
            row = {"round": r + 1, "config": label, "wall": o.wall, "cpu": o.cpu, "uptime": load,
                   "counts": counts(o.outcomes), "tests": len(o.outcomes), "exit": o.returncode}
            rounds.append(row)
            print(f"  round {r + 1} {label:14s} wall {o.wall:7.1f} s  cpu {o.cpu:7.1f} s  "
                  f"{row['counts']}  | {load}", flush=True)
            if not o.outcomes:
                print("    no JUnit report; output tail:\n" + o.tail)
    summary: dict[str, dict] = {}
    for label, _ in configs:
        mine = [row for row in rounds if row["config"] == label]
        summary[label] = {"wall": _median([row["wall"] for row in mine]),
                          "cpu": _median([row["cpu"] for row in mine]),
                          "counts": sorted({row["counts"] for row in mine})}
    def base(label: str) -> str:  # what a configuration is compared with
        return "xdist plain" if label.startswith("xdist") else "plain"

    compared = [label for label, _ in configs if label.endswith("mlcheck")]
    for label in compared:
        values, plain = summary[label], summary[base(label)]
        values["wall_ratio"] = values["wall"] / plain["wall"] if plain["wall"] else None
        values["cpu_ratio"] = values["cpu"] / plain["cpu"] if plain["cpu"] else None
    # The same ratio taken within each round (neighbouring runs, similar load), then the median.
    for label in compared:
        per_round = []
        for r in range(opts.rounds):
            a = [row for row in rounds if row["round"] == r + 1 and row["config"] == base(label)]
            b = [row for row in rounds if row["round"] == r + 1 and row["config"] == label]
            if a and b and a[0]["cpu"]:
                per_round.append(b[0]["cpu"] / a[0]["cpu"])
        summary[label]["cpu_ratio_per_round"] = per_round
        summary[label]["cpu_ratio_per_round_median"] = _median(per_round) if per_round else None
    print(f"\n=== {suite.name} {suite.version} overhead, {opts.rounds} interleaved rounds, medians: "
          f"{suite.overhead_note or suite.note}")
    for label, values in summary.items():
        ratio = "" if label not in compared else (
            f"  vs {base(label)}: wall {values['wall_ratio']:.3f}x cpu {values['cpu_ratio']:.3f}x "
            f"(per-round cpu median {values['cpu_ratio_per_round_median']:.3f}x)")
        print(f"  {label:14s} wall {values['wall']:7.1f} s  cpu {values['cpu']:7.1f} s  "
              f"{'; '.join(values['counts'])}{ratio}")
        if len(values["counts"]) > 1:
            print("    outcome counts differ between rounds: the runs did not do the same work")
    return {"suite": suite.name, "version": suite.version, "tests": list(tests), "args": list(args),
            "note": suite.overhead_note or suite.note, "rounds": rounds, "summary": summary}


def main(argv: Iterable[str] | None = None) -> int:
    """Run the chosen suites and print the comparison; return 0 (differences are data)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", choices=sorted(SUITES),
                        help="suite to run (repeatable; default: all)")
    parser.add_argument("--work", default="/work/venvs/real_suites",
                        help="folder for sdists, unpacked sources, environments and results")
    parser.add_argument("--k", default=None, help="an extra -k expression for every suite")
    parser.add_argument("--no-xdist", action="store_true", help="skip the -n 2 --mlcheck run")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per pytest run")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--overhead", action="store_true",
                        help="measure the guards' overhead (each suite's overhead subset, "
                             "interleaved rounds, medians) instead of comparing outcomes")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per configuration for --overhead")
    parser.add_argument("--only-xdist", action="store_true",
                        help="with --overhead: time only -n 2 and -n 2 --mlcheck")
    opts = parser.parse_args(list(argv) if argv is not None else None)
    if opts.rounds < 1:
        parser.error("--rounds must be at least 1")
    if opts.only_xdist and (opts.no_xdist or not opts.overhead):
        parser.error("--only-xdist needs --overhead and no --no-xdist")
    results = []
    for name in opts.suite or list(SUITES):
        suite = SUITES[name]
        python, src = prepare(suite, opts.work)
        if opts.overhead:
            results.append(overhead(suite, python, src, opts))
            if opts.json:  # after every suite, so a late failure keeps the earlier ones
                _write_json(opts.json, results)
            continue
        runs = [("plain", []), ("mlcheck", ["--mlcheck"])]
        if not opts.no_xdist:
            runs.append(("xdist mlcheck", ["-n", "2", "--mlcheck"]))
        done = [run_pytest(suite, python, src, label, extra, opts.k, opts.work, opts.timeout)
                for label, extra in runs]
        plain = done[0]
        print(f"\n=== {suite.name} {suite.version}: {suite.note}")
        for o in done:
            print(f"  {o.label:14s} {counts(o.outcomes):50s} wall {o.wall:7.1f} s  cpu {o.cpu:7.1f} s"
                  f"  (exit {o.returncode})")
            if not o.outcomes:
                print("    no JUnit report; output tail:\n" + o.tail)
        mlc = done[1]
        if plain.wall and plain.cpu:
            print(f"  --mlcheck / plain: wall {mlc.wall / plain.wall:.3f}x, cpu {mlc.cpu / plain.cpu:.3f}x")
        entry = {"suite": suite.name, "version": suite.version, "note": suite.note,
                 "runs": {o.label: {"counts": counts(o.outcomes), "wall": o.wall, "cpu": o.cpu}
                          for o in done}, "differences": {}}
        for o in done[1:]:
            diffs = differences(plain, o)
            entry["differences"][o.label] = [{"test": t, "plain": a, "with": b, "message": _excerpt(m)}
                                            for t, a, b, m in diffs]
            print(f"  {len(diffs)} tests differ between plain and {o.label}")
            for test, a, b, message in diffs:
                print(f"    {test}: {a} -> {b}")
                if message:
                    print("      " + _excerpt(message).replace("\n", "\n      "))
        results.append(entry)
    if opts.json:
        _write_json(opts.json, results)
    return 0


def _write_json(path: str, results: list) -> None:
    """Write the results atomically (a temporary file, then a rename)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
