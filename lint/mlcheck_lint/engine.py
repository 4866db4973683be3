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

import ast
import contextlib
import dataclasses
import heapq
import io
import json
import os
import re
import stat
import tokenize
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from . import api, cache as cache_mod, notebooks
from ._version import __version__
from .api import Edit, Finding, Fix, FileContext, ProjectContext, ProjectRule, Rule, Settings
from .config import DEFAULT_MAX_FILE_SIZE, LintConfig, path_matches
from .traversal import MAX_CST_DEPTH, ast_depth, walk_ast, walk_cst

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
    #: Why the file is not read at all (a symlink leaving the project): its MLC000.
    refused: str = ""


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
    #: libcst trees built in this run (0 when no selected rule needed one).
    cst_builds: int = 0
    #: Files whose findings were answered by the cache: their edits must not be applied
    #: (``run(..., fixing=True)`` re-lints any of them that has a fix).
    from_cache: frozenset[str] = frozenset()


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
    root = Path(config.root).resolve()
    found: dict[str, FileTask] = {}
    for given in paths:
        link = Path(os.path.abspath(given))
        path = link.resolve()
        if not path.exists():
            raise FileNotFoundError(f"{given}: no such file or folder")
        if path != link and not _inside(path, root):
            rel = relative(link, root)
            found[rel] = _outside_link(link, path, rel)
            continue
        if path.is_file() or not path.is_dir():
            rel = relative(path, root)
            # An explicitly named file is always linted: as what its name says, else
            # as Python (a script without an extension).
            found[rel] = FileTask(str(path), rel, _kind(rel, text_patterns) or "python")
            continue
        for folder, dirs, files in os.walk(path):
            folder_rel = relative(Path(folder), root)
            prefix = "" if folder_rel == "." else folder_rel + "/"
            dirs[:] = sorted(d for d in dirs if not _excluded(prefix + d, d, excludes))
            for name in [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
                # os.walk does not follow folder links; one leaving the project is named.
                full = Path(folder, name)
                target = full.resolve()
                if not _inside(target, root):
                    found[prefix + name] = _outside_link(full, target, prefix + name)
            for name in files:
                rel = prefix + name
                kind = _kind(rel, text_patterns)
                if kind is None or _excluded(rel, name, excludes):
                    continue
                full = Path(folder, name)
                if os.path.islink(full):
                    target = full.resolve()
                    if not _inside(target, root):
                        found[rel] = _outside_link(full, target, rel)
                        continue
                found[rel] = FileTask(str(full), rel, kind)
    return [found[k] for k in sorted(found)]


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _outside_link(link: Path, target: Path, rel: str) -> FileTask:
    return FileTask(str(link), rel, "python",
                    refused=f"symlink to {target}, outside the project root; not followed "
                            f"(lint the target where it lives, or replace the link by a copy)")


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


def read_regular(path: str, limit: int | None = None) -> bytes:
    """Read a file's bytes, refusing anything but a regular file (a FIFO would block).

    Args:
        path: The file.
        limit: Refuse a file larger than this many bytes (``None``: no cap).

    Returns:
        The bytes.

    Raises:
        _Unreadable: Not a regular file, too large, or an OS error (with its reason).
    """
    try:
        # O_NONBLOCK: opening a FIFO without a writer must not wait for one.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise _Unreadable(f"cannot read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Unreadable("not a regular file (a FIFO, socket or device); only regular files are read")
        if limit is not None and info.st_size > limit:
            raise _Unreadable(f"too large: {info.st_size:,} bytes, over the max-file-size of "
                              f"{limit:,} bytes; raise max-file-size in [tool.mlcheck.lint] "
                              f"or exclude the file")
        chunks = []
        while True:
            chunk = os.read(fd, max(info.st_size + 1, 65536))
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise _Unreadable(f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)


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
    except (tokenize.TokenError, SyntaxError, IndentationError, RecursionError):
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
    import traceback  # only when a rule raised

    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return {"rule": rule.code, "path": rel,
            "message": f"rule {rule.code} ({type(rule).__name__}.{what}) raised "
                       f"{type(exc).__name__}: {exc}{where}"}


class _FileRun:
    """The rules of one file (or cell): one ``ast`` walk, one libcst pass, then the rest."""

    def __init__(self, ctx: FileContext, enabled: frozenset[str], findings: list[Finding],
                 errors: list[dict[str, str]]) -> None:
        self.ctx, self.enabled, self.findings, self.errors = ctx, enabled, findings, errors
        self.cst_refused: str | None = None

    def keep(self, found: Iterable[Finding] | None) -> None:
        ctx = self.ctx
        for f in found or ():
            if f.code in self.enabled:
                if f.path != ctx.path or f.cell != ctx.cell:
                    f = dataclasses.replace(f, path=ctx.path, cell=ctx.cell)
                self.findings.append(f)

    def guard(self, rule: Rule, what: str, call: Any) -> Any:
        try:
            return call()
        except api.CstUnavailable as exc:
            self.cst_refused = self.cst_refused or exc.reason
        except Exception as exc:  # a rule bug must not stop the run
            self.errors.append(_crash(rule, self.ctx.path, exc, what))
        return None

    def run(self, rules: list[Rule], collect: bool, facts: dict[str, Any]) -> None:
        ctx = self.ctx
        crashed: set[int] = set()

        def on_error(rule: Rule, exc: BaseException) -> None:
            crashed.add(id(rule))
            self.errors.append(_crash(rule, ctx.path, exc, "handler"))

        ast_visitors = [r for r in rules if isinstance(r, api.AstVisitorRule)]
        cst_visitors = [r for r in rules if isinstance(r, api.CstVisitorRule)]
        visitors = ast_visitors + cst_visitors
        for rule in visitors:
            if self.guard(rule, "begin_file", lambda r=rule: r.begin_file(ctx) or True) is None:
                crashed.add(id(rule))
        if ast_visitors and ctx.tree is not None:
            walk_ast(ctx, [r for r in ast_visitors if id(r) not in crashed], on_error)
        if cst_visitors:
            live = [r for r in cst_visitors if id(r) not in crashed]
            self.guard(live[0], "libcst pass", lambda: walk_cst(ctx, live, on_error)) if live else None
        for rule in rules:
            if id(rule) in crashed:
                continue
            if rule in visitors:
                self.keep(self.guard(rule, "end_file", lambda r=rule: list(r.end_file() or ())))
            else:
                self.keep(self.guard(rule, "check", lambda r=rule: list(r.check(ctx) or ())))
            if collect and isinstance(rule, ProjectRule):
                value = self.guard(rule, "collect", lambda r=rule: _jsonable(r.collect(ctx)))
                if value is not None:
                    facts[rule.code] = value[0]


def _jsonable(value: Any) -> tuple[Any]:
    json.dumps(value)
    return (value,)


def _unreadable(rel: str, reason: str, line: int, col: int, cell: int | None = None) -> Finding:
    return Finding(UNREADABLE, f"cannot lint this file: {reason}", line, col, path=rel, cell=cell)


def _parse(text: str) -> Any:
    """Build the libcst tier of a file (tests patch this to count builds)."""
    return api.parse_cst(text)


def _cst_factory(tree: Any) -> Any:
    def build(text: str) -> Any:
        # libcst's parser and visitors recurse: a tree deeper than this would take
        # minutes or crash the worker, so it is refused before libcst sees it.
        depth = ast_depth(tree, MAX_CST_DEPTH)
        if depth > MAX_CST_DEPTH:
            raise api.CstUnavailable(f"the code is nested more than {MAX_CST_DEPTH} levels deep, "
                                     f"too deep for the concrete-tree rules (the other rules ran)")
        return _parse(text)
    return build


def parse_ast(text: str, rel: str, cell: int | None) -> tuple[Any, Finding | None]:
    """Parse with CPython's ``ast`` (nothing runs): the first tier and the safety gate.

    Args:
        text: The source.
        rel: The file's project-relative path.
        cell: The notebook cell, or ``None``.

    Returns:
        ``(tree, None)``, or ``(None, MLC000 finding)`` for input CPython refuses.
    """
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not ours
            return ast.parse(text), None
    except SyntaxError as err:
        line = err.lineno or 1
        col = max((err.offset or 1) - 1, 0)
        return None, _unreadable(rel, f"syntax error: {err.msg}", line, col, cell)
    except RecursionError:
        return None, _unreadable(rel, "the code is nested too deeply for Python's parser", 1, 0, cell)
    except MemoryError:
        return None, _unreadable(rel, "Python's parser ran out of memory on this file", 1, 0, cell)
    except (ValueError, OverflowError) as exc:
        return None, _unreadable(rel, f"Python's parser refused it: {exc}", 1, 0, cell)


def _lint_python(text: str, rel: str, cell: int | None, todo: list[Rule], settings: Settings,
                 enabled: frozenset[str], collect: bool, findings: list[Finding],
                 facts: dict[str, Any], errors: list[dict[str, str]], fixing: bool) -> int:
    """Parse one file or cell with ``ast`` and run its rules; return libcst trees built."""
    tree, bad = parse_ast(text, rel, cell)
    if bad is not None:
        findings.append(bad)
        return 0
    ctx = FileContext(rel, text, tree, settings, cell=cell, cst_factory=_cst_factory(tree))
    ctx.fixing = fixing
    runner = _FileRun(ctx, enabled, findings, errors)
    if any(r.needs == "cst" for r in todo):
        try:
            ctx.wrapper  # noqa: B018  (built once, before the rules, so a refusal is one finding)
        except api.CstUnavailable as exc:
            runner.cst_refused = exc.reason
            todo = [r for r in todo if r.needs != "cst"]
        except Exception as exc:
            runner.cst_refused = f"libcst failed: {type(exc).__name__}: {exc}"
            todo = [r for r in todo if r.needs != "cst"]
    runner.run(todo, collect, facts)
    if runner.cst_refused:
        findings.append(_unreadable(rel, runner.cst_refused, 1, 0, cell))
    return int(ctx.has_cst)


def lint_data(task: FileTask, data: bytes, rules: list[Rule], settings: Settings,
              enabled: frozenset[str], fixing: bool = False,
              max_size: int | None = None) -> dict[str, Any]:
    """Lint one file's bytes: decode, parse with ``ast`` once, run the rules.

    Args:
        task: The file.
        data: Its bytes.
        rules: Instances of the enabled rules.
        settings: The validated settings rules read.
        enabled: The enabled codes (findings of other codes are dropped).
        fixing: ``--fix`` or ``--diff`` is computing edits (rules may read
            ``ctx.fixing`` to skip work that only a fix needs).
        max_size: Refuse Python text (a file or a cell) longer than this many bytes.

    Returns:
        The file's result: ``findings``, ``facts``, ``noqa``, ``errors``, ``parsed``,
        ``cst_builds``.
    """
    rel = task.rel
    findings: list[Finding] = []
    facts: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    noqa: list[list[Any]] = []
    parsed = False
    builds = 0
    try:
        if task.refused:
            raise _Unreadable(task.refused)
        if task.kind == "notebook":
            try:
                notebook = notebooks.read_notebook(data)
            except UnicodeDecodeError as exc:
                raise _Unreadable(f"cannot decode notebook as UTF-8: {exc}") from None
            except RecursionError:
                raise _Unreadable("not a valid notebook: its JSON is nested too deeply") from None
            except ValueError as exc:
                line = getattr(exc, "lineno", 1)
                col = max(getattr(exc, "colno", 1) - 1, 0)
                raise _Unreadable(f"not a valid notebook: {exc}", line, col) from None
            cells = [(number, text) for number, _source, text in notebooks.code_cells(notebook) if text is not None]
            # requires_text is judged on the whole notebook, not cell by cell: a rule follows
            # state across cells (`model = Net()` in one, the loss in a later one), so every
            # cell of a notebook that may concern it is read
            whole = "\n".join(text for _, text in cells)
            todo = [r for r in rules if "python" in r.file_kinds
                    and (not r.requires_text or any(s in whole for s in r.requires_text))]
            for number, text in cells:
                noqa.extend(_noqa_comments(text, number))
                if not todo:
                    continue
                parsed = True
                if max_size is not None and len(text) > max_size:
                    findings.append(_unreadable(rel, f"cell too large: {len(text):,} characters, over "
                                                     f"the max-file-size of {max_size:,}", 1, 0, number))
                    continue
                builds += _lint_python(text, rel, number, todo, settings, enabled, False, findings,
                                       facts, errors, fixing)
        elif task.kind == "text":
            text, _ = decode(data, python=False)
            name = rel.rsplit("/", 1)[-1]
            todo = [r for r in rules if "text" in r.file_kinds
                    and any(path_matches(p, rel, name) for p in (r.text_files or api.TEXT_FILE_PATTERNS))]
            noqa = _noqa_comments(text, None)
            ctx = FileContext(rel, text, None, settings, kind="text")
            ctx.fixing = fixing
            _FileRun(ctx, enabled, findings, errors).run(todo, True, facts)
        else:
            if max_size is not None and len(data) > max_size:
                raise _Unreadable(f"too large: {len(data):,} bytes, over the max-file-size of "
                                  f"{max_size:,} bytes; raise max-file-size in [tool.mlcheck.lint] "
                                  f"or exclude the file")
            text, _ = decode(data)
            if text.startswith("\ufeff"):
                text = text[1:]
            noqa = _noqa_comments(text, None)
            todo = [r for r in rules if "python" in r.file_kinds
                    and (not r.requires_text or any(s in text for s in r.requires_text))]
            if todo:
                parsed = True
                builds = _lint_python(text, rel, None, todo, settings, enabled, True, findings,
                                      facts, errors, fixing)
    except _Unreadable as exc:
        findings = [_unreadable(rel, exc.reason, exc.line, exc.col)]
    if UNREADABLE not in enabled:
        findings = [f for f in findings if f.code != UNREADABLE]
    return {"findings": [finding_to_dict(f) for f in findings], "facts": facts,
            "noqa": noqa, "errors": errors, "parsed": parsed, "cst_builds": builds}


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


def _empty_result(finding: Finding) -> dict[str, Any]:
    return {"findings": [finding_to_dict(finding)], "facts": {}, "noqa": [], "errors": [],
            "parsed": False, "cst_builds": 0}


def _lint_chunk(spec: dict[str, Any], tasks: list[FileTask]) -> list[tuple[str, dict[str, Any]]]:
    rules, settings, enabled = _spec_rules(spec)
    limit = spec.get("max_file_size")
    fixing = bool(spec.get("fixing"))
    out = []
    for task in tasks:
        if task.refused:
            out.append((task.rel, _empty_result(_unreadable(task.rel, task.refused, 1, 0))))
            continue
        try:
            # Notebooks carry outputs (images) in their JSON: their cells are capped instead.
            data = read_regular(task.path, None if task.kind == "notebook" else limit)
        except _Unreadable as exc:
            result = _empty_result(_unreadable(task.rel, exc.reason, exc.line, exc.col))
            if UNREADABLE not in enabled:
                result["findings"] = []
        else:
            result = lint_data(task, data, rules, settings, enabled, fixing=fixing, max_size=limit)
            result["hash"] = cache_mod.content_hash(data)
        out.append((task.rel, result))
    return out


def _init_worker() -> None:
    import gc

    # A tree is many acyclic objects, freed by reference counting; the cyclic collector
    # would rescan them every few thousand allocations. Collect rarely instead (a
    # worker holds one file's trees at a time).
    gc.freeze()
    gc.set_threshold(200_000, 50, 50)


def _chunks(tasks: list[FileTask], sizes: dict[str, int], jobs: int) -> list[list[FileTask]]:
    # Few large chunks keep inter-process traffic low; several per worker, filled
    # biggest file first into the lightest chunk (by bytes), balance a tree whose files
    # differ a thousandfold in size, so one huge file does not leave a core idle.
    ordered = sorted(tasks, key=lambda t: (-sizes.get(t.rel, 0), t.rel))
    count = max(1, min(len(ordered), jobs * 6))
    bins: list[list[FileTask]] = [[] for _ in range(count)]
    heap = [(0, i) for i in range(count)]
    for task in ordered:
        load, i = heapq.heappop(heap)
        bins[i].append(task)
        heapq.heappush(heap, (load + sizes.get(task.rel, 0) + 2000, i))
    # Heaviest chunks are submitted first, so the pool ends on small ones.
    return sorted((b for b in bins if b), key=lambda b: -sum(sizes.get(t.rel, 0) for t in b))


def _spec(rules: list[type[Rule]], enabled: frozenset[str], settings: Settings,
          config: LintConfig | None = None, fixing: bool = False) -> dict[str, Any]:
    classes = {r.code: [r.__module__, r.__qualname__] for r in rules if r.code in enabled}
    return {"codes": sorted(enabled), "settings": settings.as_dict(), "classes": classes,
            "max_file_size": getattr(config, "max_file_size", DEFAULT_MAX_FILE_SIZE),
            "fixing": fixing}


def _pool_context() -> Any:
    import multiprocessing

    # fork in a threaded process (an IDE, a test runner with threads) can deadlock the
    # child on a lock some other thread held; forkserver forks from a clean, single-
    # threaded server instead, and spawn is the portable fallback.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        # The server imports the linter once, so each worker forks with it loaded.
        context.set_forkserver_preload(["mlcheck_lint.engine", "mlcheck_lint.rules"])
    return context


def _crashed_result(task: FileTask, why: str) -> dict[str, Any]:
    return _empty_result(_unreadable(
        task.rel, f"the linter's worker process died on this file ({why}); the rest of the "
                  f"run went on. Please report it with the file", 1, 0))


@contextlib.contextmanager
def _neutral_start() -> Iterator[None]:
    """Start pool processes where no checked code can be imported.

    A forkserver or spawn child starts as ``python -c ...``, which puts the current
    directory first on its import path before it imports ``multiprocessing``: run from
    a project holding ``signal.py``, the child would run that file. So the pool starts
    from an empty private folder (every task path is absolute), with
    ``PYTHONSAFEPATH=1`` as well where Python honours it (3.11+).
    """
    import tempfile

    here = os.getcwd()
    saved = os.environ.get("PYTHONSAFEPATH")
    with tempfile.TemporaryDirectory(prefix="mlcheck-lint-pool-") as empty:
        os.chdir(empty)
        os.environ["PYTHONSAFEPATH"] = "1"
        try:
            yield
        finally:
            os.chdir(here)
            if saved is None:
                os.environ.pop("PYTHONSAFEPATH", None)
            else:
                os.environ["PYTHONSAFEPATH"] = saved


def _run_pool(spec: dict[str, Any], chunks: list[list[FileTask]], workers: int,
              results: dict[str, dict[str, Any]], progress: Any) -> list[list[FileTask]]:
    """Run chunks in one pool; return the chunks lost when a worker died."""
    # Imported here: a run the cache answers (or a small one) starts no pool, and
    # multiprocessing with its dependencies is a tenth of such a run's start-up.
    import concurrent.futures
    from concurrent.futures.process import BrokenProcessPool

    lost: list[list[FileTask]] = []
    with _neutral_start(), concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=_pool_context(), initializer=_init_worker) as pool:
        futures = {pool.submit(_lint_chunk, spec, chunk): chunk for chunk in chunks}
        for future in concurrent.futures.as_completed(futures):
            try:
                done = future.result()
            except BrokenProcessPool:
                lost.append(futures[future])
                continue
            for rel, result in done:
                results[rel] = result
            if progress is not None:
                progress(len(futures[future]))
    return lost


