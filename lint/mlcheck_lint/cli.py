"""The ``mlcheck-lint`` command line.

Exit codes: 0 no findings (or ``--exit-zero``), 1 findings, 2 a usage or configuration
error, a fix that could not be written, or an internal error (a rule raised, or the
linter itself failed; the message says which, with the traceback for the latter).

Output follows ruff's conventions: findings and the summary on stdout (``All checks
passed!`` on a clean run, silenced by ``--quiet``), progress and fix notes on stderr.
Progress is drawn only on an interactive terminal, and only for runs that last longer
than about a second: never into a pipe, a file, a CI log or a JSON or SARIF report.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, TextIO

from ._version import __version__
from .config import ConfigError, check_codes, load_config

FORMATS = ("text", "json", "sarif", "github")

#: Seconds a run must last before progress appears (short runs stay quiet).
PROGRESS_DELAY_S = 1.0
#: The shortest time between two redraws of the progress line.
PROGRESS_INTERVAL_S = 0.1


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
    p.add_argument("--output-format", "--format", dest="format", choices=FORMATS + ("markdown",),
                   default="text", help="output format (--format is an alias; markdown only "
                                        "with --list-rules)")
    p.add_argument("--fix", action="store_true", help="apply safe fixes")
    p.add_argument("--lock", action="store_true",
                   help="with --fix, regenerate stale pip-tools locks (MLC203) with the real "
                        "pip-compile, using each lock's own header options (pip-compile may use "
                        "the network); a lock pip-compile cannot regenerate is left unchanged")
    p.add_argument("--unsafe-fixes", action="store_true",
                   help="with --fix or --diff, include unsafe fixes")
    p.add_argument("--show-fixes", action="store_true",
                   help="list the fixes applied (with --fix), that would be applied (with "
                        "--diff), or each finding's fix")
    p.add_argument("--diff", action="store_true",
                   help="print the diff that --fix would apply (with --unsafe-fixes: --fix "
                        "--unsafe-fixes); change nothing")
    p.add_argument("--jobs", "-j", type=int, default=None,
                   help="worker processes (default and maximum: the number of cores)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="cache folder (default: .mlcheck-lint-cache in the project root); it "
                        "must not exist yet or be one mlcheck-lint created")
    p.add_argument("--statistics", action="store_true",
                   help="print counts per code and the total instead of findings")
    p.add_argument("--list-rules", action="store_true", help="list every rule and exit")
    p.add_argument("--explain", metavar="CODE", help="print a rule's documentation and exit")
    p.add_argument("--config", type=Path, default=None, help="pyproject.toml to read [tool.mlcheck.lint] from")
    p.add_argument("--exit-zero", action="store_true", help="exit 0 even when there are findings")
    p.add_argument("--show-source", action="store_true", help="show the offending line under each finding")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="print the findings only: no summary, progress or fix notes")
    p.add_argument("--version", action="version", version=f"mlcheck-lint {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0, 1 (findings) or 2 (any error, including a bug in the linter).
    """
    args = build_parser().parse_args(argv)
    for stream in (sys.stdout, sys.stderr):
        try:  # a finding that quotes an odd character must not crash the output
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            pass
    try:
        return _main(args)
    except ConfigError as exc:
        print(f"mlcheck-lint: configuration error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"mlcheck-lint: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlcheck-lint: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``); nothing more can be said on stdout.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 2
    except Exception as exc:
        from .cache import CacheError

        if isinstance(exc, CacheError):
            print(f"mlcheck-lint: error: {exc}", file=sys.stderr)
            return 2
        import traceback

        # Anything else is a bug in the linter: exit 2, never 1 (which means findings).
        sys.stdout.flush()
        print(f"mlcheck-lint: internal error: {type(exc).__name__}: {exc}\n"
              f"This is a bug in mlcheck-lint {__version__}, not in your code. Please report "
              f"it with the traceback below and the command line.\n"
              f"{''.join(traceback.format_exception(type(exc), exc, exc.__traceback__))}",
              file=sys.stderr, end="")
        return 2


