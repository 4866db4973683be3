"""Fuzz the linter: hypothesmith programs, then a corpus of pathological files.

Usage: ``python benchmarks/fuzz_lint.py [N] [--pathological-only] [--bound SECONDS]``
(default N 2000, bound 20 s).

1. N hypothesmith programs, each linted by the engine's per-file path (decode, parse
   once, every registered rule, positions), its project facts through every project
   rule. A crash is any exception, or any internal error the engine recorded.
2. The pathological corpus (:func:`pathological_corpus`: deep nesting, 5k- and 10k-term
   sums, a 10 MB one-line literal, a 40k-space docstring line, odd encodings and line
   endings, malformed notebooks), each file linted by ``mlcheck-lint --select ALL`` in
   its own process with ``--jobs 2``, so a crash in native code cannot hide. Each must
   exit 0 or 1 (never 2, never a signal) within the per-file time bound; the report
   lists each file's time, exit code and MLC000 reason.

Prints the counts; exits 1 on a crash, an internal error or a file over the bound.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import hypothesmith
from hypothesis import HealthCheck, given, settings

from mlcheck_lint import engine
from mlcheck_lint.api import ProjectContext, ProjectRule, Settings


def _notebook(cells: list, language: str = "python") -> bytes:
    return json.dumps({"cells": cells, "metadata": {"kernelspec": {"language": language, "name": language},
                                                  "language_info": {"name": language}},
                       "nbformat": 4, "nbformat_minor": 5}).encode()


def pathological_corpus() -> dict[str, bytes]:
    """Return hostile inputs by file name: each once crashed, hung or exploded a linter.

    Returns:
        ``{file name: bytes}``.
    """
    doc = 'def f(a, b=1):\n    """Do.\n\n    Args:\n        a: A.\n        b: B. Defaults to 2.\n    """\n    return a\n'
    code_cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None}
    return {
        "nested_lists_2000.py": ("x = " + "[" * 2000 + "]" * 2000 + "\n").encode(),
        "nested_parens_150.py": ("x = " + "(" * 150 + "1" + ")" * 150 + "\n").encode(),
        "nested_calls_90.py": ("x = " + "f(" * 90 + "1" + ")" * 90 + "\n" + doc).encode(),
        "sum_500.py": ("y = " + " + ".join(["a"] * 500) + "\n" + doc).encode(),
        "sum_5000.py": ("y = " + " + ".join(["a"] * 5000) + "\n").encode(),
        "sum_10000.py": ("y = " + " + ".join(["a"] * 10000) + "\n").encode(),
        "literal_10mb.py": b"X = '" + b"a" * (10 * 2**20) + b"'\n",
        "literal_3mb_list.py": ("X = [" + "1, " * 1_000_000 + "]\n").encode(),
        "docstring_40k_spaces.py": ('def f(a):\n    """Do.\n\n    Args:\n        a:' + " " * 40_000
                                    + 'x\n    """\n').encode(),
        "crlf.py": doc.replace("\n", "\r\n").encode(),
        "cr_only.py": doc.replace("\n", "\r").encode(),
        "mixed_endings.py": (doc[:40].replace("\n", "\r") + doc[40:]).encode(),
        "bom_crlf.py": b"\xef\xbb\xbf" + doc.replace("\n", "\r\n").encode(),
        "latin1_cookie.py": ("# -*- coding: latin-1 -*-\ns = 'caf\xe9'\n" + doc).encode("latin-1"),
        "utf16.py": doc.encode("utf-16"),
        "bad_utf8.py": b"s = '\xff\xfe'\n" + doc.encode(),
        "form_feeds.py": ("\x0c\n" + doc.replace("    return", "\x0c    return")).encode(),
        "line_separator_in_string.py": ("s = 'a\u2028b\x0bc\x1cd'\n" + doc).encode(),
        "tabs_and_spaces.py": "if x:\n\tif y:\n        pass\n".encode(),
        "only_comment_no_newline.py": b"# noqa",
        "empty.py": b"",
        "nul.py": b"x = 1\x00\n",
        "notebook_nonstring_source.ipynb": _notebook([{**code_cell, "source": [1, None, {"a": 2}]}]),
        "notebook_deep_json.ipynb": b'{"cells": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "notebook_r_kernel.ipynb": _notebook([{**code_cell, "source": ["x <- c(1, 2)\n", "print(x)\n"]}], "R"),
        "notebook_truncated.ipynb": _notebook([{**code_cell, "source": ["x = 1\n"]}])[:-7],
    }


