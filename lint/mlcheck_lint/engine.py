"""The lint engine: discovery, one parse per file, rule dispatch, process pool, project phase.

A run goes:

1. :func:`discover` lists the files: ``.py``, ``.ipynb`` and, when an enabled rule reads
   them, the text files its ``text_files`` patterns name (``pyproject.toml``,
   ``requirements*.txt`` ...). Excluded folders are never entered; explicitly passed
   files are always checked.
2. The main process hashes each file; the cache answers for unchanged files.
3. The rest go, as paths in large chunks, to a process pool. A worker reads each file,
   decodes it, parses it once with libcst, and runs every enabled rule that reads that
   kind of file over the one tree: ``check`` for findings and, for a project rule,
   ``collect`` for facts. A file that cannot be decoded or parsed yields one MLC000
   finding; a rule that raises is recorded as an internal error naming the rule and the
   file, and the run goes on.
4. Project rules run once in the main process over every file's facts.
5. ``per-file-ignores`` and ``# noqa`` comments remove findings; MLC001 reports the
   ``noqa`` comments that removed nothing.

The engine never imports or runs the code it checks, and never names a single rule.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import json
import os
import re
import tokenize
import traceback
from pathlib import Path
from typing import Any, Iterable

from . import api, cache as cache_mod, notebooks
from ._version import __version__
from .api import Edit, Finding, Fix, FileContext, ProjectContext, ProjectRule, Rule, Settings
from .config import LintConfig, path_matches

UNREADABLE = "MLC000"
UNUSED_NOQA = "MLC001"

_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Za-z]+[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*))?",
                   re.IGNORECASE)


def load_rules() -> list[type[Rule]]:
    """Import the engine's own codes and every rule family; return all rules by code.

    Returns:
        The registered rule classes, sorted by code.
    """
    from . import engine_rules  # noqa: F401  (registers MLC000 and MLC001)

    return list(api.iter_rules())


@dataclasses.dataclass(frozen=True)
class FileTask:
    """One file to lint: where it is, its project-relative path, and its kind."""

    path: str
    rel: str
    kind: str  # "python", "notebook" or "text"


@dataclasses.dataclass
class Report:
    """The outcome of a run."""

    root: Path
    findings: list[Finding]
    errors: list[dict[str, str]]
    files: list[str]
    parsed: int = 0
    cached: int = 0
    suppressed: int = 0
    enabled: frozenset[str] = frozenset()
    fixed: int = 0


# --------------------------------------------------------------------------- discovery


def relative(path: Path, root: Path) -> str:
    """Return a path relative to the project root with ``/`` separators.

    Args:
        path: An absolute path.
        root: The project root.

    Returns:
        The relative path, or the absolute one for a file outside the root.
    """
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def text_rule_patterns(rules: Iterable[type[Rule]]) -> dict[str, tuple[str, ...]]:
    """Return, per text rule, the glob patterns of the files it reads.

    Args:
        rules: Enabled rule classes.

    Returns:
        ``{code: patterns}`` for every rule whose ``file_kinds`` include ``text``.
    """
    return {r.code: tuple(r.text_files or api.TEXT_FILE_PATTERNS)
            for r in rules if "text" in r.file_kinds}


def _text_wanted(rel: str, patterns: dict[str, tuple[str, ...]]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(path_matches(p, rel, name) for pats in patterns.values() for p in pats)


def _excluded(rel: str, name: str, excludes: tuple[str, ...]) -> bool:
    return any(path_matches(p, rel, name) for p in excludes)


def _kind(rel: str, text_patterns: dict[str, tuple[str, ...]]) -> str | None:
    if rel.endswith(".py"):
        return "python"
    if rel.endswith(".ipynb"):
        return "notebook"
    if text_patterns and _text_wanted(rel, text_patterns):
        return "text"
    return None


def discover(paths: Iterable[str | os.PathLike[str]], config: LintConfig,
             text_patterns: dict[str, tuple[str, ...]] | None = None) -> list[FileTask]:
    """List the files to lint.

    Args:
        paths: Files and folders given by the user.
        config: The run's configuration (root and excludes).
        text_patterns: Patterns of the text files enabled text rules read.

    Returns:
        The files, sorted by relative path, without duplicates.

    Raises:
        FileNotFoundError: A given path does not exist.
    """
    text_patterns = text_patterns or {}
    excludes = config.excludes
    root = config.root
    found: dict[str, FileTask] = {}
    for given in paths:
        path = Path(given).resolve()
        if not path.exists():
            raise FileNotFoundError(f"{given}: no such file or folder")
        if path.is_file():
            rel = relative(path, root)
            kind = _kind(rel, text_patterns)
            if kind is not None:
                found[rel] = FileTask(str(path), rel, kind)
            continue
        for folder, dirs, files in os.walk(path):
            folder_rel = relative(Path(folder), root)
            prefix = "" if folder_rel == "." else folder_rel + "/"
            dirs[:] = sorted(d for d in dirs if not _excluded(prefix + d, d, excludes))
            for name in files:
                rel = prefix + name
                kind = _kind(rel, text_patterns)
                if kind is not None and not _excluded(rel, name, excludes):
                    found[rel] = FileTask(os.path.join(folder, name), rel, kind)
    return [found[k] for k in sorted(found)]


# --------------------------------------------------------------------------- one file


class _Unreadable(Exception):
    def __init__(self, reason: str, line: int = 1, col: int = 0) -> None:
        super().__init__(reason)
        self.reason, self.line, self.col = reason, line, col


def decode(data: bytes, python: bool = True) -> tuple[str, str]:
    """Decode a file's bytes the way Python would.

    Args:
        data: The file's bytes.
        python: Honour a PEP 263 coding cookie (else the text must be UTF-8).

    Returns:
        ``(text, encoding)``.

    Raises:
        _Unreadable: A NUL byte (binary file), a bad coding cookie, or undecodable bytes.
    """
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise _Unreadable(f"binary file: NUL byte at offset {nul}; not a text file", line,
                          nul - (data.rfind(b"\n", 0, nul) + 1))
    encoding = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
    if python:
        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        except SyntaxError as exc:
            raise _Unreadable(f"bad coding declaration: {exc}", 1, 0) from None
    try:
        return data.decode(encoding), encoding
    except (UnicodeDecodeError, LookupError) as exc:
        start = getattr(exc, "start", 0)
        line = data.count(b"\n", 0, start) + 1
        col = start - (data.rfind(b"\n", 0, start) + 1)
        raise _Unreadable(f"cannot decode as {encoding}: {exc}", line, col) from None


def finding_to_dict(f: Finding) -> dict[str, Any]:
    """Serialise a finding for the cache and the pool (``path`` is the cache key).

    Args:
        f: The finding.

    Returns:
        A JSON-serialisable dict.
    """
    fix = None
    if f.fix is not None:
        fix = {"safety": f.fix.safety, "description": f.fix.description,
               "edits": [[e.start_line, e.start_col, e.end_line, e.end_col, e.text]
                         for e in f.fix.edits]}
    return {"code": f.code, "message": f.message, "line": f.line, "col": f.col,
            "end_line": f.end_line, "end_col": f.end_col, "cell": f.cell, "fix": fix,
            "path": f.path}


def finding_from_dict(d: dict[str, Any], path: str) -> Finding:
    """Rebuild a finding serialised by :func:`finding_to_dict`.

    Args:
        d: The dict.
        path: The file's project-relative path, used when the dict has none.

    Returns:
        The finding.
    """
    fix = None
    if d.get("fix"):
        fx = d["fix"]
        fix = Fix(fx["safety"], fx["description"], tuple(Edit(*e) for e in fx["edits"]))
    return Finding(code=d["code"], message=d["message"], line=d["line"], col=d["col"],
                   end_line=d.get("end_line"), end_col=d.get("end_col"), fix=fix,
                   path=d.get("path") or path, cell=d.get("cell"))


def _noqa_comments(text: str, cell: int | None) -> list[list[Any]]:
    if "noqa" not in text.lower():
        return []
    # Only real comments count: a noqa marker inside a string or docstring is text. The
    # tokenizer runs only on the rare files that mention noqa at all.
    comments: list[tuple[int, int, str]] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT and "noqa" in tok.string.lower():
                comments.append((tok.start[0], tok.start[1], tok.string))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        comments = [(n, line.find("#"), line[line.find("#"):])
                    for n, line in enumerate(text.splitlines(), start=1)
                    if "#" in line and "noqa" in line.lower()]
    out = []
    lines = text.splitlines()
    for number, col, comment in comments:
        match = _NOQA.search(comment)
        if match:
            codes = match.group("codes")
            line = lines[number - 1] if number <= len(lines) else ""
            # Where the code before the comment ends, and whether the directive is the
            # whole comment: what MLC001's fix needs to remove it cleanly.
            code_end = len(line[:col].rstrip())
            whole = match.start() == 0 and match.end() == len(comment.rstrip())
            out.append([cell or 0, number, col + match.start(),
                        sorted({c.upper() for c in re.split(r"[\s,]+", codes) if c})
                        if codes else None,
                        [code_end, col + match.end(), whole]])
    return out


def _crash(rule: Any, rel: str, exc: BaseException, what: str) -> dict[str, str]:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return {"rule": rule.code, "path": rel,
            "message": f"rule {rule.code} ({type(rule).__name__}.{what}) raised "
                       f"{type(exc).__name__}: {exc}{where}"}


def _run_rules(ctx: FileContext, rules: list[Rule], enabled: frozenset[str], collect: bool,
               findings: list[Finding], facts: dict[str, Any], errors: list[dict[str, str]]) -> None:
    for rule in rules:
        try:
            for f in rule.check(ctx) or ():
                if f.code in enabled:
                    if f.path != ctx.path or f.cell != ctx.cell:
                        f = dataclasses.replace(f, path=ctx.path, cell=ctx.cell)
                    findings.append(f)
        except Exception as exc:  # a rule bug must not stop the run
            errors.append(_crash(rule, ctx.path, exc, "check"))
        if collect and isinstance(rule, ProjectRule):
            try:
                value = rule.collect(ctx)
                json.dumps(value)
                facts[rule.code] = value
            except Exception as exc:
                errors.append(_crash(rule, ctx.path, exc, "collect"))


def _unreadable(rel: str, reason: str, line: int, col: int, cell: int | None = None) -> Finding:
    return Finding(UNREADABLE, f"cannot lint this file: {reason}", line, col, path=rel, cell=cell)


def _parse(text: str) -> Any:
    import libcst
    from libcst.metadata import MetadataWrapper

    return MetadataWrapper(libcst.parse_module(text), unsafe_skip_copy=True)


def _syntax_error(text: str, rel: str, cell: int | None, exc: Any) -> Finding:
    # libcst's native parser reports where it gave up, often a line late; on this
    # error path only, ask CPython's compiler (parse only, nothing runs) for its
    # message and position, which users know from tracebacks.
    import ast
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
    except SyntaxError as err:
        line = err.lineno or 1
        col = max((err.offset or 1) - 1, 0)
        return _unreadable(rel, f"syntax error: {err.msg}", line, col, cell)
    except Exception:
        pass
    message = str(exc.message).strip().splitlines()[0] if exc.message else "syntax error"
    return _unreadable(rel, f"syntax error (libcst): {message}", exc.raw_line, exc.raw_column, cell)


def _parse_or_finding(text: str, rel: str, cell: int | None) -> tuple[Any, Finding | None]:
    import libcst

    try:
        return _parse(text), None
    except libcst.ParserSyntaxError as exc:
        return None, _syntax_error(text, rel, cell, exc)
    except RecursionError:
        return None, _unreadable(rel, "the code is nested too deeply for the parser", 1, 0, cell)
    except Exception as exc:
        return None, _unreadable(rel, f"the parser failed: {type(exc).__name__}: {exc}", 1, 0, cell)


def lint_data(task: FileTask, data: bytes, rules: list[Rule], settings: Settings,
              enabled: frozenset[str]) -> dict[str, Any]:
    """Lint one file's bytes: decode, parse once, run the rules.

    Args:
        task: The file.
        data: Its bytes.
        rules: Instances of the enabled rules.
        settings: The validated settings rules read.
        enabled: The enabled codes (findings of other codes are dropped).

    Returns:
        The file's result: ``findings``, ``facts``, ``noqa``, ``errors``, ``parsed``.
    """
    rel = task.rel
    findings: list[Finding] = []
    facts: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    noqa: list[list[Any]] = []
    parsed = False
    try:
        if task.kind == "notebook":
            try:
                notebook = notebooks.read_notebook(data)
            except UnicodeDecodeError as exc:
                raise _Unreadable(f"cannot decode notebook as UTF-8: {exc}") from None
            except ValueError as exc:
                line = getattr(exc, "lineno", 1)
                col = max(getattr(exc, "colno", 1) - 1, 0)
                raise _Unreadable(f"not a valid notebook: {exc}", line, col) from None
            py_rules = [r for r in rules if "python" in r.file_kinds]
            for number, _source, text in notebooks.code_cells(notebook):
                if text is None:
                    continue
                todo = [r for r in py_rules
                        if not r.requires_text or any(s in text for s in r.requires_text)]
                noqa.extend(_noqa_comments(text, number))
                if not todo:
                    continue
                wrapper, bad = _parse_or_finding(text, rel, number)
                parsed = True
                if bad is not None:
                    findings.append(bad)
                    continue
                ctx = FileContext(rel, text, wrapper, settings, cell=number)
                _run_rules(ctx, todo, enabled, False, findings, facts, errors)
        elif task.kind == "text":
            text, _ = decode(data, python=False)
            name = rel.rsplit("/", 1)[-1]
            todo = [r for r in rules if "text" in r.file_kinds
                    and any(path_matches(p, rel, name) for p in (r.text_files or api.TEXT_FILE_PATTERNS))]
            noqa = _noqa_comments(text, None)
            ctx = FileContext(rel, text, None, settings)
            _run_rules(ctx, todo, enabled, True, findings, facts, errors)
        else:
            text, _ = decode(data)
            if text.startswith("\ufeff"):
                text = text[1:]
            noqa = _noqa_comments(text, None)
            todo = [r for r in rules if "python" in r.file_kinds
                    and (not r.requires_text or any(s in text for s in r.requires_text))]
            if todo:
                wrapper, bad = _parse_or_finding(text, rel, None)
                parsed = True
                if bad is not None:
                    findings.append(bad)
                else:
                    ctx = FileContext(rel, text, wrapper, settings)
                    _run_rules(ctx, todo, enabled, True, findings, facts, errors)
    except _Unreadable as exc:
        findings = [_unreadable(rel, exc.reason, exc.line, exc.col)]
    if UNREADABLE not in enabled:
        findings = [f for f in findings if f.code != UNREADABLE]
    return {"findings": [finding_to_dict(f) for f in findings], "facts": facts,
            "noqa": noqa, "errors": errors, "parsed": parsed}


# --------------------------------------------------------------------------- the pool

_WORKER_RULES: dict[str, tuple[list[Rule], Settings, frozenset[str]]] = {}


def _spec_rules(spec: dict[str, Any]) -> tuple[list[Rule], Settings, frozenset[str]]:
    key = json.dumps(spec, sort_keys=True)
    if key not in _WORKER_RULES:
        import importlib

        classes = {r.code: r for r in load_rules()}
        for code, (module, qualname) in spec.get("classes", {}).items():
            if code not in classes:
                # A rule defined outside the families (a plugin, a test) in a worker that
                # was spawned rather than forked: import it by where it lives.
                obj: Any = importlib.import_module(module)
                for part in qualname.split("."):
                    obj = getattr(obj, part)
                classes[code] = obj
        enabled = frozenset(spec["codes"])
        rules = [classes[c]() for c in sorted(enabled) if c in classes]
        settings = Settings(**{k: tuple(v) if isinstance(v, list) else v
                               for k, v in spec["settings"].items()})
        _WORKER_RULES[key] = (rules, settings, enabled)
    return _WORKER_RULES[key]


def _lint_chunk(spec: dict[str, Any], tasks: list[FileTask]) -> list[tuple[str, dict[str, Any]]]:
    rules, settings, enabled = _spec_rules(spec)
    out = []
    for task in tasks:
        try:
            with open(task.path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            result = {"findings": [finding_to_dict(_unreadable(task.rel, f"cannot read: {exc.strerror}", 1, 0))],
                      "facts": {}, "noqa": [], "errors": [], "parsed": False}
        else:
            result = lint_data(task, data, rules, settings, enabled)
            result["hash"] = cache_mod.content_hash(data)
        out.append((task.rel, result))
    return out


def _init_worker() -> None:
    import gc

    # A libcst tree is millions of acyclic objects, freed by reference counting; the
    # cyclic collector would rescan them on every few thousand allocations. Collect
    # rarely instead (a worker holds one file's tree at a time).
    gc.freeze()
    gc.set_threshold(200_000, 50, 50)


def _chunks(tasks: list[FileTask], sizes: dict[str, int], jobs: int) -> list[list[FileTask]]:
    # Few large chunks keep inter-process traffic low; several per worker still balance
    # a tree whose files differ a thousandfold in size. Biggest files go first.
    ordered = sorted(tasks, key=lambda t: -sizes.get(t.rel, 0))
    count = max(1, min(len(ordered), jobs * 6))
    bins: list[list[FileTask]] = [[] for _ in range(count)]
    loads = [0] * count
    for task in ordered:
        i = loads.index(min(loads))
        bins[i].append(task)
        loads[i] += sizes.get(task.rel, 0) + 2000
    return [b for b in bins if b]


def _spec(rules: list[type[Rule]], enabled: frozenset[str], settings: Settings) -> dict[str, Any]:
    classes = {r.code: [r.__module__, r.__qualname__] for r in rules if r.code in enabled}
    return {"codes": sorted(enabled), "settings": dataclasses.asdict(settings), "classes": classes}


def lint_tasks(tasks: list[FileTask], spec: dict[str, Any], jobs: int,
               sizes: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Lint files, in a process pool when ``jobs > 1`` and there is more than one file.

    Args:
        tasks: The files that need linting (cache misses).
        spec: Enabled codes, settings and rule modules, as sent to workers.
        jobs: The number of worker processes.
        sizes: File sizes in bytes, to balance the chunks.

    Returns:
        ``{rel: result}``.
    """
    results: dict[str, dict[str, Any]] = {}
    if jobs <= 1 or len(tasks) <= 1:
        for rel, result in _lint_chunk(spec, tasks):
            results[rel] = result
        return results
    chunks = _chunks(tasks, sizes, jobs)
    with concurrent.futures.ProcessPoolExecutor(max_workers=min(jobs, len(chunks)),
                                                initializer=_init_worker) as pool:
        futures = [pool.submit(_lint_chunk, spec, chunk) for chunk in chunks]
        for future in concurrent.futures.as_completed(futures):
            for rel, result in future.result():
                results[rel] = result
    return results


