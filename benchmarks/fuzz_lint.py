"""Fuzz the linter: lint N hypothesmith programs with every rule on; count crashes.

Usage: ``python benchmarks/fuzz_lint.py [N]`` (default 2000). Each program is linted
by the engine's per-file path (decode, parse once, every registered rule, positions),
and its project facts go through every project rule. A crash is any exception, or any
internal error the engine recorded for a rule. Prints the counts; exits 1 on a crash.
"""

from __future__ import annotations

import sys
import time
import traceback

import hypothesmith
from hypothesis import HealthCheck, given, settings

from mlcheck_lint import engine
from mlcheck_lint.api import ProjectContext, ProjectRule, Settings


def main() -> int:
    """Run the fuzz campaign.

    Returns:
        The exit code: 0 when nothing crashed.
    """
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
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
          f"unparsable_by_libcst={stats['unparsable']} findings={stats['findings']} "
          f"rules={len(instances)} seconds={time.perf_counter() - start:.0f}")
    return 1 if stats["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