class Progress:
    """The ``files done/total`` line drawn on stderr while a long run works.

    It draws only after :data:`PROGRESS_DELAY_S`, at most every
    :data:`PROGRESS_INTERVAL_S`, fits the line to the terminal, and erases it on
    :meth:`close` so the findings that follow start on a clean line.

    Args:
        stream: The terminal (stderr).
        delay: Seconds before the first draw (default :data:`PROGRESS_DELAY_S`).
        clock: A monotonic clock (tests pass a fake one).
    """

    def __init__(self, stream: TextIO, delay: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.delay = PROGRESS_DELAY_S if delay is None else delay
        self.clock = clock
        self.start = clock()
        self.last_draw: float | None = None
        self.drawn = False

    def __call__(self, done: int, total: int, cache_hits: int = 0) -> None:
        """Report how far the run is.

        Args:
            done: Files finished (cache hits included).
            total: Files in the run.
            cache_hits: Files answered by the cache.
        """
        now = self.clock()
        if now - self.start < self.delay:
            return
        if self.last_draw is not None and now - self.last_draw < PROGRESS_INTERVAL_S and done < total:
            return
        self.last_draw = now
        line = f"mlcheck-lint: {done}/{total} files checked ({cache_hits} from cache)"
        import shutil  # only for a terminal's progress line

        width = shutil.get_terminal_size((80, 24)).columns - 1
        try:
            self.stream.write("\r\x1b[K" + line[:max(width, 10)])
            self.stream.flush()
        except (OSError, ValueError):
            return
        self.drawn = True

    def close(self) -> None:
        """Erase the progress line, if one was drawn."""
        if self.drawn:
            try:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            except (OSError, ValueError):
                pass
            self.drawn = False


def progress_wanted(stream: TextIO, output_format: str, quiet: bool) -> bool:
    """Say whether to draw progress: text output to a person at an interactive terminal.

    Args:
        stream: Where progress would go (stderr).
        output_format: The ``--output-format``.
        quiet: Whether ``--quiet`` was given.

    Returns:
        ``False`` for a pipe or file, a CI job (``CI`` set), ``TERM=dumb``, machine
        formats and ``--quiet``.
    """
    if quiet or output_format != "text":
        return False
    if os.environ.get("CI") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _run(engine: Any, paths: list[str], config: Any, *, jobs: int, use_cache: bool,
         rules: list[Any], show_progress: bool, fixing: bool) -> Any:
    """Run the engine, with a progress line when wanted and the engine can report it."""
    accepted = inspect.signature(engine.run).parameters
    kwargs: dict[str, Any] = {"fixing": fixing} if "fixing" in accepted else {}
    progress = None
    if show_progress and "progress" in accepted:
        progress = Progress(sys.stderr)
        kwargs["progress"] = progress
    try:
        return engine.run(paths, config, jobs=jobs, use_cache=use_cache, rules=rules, **kwargs)
    finally:
        if progress is not None:
            progress.close()


def _main(args: argparse.Namespace) -> int:
    from . import cache as cache_mod, engine, formats

    rules = engine.load_rules()
    by_code = {r.code: r for r in rules}
    out = sys.stdout
    if args.format == "markdown" and not args.list_rules:
        raise ConfigError("command line", "--output-format", "markdown is only for --list-rules")
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
    if args.lock and not args.fix:
        raise ConfigError("command line", "--lock", "only works with --fix (--fix --lock); it "
                                                    "regenerates stale pip-tools locks")
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
    elif config.config_file is None:
        # No pyproject.toml: no project to keep a cache in. A private per-user folder,
        # never the working directory (which may be anyone's folder, or the tests).
        changes["cache_dir"] = cache_mod.user_cache_dir(config.root)
    config = dataclasses.replace(config, **changes)
    # More processes than cores only adds start-up cost and memory (one per file).
    jobs = min(args.jobs or engine.default_jobs(), engine.default_jobs())
    use_cache = not args.no_cache
    show_progress = progress_wanted(sys.stderr, args.format, args.quiet)
    run = lambda: _run(engine, args.paths, config, jobs=jobs, use_cache=use_cache,  # noqa: E731
                       rules=rules, show_progress=show_progress, fixing=args.fix or args.diff)
    report = run()
    note = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr))

    if args.diff:
        from . import fixes

        outcome = fixes.fix_files(report, config, rules, unsafe=args.unsafe_fixes, write=False)
        for rel, (old, new) in outcome.changed.items():
            out.write(formats.unified_diff(old, new, formats.display_path(rel, report.root)))
        out.flush()  # the diff (stdout) must come before the notes (stderr) on a terminal
        if args.show_fixes:
            sys.stderr.write(formats.fix_listing(outcome.applied, by_code, report.root, "Would fix"))
        note(_diff_note(outcome, report, args.unsafe_fixes))
        return _errors(report) or (1 if outcome.changed and not args.exit_zero else 0)

    failed = False
    listing = ""
    if args.fix:
        from . import fixes

        outcome = fixes.fix_files(report, config, rules, unsafe=args.unsafe_fixes, write=True)
        for rel, reason in sorted(outcome.failed.items()):
            print(f"mlcheck-lint: error: cannot fix {formats.display_path(rel, report.root)}: "
                  f"{reason}; the file is unchanged", file=sys.stderr)
        failed = bool(outcome.failed)
        relocked = 0
        if args.lock and "MLC203" in report.enabled:
            from .rules.deps import relock

            relocked, lock_failures = relock.run_for_cli(report.root, report.files, quiet=args.quiet)
            failed = failed or bool(lock_failures)
        elif args.lock:
            note("--lock: MLC203 is not selected; no lock was checked or regenerated.")
        if outcome.written or relocked:
            report = run()
        report.fixed = outcome.total
        if args.show_fixes:
            listing = formats.fix_listing(outcome.applied, by_code, report.root)
        n_files = len(outcome.written)
        note(f"Fixed {formats.plural(outcome.total, 'finding')} in {formats.plural(n_files, 'file')}.")

    text_out = args.format == "text"
    if listing:
        # With text output the listing belongs with the findings; a machine format keeps
        # stdout parseable.
        (out if text_out else sys.stderr).write(listing)
    if args.format == "json":
        out.write(formats.json_report(report))
    elif args.format == "sarif":
        out.write(formats.sarif(report, by_code))
    elif args.format == "github":
        out.write(formats.github(report))
    elif args.statistics:
        out.write(formats.statistics(report, by_code, with_summary=not args.quiet))
    else:
        out.write(formats.text(report, show_source=args.show_source, unsafe=args.unsafe_fixes,
                               show_fixes=args.show_fixes and not args.fix,
                               with_summary=not args.quiet))
    if args.statistics and not text_out:
        out.flush()
        sys.stderr.write(formats.statistics(report, by_code, with_summary=not args.quiet))
    code = _errors(report)
    if code or failed:
        return 2
    return 0 if args.exit_zero or not report.findings else 1


def _diff_note(outcome: Any, report: Any, unsafe: bool) -> str:
    from . import formats

    more = ""
    if not unsafe:
        hidden = sum(1 for f in report.findings if f.fix is not None and f.fix.safety == "unsafe")
        if hidden:
            more = f" ({formats.plural(hidden, 'more fix', 'more fixes')} with --diff --unsafe-fixes)"
    if not outcome.changed:
        return f"No fixes available{more}."
    files = formats.plural(len(outcome.changed), "file")
    return f"Would fix {formats.plural(outcome.total, 'finding')} in {files}{more}."


def _errors(report: object) -> int:
    errors = getattr(report, "errors", [])
    if errors:
        sys.stdout.flush()  # keep the findings before the error lines on a terminal
    for e in errors:
        print(f"mlcheck-lint: internal error in {e['path']}: {e['message']}. This is a bug in "
              f"the rule, not in your code; the file's other rules still ran. Please report it "
              f"with the file.", file=sys.stderr)
    return 2 if errors else 0
