"""The ``mlcheck`` command (also ``python -m pytest_mlcheck``): work with JSON reports.

* ``compare A.json B.json``: metric deltas, verdict changes, checks only in one report
  and the environment facets that differ; exit status 1 past tolerance;
* ``merge shard*.json -o all.json``: one report from the shards of a split suite;
* ``prune --reports all.json``: delete the baseline entries no shard used, only when
  the reports cover a whole-suite run.

Exit status: 0 fine, 1 a comparison past tolerance or a refused prune, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be finite and >= 0, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlcheck", description="Compare, merge and prune with pytest-mlcheck JSON reports "
                                    "(written by pytest --mlcheck-report PATH).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    compare = commands.add_parser(
        "compare", help="what changed between two reports (an upgrade, a machine, a seed)",
        description="Compare report B with report A: metric deltas, verdict changes, checks "
                    "in only one report, environment facets that differ. Exits 1 when a "
                    "metric moved past its tolerance or a check started failing.")
    compare.add_argument("before", metavar="A.json", help="the reference report")
    compare.add_argument("after", metavar="B.json", help="the report to compare with it")
    compare.add_argument("--atol", type=_tolerance, default=None,
                         help="absolute tolerance for metric deltas (default: each baseline's "
                              "own band, as in report A)")
    compare.add_argument("--rtol", type=_tolerance, default=None,
                         help="relative tolerance for metric deltas, of A's value")
    compare.add_argument("--format", choices=("text", "markdown"), default="text",
                         help="markdown writes a table for a pull-request comment or "
                              "$GITHUB_STEP_SUMMARY")
    compare.add_argument("-o", "--output", default=None,
                         help="append the output to this file instead of printing it")
    merge = commands.add_parser(
        "merge", help="merge the reports of a suite split across CI jobs",
        description="Merge shard reports into one; a test id in two shards is an error.")
    merge.add_argument("reports", nargs="+", metavar="SHARD.json")
    merge.add_argument("-o", "--output", required=True, help="the merged report to write")
    prune = commands.add_parser(
        "prune", help="delete baseline entries that no shard of a whole-suite run used",
        description="Delete baseline entries and array files that no test used, from the "
                    "merged reports of a whole-suite run (refused otherwise).")
    prune.add_argument("--reports", required=True, nargs="+", metavar="REPORT.json",
                       help="the merged report (or the shard reports, merged on the fly)")
    prune.add_argument("--rootdir", default=None,
                       help="the project root the baselines are under (default: the "
                            "report's rootdir when it exists here, else the current directory)")
    prune.add_argument("--dry-run", action="store_true", help="list, delete nothing")
    return parser


def _write(lines: list[str], output: str | None) -> None:
    text = "\n".join(lines) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    with open(output, "a", encoding="utf-8") as fh:
        fh.write(text)


def _compare(args: argparse.Namespace) -> int:
    from .reports import load_report
    from .reports.compare import compare_reports, render_markdown, render_text

    before, after = load_report(args.before), load_report(args.after)
    result = compare_reports(before, after, atol=args.atol, rtol=args.rtol)
    render = render_markdown if args.format == "markdown" else render_text
    _write(render(result, (args.before, args.after)), args.output)
    return 1 if result.failing else 0


def _merge(args: argparse.Namespace) -> int:
    from .atomic import atomic_write_bytes
    from .reports import load_report
    from .reports.merge import merge_reports

    merged = merge_reports([(path, load_report(path)) for path in args.reports])
    text = json.dumps(merged, indent=2) + "\n"
    atomic_write_bytes(os.path.abspath(args.output), text.encode("utf-8"))
    suite = merged.get("suite") or {}
    whole = suite and not suite.get("partial") and not suite.get("selection")
    print(f"merged {len(args.reports)} report(s): {len(merged['tests'])} tests, "
          f"{merged['summary']['total']} checks -> {args.output}"
          + ("; a whole-suite run" if whole else ""))
    return 0


def _prune(args: argparse.Namespace) -> int:
    from .baselines.prune import PruneRefused, prune_from_reports
    from .reports import load_report
    from .reports.merge import merge_reports

    loaded = [(path, load_report(path)) for path in args.reports]
    source, report = loaded[0] if len(loaded) == 1 else ("the merged reports",
                                                         merge_reports(loaded))
    rootdir = args.rootdir
    if rootdir is None:
        recorded = str((report.get("suite") or {}).get("rootdir", ""))
        rootdir = recorded if recorded and os.path.isdir(recorded) else os.getcwd()
    try:
        lines, problems = prune_from_reports(report, source, rootdir, delete=not args.dry_run)
    except PruneRefused as exc:
        print(f"mlcheck prune: refused, nothing deleted: {exc}", file=sys.stderr)
        return 1
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {len(lines)} unused baseline item(s) under {rootdir}"
          + (":" if lines else ""))
    for line in lines:
        print(f"  {line}")
    for problem in problems:
        print(f"mlcheck prune: {problem}", file=sys.stderr)
    return 2 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mlcheck`` command line.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 fine, 1 past tolerance or refused, 2 bad input.
    """
    from .reports import ReportError

    args = _parser().parse_args(argv)
    handler = {"compare": _compare, "merge": _merge, "prune": _prune}[args.command]
    try:
        return handler(args)
    except ReportError as exc:
        print(f"mlcheck {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"mlcheck {args.command}: {exc.filename or ''}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