#: A run this small is linted in the main process: starting a forkserver pool costs
#: about a second, more than linting a few files (a pre-commit run passes a handful).
#: Every file has passed CPython's ``ast`` gate first, which keeps the input known to
#: crash libcst's native parser away from it.
SMALL_RUN_FILES = 4
SMALL_RUN_BYTES = 256 * 1024


def lint_tasks(tasks: list[FileTask], spec: dict[str, Any], jobs: int,
               sizes: dict[str, int], progress: Any = None) -> dict[str, dict[str, Any]]:
    """Lint files, in a process pool when ``jobs > 1`` and the run is not tiny.

    A worker that dies (a crash in native code, the OOM killer) loses only its chunk:
    the lost chunks are split and retried in a fresh pool until the file that kills
    a worker on its own is found; that file gets an MLC000 finding and the run goes on.

    Args:
        tasks: The files that need linting (cache misses).
        spec: Enabled codes, settings and rule modules, as sent to workers.
        jobs: The number of worker processes (capped at the usable cores).
        sizes: File sizes in bytes, to balance the chunks.
        progress: Called with the number of files finished after each chunk.

    Returns:
        ``{rel: result}``.
    """
    results: dict[str, dict[str, Any]] = {}
    jobs = min(jobs, default_jobs())
    small = len(tasks) <= SMALL_RUN_FILES and sum(sizes.get(t.rel, 0) for t in tasks) <= SMALL_RUN_BYTES
    if jobs <= 1 or len(tasks) <= 1 or small:
        for task in tasks:
            for rel, result in _lint_chunk(spec, [task]):
                results[rel] = result
            if progress is not None:
                progress(1)
        return results
    chunks = _chunks(tasks, sizes, jobs)
    lost = _run_pool(spec, chunks, min(jobs, len(chunks)), results, progress)
    while lost:
        retry: list[list[FileTask]] = []
        for chunk in lost:
            if len(chunk) > 1:
                half = len(chunk) // 2
                retry += [chunk[:half], chunk[half:]]
            else:
                # Alone in its own pool: if the worker dies again, this file killed it.
                if _run_pool(spec, [chunk], 1, results, progress):
                    results[chunk[0].rel] = _crashed_result(chunk[0], "it crashed twice, once alone")
                    if progress is not None:
                        progress(1)
        lost = _run_pool(spec, retry, min(jobs, len(retry)), results, progress) if retry else []
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
        use_cache: bool = True, rules: list[type[Rule]] | None = None, fixing: bool = False,
        progress: Callable[[int, int, int], None] | None = None) -> Report:
    """Lint files and folders.

    Args:
        paths: Files and folders to lint.
        config: The validated configuration.
        jobs: Worker processes (default: the number of cores; never more than those).
        use_cache: Read and write the per-file cache.
        rules: Every registered rule class (default: :func:`load_rules`).
        fixing: The findings' fixes will be applied (``--fix``, ``--diff``). Edits are
            never taken from the cache: a cached file with a fixable finding is linted
            again from its bytes. (Without ``fixing``, cached fixes are for display;
            :attr:`Report.from_cache` names the files whose findings came from it.)
        progress: Called as ``progress(done, total, cache_hits)`` once the cache has
            answered and after each batch of files (a terminal progress line).

    Returns:
        The report, findings sorted by path, cell, line and column.
    """
    rules = load_rules() if rules is None else rules
    enabled = config.enabled_codes(rules)
    active = [r for r in rules if r.code in enabled]
    tasks = discover(paths, config, text_rule_patterns(active))
    spec = _spec(rules, enabled, config.settings, config, fixing)
    jobs = jobs or default_jobs()
    cache = cache_mod.Cache(config.cache_dir if use_cache else None,
                            _cache_key({k: v for k, v in spec.items() if k != "fixing"}, active))
    results: dict[str, dict[str, Any]] = {}
    todo: list[FileTask] = []
    sizes: dict[str, int] = {}
    cached = 0
    limit = spec["max_file_size"]
    for task in tasks:
        if task.refused:
            todo.append(task)
            continue
        try:
            data = read_regular(task.path, None if task.kind == "notebook" else limit)
        except _Unreadable:
            todo.append(task)  # the worker reports it, without reading it again
            sizes[task.rel] = 0
            continue
        sizes[task.rel] = len(data)
        hit = cache.get(task.rel, cache_mod.content_hash(data)) if use_cache else None
        if hit is not None and fixing and any(d.get("fix") for d in hit["findings"]):
            hit = None  # recompute edits from the file, never from the cache
        if hit is not None:
            results[task.rel] = hit
            cached += 1
        else:
            todo.append(task)
    total = len(tasks)
    done = [cached]
    if progress is not None:
        progress(cached, total, cached)

    def advance(count: int) -> None:
        done[0] += count
        if progress is not None:
            progress(min(done[0], total), total, cached)

    fresh = lint_tasks(todo, spec, jobs, sizes, advance)
    parsed = 0
    builds = 0
    for rel, result in fresh.items():
        results[rel] = result
        parsed += bool(result.get("parsed"))
        builds += int(result.get("cst_builds") or 0)
        if not result["errors"] and "hash" in result:
            cache.put(rel, result)
    cache.save()

    findings: list[Finding] = []
    for task in tasks:
        result = results[task.rel]
        findings.extend(finding_from_dict(d, task.rel) for d in result["findings"])
    errors: list[dict[str, str]] = []
    noqa: dict[str, list[list[Any]]] = {}
    facts: dict[str, dict[str, Any]] = {}
    for task in tasks:
        result = results[task.rel]
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
                  parsed=parsed, cached=cached, suppressed=suppressed, enabled=enabled,
                  cst_builds=builds, from_cache=frozenset(t.rel for t in tasks if t.rel not in fresh))


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