def run_pathological(bound: float) -> int:
    """Lint every pathological file in its own process; return the number of failures.

    Args:
        bound: Seconds one file may take.

    Returns:
        How many files crashed, errored or ran over the bound.
    """
    failures = 0
    with tempfile.TemporaryDirectory(prefix="mlcheck-pathological-") as tmp:
        root = Path(tmp)
        (root / "pyproject.toml").write_text('[project]\nname = "hostile"\n')
        for name, data in pathological_corpus().items():
            (root / name).write_bytes(data)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "lint")}
        for name in sorted(pathological_corpus()):
            for extra in ([], ["--config", str(root / "big.toml")]) if name == "literal_10mb.py" else ([],):
                if extra:  # past the default size cap too: the ast path itself must cope
                    (root / "big.toml").write_text("[tool.mlcheck.lint]\nmax-file-size = 33554432\n")
                cmd = [sys.executable, "-m", "mlcheck_lint", "--select", "ALL", "--no-cache", "--jobs", "2",
                       "--format", "json", *extra, name]
                start = time.perf_counter()
                try:
                    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=bound, env=env)
                except subprocess.TimeoutExpired:
                    failures += 1
                    print(f"{name:<36} OVER THE {bound:.0f} s BOUND")
                    continue
                took = time.perf_counter() - start
                reasons = ""
                try:
                    found = json.loads(proc.stdout)["findings"]
                    reasons = "; ".join(sorted({f["message"][:70] for f in found if f["code"] == "MLC000"}))
                    summary = f"{len(found)} findings"
                except (ValueError, KeyError):
                    summary = "no JSON"
                bad = proc.returncode not in (0, 1)
                failures += bad
                label = name + (" (cap raised)" if extra else "")
                print(f"{label:<36} {took:6.2f} s  exit {proc.returncode}  {summary}"
                      f"{'  ' + reasons if reasons else ''}{'  <-- ' + proc.stderr[-300:] if bad else ''}")
    return failures


def main() -> int:
    """Run the fuzz campaign.

    Returns:
        The exit code: 0 when nothing crashed.
    """
    argv = sys.argv[1:]
    bound = float(argv[argv.index("--bound") + 1]) if "--bound" in argv else 20.0
    skip = argv.index("--bound") + 1 if "--bound" in argv else -1
    numbers = [a for i, a in enumerate(argv) if a.isdigit() and i != skip]
    n = int(numbers[0]) if numbers else 2000
    if "--pathological-only" in argv:
        failures = run_pathological(bound)
        print(f"pathological failures={failures}")
        return 1 if failures else 0
    rules = engine.load_rules()
    enabled = frozenset(r.code for r in rules)
    instances = [r() for r in rules]
    stats = {"programs": 0, "crashes": 0, "unparsable": 0, "findings": 0}
    task = engine.FileTask("fuzz.py", "fuzz.py", "python")

    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(hypothesmith.from_grammar() | hypothesmith.from_node())
    def one(source: str) -> None:
        stats["programs"] += 1
        try:
            result = engine.lint_data(task, source.encode("utf-8", "surrogatepass"), instances,
                                      Settings(), enabled)
            project = ProjectContext(".", Settings(), ["fuzz.py"],
                                     {c: {"fuzz.py": v} for c, v in result["facts"].items()})
            for rule in instances:
                if isinstance(rule, ProjectRule):
                    list(rule.check_project(project) or ())
        except Exception:
            stats["crashes"] += 1
            print(f"CRASH on:\n{source}\n{traceback.format_exc()}", file=sys.stderr)
            return
        if result["errors"]:
            stats["crashes"] += 1
            print(f"RULE ERROR on:\n{source}\n{result['errors']}", file=sys.stderr)
        stats["unparsable"] += any(f["code"] == "MLC000" for f in result["findings"])
        stats["findings"] += len(result["findings"])

    start = time.perf_counter()
    one()
    print(f"programs={stats['programs']} crashes={stats['crashes']} "
          f"unparsable={stats['unparsable']} findings={stats['findings']} "
          f"rules={len(instances)} seconds={time.perf_counter() - start:.0f}")
    failures = run_pathological(bound)
    print(f"pathological failures={failures}")
    return 1 if stats["crashes"] or failures else 0


if __name__ == "__main__":
    sys.exit(main())
