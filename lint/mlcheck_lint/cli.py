"""The ``mlcheck-lint`` command line.

Exit codes: 0 no findings (or ``--exit-zero``), 1 findings, 2 a usage or configuration
error or an internal error (a rule raised; its message names the rule and the file).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ._version import __version__
from .config import ConfigError, check_codes, load_config

FORMATS = ("text", "json", "sarif", "github")


def _codes(value: str) -> list[str]:
    return [c.strip() for c in value.split(",") if c.strip()]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser.

    Returns:
        The parser for ``mlcheck-lint``.
    """
    p = argparse.ArgumentParser(
        prog="mlcheck-lint",
        description="Static checks for documentation drift, dependency pinning and ML code "
                    "smells. Never imports or runs the code it checks.",
        epilog="Exit codes: 0 no findings, 1 findings, 2 usage/configuration/internal error.")
    p.add_argument("paths", nargs="*", default=["."], help="files and folders to lint (default: .)")
    p.add_argument("--select", type=_codes, help="comma-separated codes or prefixes to enable "
                   "(replaces the configured selection)")
    p.add_argument("--extend-select", type=_codes, default=[], help="codes or prefixes to add")
    p.add_argument("--ignore", type=_codes, default=[], help="codes or prefixes to turn off")
    p.add_argument("--format", choices=FORMATS + ("markdown",), default="text",
                   help="output format (markdown only with --list-rules)")
    p.add_argument("--fix", action="store_true", help="apply safe fixes")
    p.add_argument("--unsafe-fixes", action="store_true", help="with --fix, apply unsafe fixes too")
    p.add_argument("--diff", action="store_true",
                   help="print the diff that --fix --unsafe-fixes would apply; change nothing")
    p.add_argument("--jobs", "-j", type=int, default=None,
                   help="worker processes (default: number of cores)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="cache folder (default: .mlcheck-lint-cache in the project root)")
    p.add_argument("--statistics", action="store_true", help="print counts per code instead of findings")
    p.add_argument("--list-rules", action="store_true", help="list every rule and exit")
    p.add_argument("--explain", metavar="CODE", help="print a rule's documentation and exit")
    p.add_argument("--config", type=Path, default=None, help="pyproject.toml to read [tool.mlcheck.lint] from")
    p.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    p.add_argument("--show-source", action="store_true", help="show the offending line under each finding")
    p.add_argument("--version", action="version", version=f"mlcheck-lint {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except ConfigError as exc:
        print(f"mlcheck-lint: configuration error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"mlcheck-lint: error: {exc}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    from . import engine, fixes, formats

    rules = engine.load_rules()
    by_code = {r.code: r for r in rules}
    out = sys.stdout
    if args.format == "markdown" and not args.list_rules:
        raise ConfigError("command line", "--format", "markdown is only for --list-rules")
    if args.list_rules:
        out.write(formats.rules_table(rules, args.format if args.format in ("json", "markdown") else "text"))
        return 0
    if args.explain:
        code = args.explain.strip().upper()
        if code not in by_code:
            raise ConfigError("command line", "--explain",
                              f"unknown rule code {args.explain!r}; see mlcheck-lint --list-rules")
        out.write(formats.explain(by_code[code]))
        return 0
    if args.jobs is not None and args.jobs < 1:
        raise ConfigError("command line", "--jobs", f"{args.jobs} is not a positive number of processes")
    if args.unsafe_fixes and not (args.fix or args.diff):
        raise ConfigError("command line", "--unsafe-fixes", "only makes sense with --fix or --diff")
    config = load_config(Path(args.paths[0]), by_code, args.config)
    changes: dict = {}
    if args.select is not None:
        changes["select"] = check_codes(args.select, by_code, "command line", "--select")
    if args.extend_select:
        changes["extend_select"] = config.extend_select + check_codes(
            args.extend_select, by_code, "command line", "--extend-select")
    if args.ignore:
        changes["ignore"] = config.ignore + check_codes(args.ignore, by_code, "command line", "--ignore")
    if args.cache_dir is not None:
        changes["cache_dir"] = args.cache_dir.resolve()
    config = dataclasses.replace(config, **changes)
    jobs = args.jobs or engine.default_jobs()
    use_cache = not args.no_cache
    report = engine.run(args.paths, config, jobs=jobs, use_cache=use_cache, rules=rules)

    if args.diff:
        _, changed = fixes.fix_files(report, config, rules, unsafe=True, write=False)
        for rel, (old, new) in changed.items():
            out.write(formats.unified_diff(old, new, formats.display_path(rel, report.root)))
        n = len(changed)
        out.flush()  # the diff (stdout) must come before the summary (stderr) on a terminal
        print(f"{n} file{'s' if n != 1 else ''} would be changed by --fix --unsafe-fixes"
              if n else "No fixes available.", file=sys.stderr)
        return _errors(report) or (1 if changed and not args.exit_zero else 0)

    fixed = 0
    if args.fix:
        fixed, changed = fixes.fix_files(report, config, rules, unsafe=args.unsafe_fixes, write=True)
        if changed:
            report = engine.run(args.paths, config, jobs=jobs, use_cache=use_cache, rules=rules)
        report.fixed = fixed
        print(f"Fixed {fixed} finding{'s' if fixed != 1 else ''} in {len(changed)} "
              f"file{'s' if len(changed) != 1 else ''}.", file=sys.stderr)

    if args.format == "json":
        out.write(formats.json_report(report))
    elif args.format == "sarif":
        out.write(formats.sarif(report, by_code))
    elif args.format == "github":
        out.write(formats.github(report))
    elif args.statistics:
        out.write(formats.statistics(report, by_code))
    else:
        out.write(formats.text(report, show_source=args.show_source, unsafe=args.unsafe_fixes))
    if args.statistics and args.format != "text":
        sys.stderr.write(formats.statistics(report, by_code))
    code = _errors(report)
    if code:
        return code
    return 0 if args.exit_zero or not report.findings else 1


def _errors(report: object) -> int:
    errors = getattr(report, "errors", [])
    if errors:
        sys.stdout.flush()  # keep the findings before the error lines on a terminal
    for e in errors:
        print(f"mlcheck-lint: internal error in {e['path']}: {e['message']}. This is a bug in "
              f"the rule, not in your code; the file's other rules still ran. Please report it "
              f"with the file.", file=sys.stderr)
    return 2 if errors else 0