# --------------------------------------------------------------------------- a run


def default_jobs() -> int:
    """Return the number of cores this process may use (its CPU affinity where known).

    Returns:
        At least 1.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _matches(code: str, entries: Iterable[str]) -> bool:
    return any(e == "ALL" or code.startswith(e) for e in entries)


def suppress(findings: list[Finding], noqa: dict[str, list[list[Any]]], config: LintConfig,
             enabled: frozenset[str]) -> tuple[list[Finding], int]:
    """Drop findings silenced by ``per-file-ignores`` or ``# noqa``; add MLC001.

    Args:
        findings: Every finding of the run.
        noqa: ``{rel: [[cell, line, col, codes or None], ...]}``.
        config: The configuration (``per-file-ignores``).
        enabled: The enabled codes (MLC001 is reported only when enabled).

    Returns:
        ``(kept findings, number suppressed)``.
    """
    by_line: dict[tuple[str, int, int], list[Any]] = {}
    for rel, comments in noqa.items():
        for cell, line, col, codes, *extent in comments:
            by_line[(rel, cell, line)] = [col, codes, set(), extent[0] if extent else None]
    kept: list[Finding] = []
    suppressed = 0
    ignores: dict[str, tuple[str, ...]] = {}
    for f in findings:
        if f.path not in ignores:
            ignores[f.path] = config.ignored_for(f.path)
        if _matches(f.code, ignores[f.path]):
            suppressed += 1
            continue
        comment = by_line.get((f.path, f.cell or 0, f.line))
        if comment is not None and (comment[1] is None or _matches(f.code, comment[1])):
            comment[2].add(f.code)
            suppressed += 1
            continue
        kept.append(f)
    if UNUSED_NOQA in enabled:
        for (rel, cell, line), (col, codes, used, extent) in by_line.items():
            if codes is None:
                if used:
                    continue
                message = "unused `# noqa`: no finding on this line to suppress; remove the comment"
                keep: list[str] = []
            else:
                unused = [c for c in codes if c.startswith("MLC")
                          and not any(u.startswith(c) for u in used)]
                if not unused:
                    continue
                message = (f"unused `# noqa` code{'s' if len(unused) > 1 else ''} "
                           f"{', '.join(unused)}: nothing to suppress here; remove "
                           f"{'them' if len(unused) > 1 else 'it'}")
                keep = [c for c in codes if c not in unused]
            f = Finding(UNUSED_NOQA, message, line, col, path=rel, cell=cell or None,
                        fix=_noqa_fix(line, col, keep, extent))
            if not _matches(UNUSED_NOQA, ignores.get(rel) or config.ignored_for(rel)):
                kept.append(f)
    return kept, suppressed


def _noqa_fix(line: int, col: int, keep: list[str], extent: Any) -> Fix | None:
    if not extent:
        return None
    code_end, end, whole = extent
    if keep:
        return Fix("safe", "keep only the codes that suppress something",
                   (Edit(line, col, line, end, f"# noqa: {', '.join(keep)}"),))
    if not whole:  # the directive shares its comment with other text: leave it to a human
        return None
    return Fix("safe", "remove the unused noqa comment", (Edit(line, code_end, line, end, ""),))


def _sort_key(f: Finding) -> tuple[Any, ...]:
    return (f.path, f.cell or 0, f.line, f.col, f.code, f.message)


def run(paths: Iterable[str | os.PathLike[str]], config: LintConfig, *, jobs: int | None = None,
        use_cache: bool = True, rules: list[type[Rule]] | None = None) -> Report:
    """Lint files and folders.

    Args:
        paths: Files and folders to lint.
        config: The validated configuration.
        jobs: Worker processes (default: the number of cores).
        use_cache: Read and write the per-file cache.
        rules: Every registered rule class (default: :func:`load_rules`).

    Returns:
        The report, findings sorted by path, cell, line and column.
    """
    rules = load_rules() if rules is None else rules
    enabled = config.enabled_codes(rules)
    active = [r for r in rules if r.code in enabled]
    tasks = discover(paths, config, text_rule_patterns(active))
    spec = _spec(rules, enabled, config.settings)
    jobs = jobs or default_jobs()
    cache = cache_mod.Cache(config.cache_dir if use_cache else None, _cache_key(spec, active))
    results: dict[str, dict[str, Any]] = {}
    todo: list[FileTask] = []
    sizes: dict[str, int] = {}
    cached = 0
    for task in tasks:
        try:
            with open(task.path, "rb") as fh:
                data = fh.read()
        except OSError:
            todo.append(task)  # the worker reports it
            continue
        sizes[task.rel] = len(data)
        hit = cache.get(task.rel, cache_mod.content_hash(data)) if use_cache else None
        if hit is not None:
            results[task.rel] = hit
            cached += 1
        else:
            todo.append(task)
    fresh = lint_tasks(todo, spec, jobs, sizes)
    parsed = 0
    for rel, result in fresh.items():
        results[rel] = result
        parsed += bool(result.get("parsed"))
        if not result["errors"] and "hash" in result:
            cache.put(rel, result)
    cache.save()

    findings: list[Finding] = []
    errors: list[dict[str, str]] = []
    noqa: dict[str, list[list[Any]]] = {}
    facts: dict[str, dict[str, Any]] = {}
    for task in tasks:
        result = results[task.rel]
        findings.extend(finding_from_dict(d, task.rel) for d in result["findings"])
        errors.extend(result["errors"])
        if result["noqa"]:
            noqa[task.rel] = result["noqa"]
        for code, value in result["facts"].items():
            facts.setdefault(code, {})[task.rel] = value
    python_files = [t.rel for t in tasks if t.kind == "python"]
    project = ProjectContext(config.root, config.settings, python_files, facts)
    for cls in active:
        if issubclass(cls, ProjectRule):
            rule = cls()
            try:
                for f in rule.check_project(project) or ():
                    if f.code in enabled:
                        findings.append(f)
            except Exception as exc:
                errors.append(_crash(rule, "<project>", exc, "check_project"))
    findings, suppressed = suppress(findings, noqa, config, enabled)
    findings.sort(key=_sort_key)
    return Report(root=config.root, findings=findings, errors=errors, files=[t.rel for t in tasks],
                  parsed=parsed, cached=cached, suppressed=suppressed, enabled=enabled)


def _cache_key(spec: dict[str, Any], active: list[type[Rule]]) -> str:
    import importlib

    import types

    rule_modules = [importlib.import_module(r.__module__) for r in active]
    # Every file of the linter (helpers that rules import included) plus each rule's own
    # module, wherever it lives; taken from disk so import order cannot change the key.
    package = Path(__file__).parent
    own = [types.SimpleNamespace(__file__=str(p)) for p in sorted(package.rglob("*.py"))]
    modules = own + rule_modules
    return cache_mod.config_key([spec, cache_mod.source_fingerprint(modules), __version__])
