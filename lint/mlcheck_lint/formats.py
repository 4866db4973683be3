"""Output formats: text, json, sarif (2.1.0) and github workflow commands; rule tables.

The JSON schema (``schema_version`` 1) is kept stable: fields are only ever added.
"""

from __future__ import annotations

import collections
import json
import re

from pathlib import Path
from typing import Any, Callable, Iterable

from ._version import __version__
from .api import Finding, Rule
from .engine import Report

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: The documentation site (``[project.urls] Documentation``); each rule has its page
#: there, generated from its docstring (``docs/lint/rules/<CODE>.md``).
DOCS_URI = "https://pytest-mlcheck.readthedocs.io"
INFORMATION_URI = f"{DOCS_URI}/lint/"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def display_path(rel: str, root: Path) -> str:
    """Return a finding's path as the user should see it: relative to the working folder.

    Args:
        rel: The project-relative (or absolute) path.
        root: The project root.

    Returns:
        A path relative to the current folder when the file is below it, else absolute.
    """
    return _display_path(rel, root, Path.cwd())


def _display_path(rel: str, root: Path, cwd: Path) -> str:
    path = root / rel
    try:
        return path.relative_to(cwd).as_posix()
    except ValueError:
        return path.as_posix()


class _DisplayPaths:
    """:func:`display_path` for one report: the working folder read once, each file once.

    A report names the same file in many findings (1,991 findings in 306 files on timm),
    and the path arithmetic was a third of rendering it.

    Args:
        root: The project root.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cwd = Path.cwd()
        self.seen: dict[str, str] = {}

    def __call__(self, rel: str) -> str:
        shown = self.seen.get(rel)
        if shown is None:
            shown = self.seen[rel] = _display_path(rel, self.root, self.cwd)
        return shown


def location(f: Finding, root: Path, paths: Callable[[str], str] | None = None) -> str:
    """Return ``path:line:col`` (``path:cell N:line:col`` in a notebook), column 1-based.

    Args:
        f: The finding.
        root: The project root.
        paths: A report's :class:`_DisplayPaths` (default: compute the path afresh).

    Returns:
        The location text.
    """
    cell = f"cell {f.cell}:" if f.cell else ""
    shown = paths(f.path) if paths is not None else display_path(f.path, root)
    return f"{shown}:{cell}{f.line}:{f.col + 1}"


#: ``--show-source`` does not read a file larger than this (a "too large" MLC000).
SHOW_SOURCE_MAX_BYTES = 64 * 1024 * 1024


def _read_for_display(path: Path, root: Path) -> bytes | None:
    """Return a file's bytes for ``--show-source``, or ``None`` when it must not be shown.

    A symlink leading out of the project is not followed (its lines are someone else's
    file), and only a regular file is opened, without blocking: a FIFO named ``x.py``
    would otherwise hang the output after the run itself had finished.
    """
    import os
    import stat

    real = Path(os.path.realpath(path))
    base = Path(os.path.realpath(root))
    if real != base and base not in real.parents:
        return None
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > SHOW_SOURCE_MAX_BYTES:
            return None
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read()
    except OSError:
        return None
    finally:
        os.close(fd)


def _lines(text: str) -> list[str]:
    # Python's line breaks only: str.splitlines also splits at form feeds and U+2028,
    # which would show the wrong line for every finding below one.
    return _LINE_BREAK.split(text)


def _source_line(f: Finding, root: Path, cache: dict[tuple[str, int | None], list[str]]) -> str | None:
    key = (f.path, f.cell)
    if key not in cache:
        cache[key] = []
        data = _read_for_display(root / f.path, root)
        try:
            if data is None:
                pass
            elif f.cell:
                from . import notebooks

                cells = {n: t for n, t, _ in notebooks.code_cells(notebooks.read_notebook(data))}
                cache[key] = _lines(cells.get(f.cell, ""))
            else:
                try:
                    from .engine import decode

                    text = decode(data, python=f.path.endswith(".py"))[0]
                except Exception:  # the very file an MLC000 says cannot be decoded
                    text = data.decode("utf-8", errors="replace")
                # Columns count from after a BOM, as the engine linted the text.
                cache[key] = _lines(text.lstrip("\ufeff"))
        except Exception:
            cache[key] = []
    lines = cache[key]
    return lines[f.line - 1] if 0 < f.line <= len(lines) else None


def fixable(f: Finding, unsafe: bool = False) -> bool:
    """Say whether ``--fix`` (with ``--unsafe-fixes`` when ``unsafe``) would fix a finding.

    Args:
        f: The finding.
        unsafe: Count unsafe fixes too.

    Returns:
        Whether it is fixable.
    """
    return f.fix is not None and (f.fix.safety == "safe" or unsafe)


#: What a clean text run prints, in ruff's words.
ALL_PASSED = "All checks passed!"


def plural(n: int, word: str, many: str | None = None) -> str:
    """Return ``n`` with the word in the right number (``1 finding``, ``2 findings``).

    Args:
        n: The count.
        word: The singular.
        many: The plural when it is not ``word + "s"``.

    Returns:
        The count and the word.
    """
    return f"{n} {word if n == 1 else many or word + 's'}"


def summary(report: Report, unsafe: bool = False) -> str:
    """Return the closing line of a text run: the total and what ``--fix`` would do.

    Args:
        report: The run's report.
        unsafe: Whether unsafe fixes are enabled.

    Returns:
        ``Found N findings (K fixable with --fix).``, or :data:`ALL_PASSED` when there
        is nothing.
    """
    n = len(report.findings)
    if not n:
        return ALL_PASSED
    fix_n = sum(fixable(f, unsafe) for f in report.findings)
    hidden = sum(fixable(f, True) for f in report.findings) - fix_n
    line = f"Found {plural(n, 'finding')}"
    if fix_n:
        line += f" ({fix_n} fixable with --fix)"
    if hidden:
        line += f"; {hidden} more with --fix --unsafe-fixes (preview with --diff --unsafe-fixes)"
    return line + "."


def text(report: Report, show_source: bool = False, unsafe: bool = False,
         show_fixes: bool = False, with_summary: bool = True) -> str:
    """Render findings as ``path:line:col: CODE message`` lines and a summary.

    Args:
        report: The run's report.
        show_source: Print the offending line and a caret under each finding.
        unsafe: Whether unsafe fixes are enabled (for the ``[*]`` marks).
        show_fixes: Print what each finding's fix would do under it.
        with_summary: End with the summary line (``--quiet`` turns it off).

    Returns:
        The text, ending with a newline (empty when there is nothing to say). A clean
        run's summary is :data:`ALL_PASSED`.
    """
    lines = []
    cache: dict[tuple[str, int | None], list[str]] = {}
    paths = _DisplayPaths(report.root)
    for f in report.findings:
        mark = "[*] " if fixable(f, unsafe) else ""
        lines.append(f"{location(f, report.root, paths)}: {f.code} {mark}{f.message}")
        if show_source:
            src = _source_line(f, report.root, cache)
            if src is not None:
                width = (f.end_col - f.col) if f.end_line == f.line and f.end_col else 1
                lines.append(f"    {src}")
                lines.append("    " + " " * f.col + "^" * max(1, min(width, len(src) - f.col)))
        if show_fixes and f.fix is not None:
            how = "--fix" if fixable(f, unsafe) else "--fix --unsafe-fixes"
            lines.append(f"    = fix ({f.fix.safety}, {how}): {f.fix.description}")
    if with_summary and (report.findings or not report.errors):
        lines.append(summary(report, unsafe))
    return "\n".join(lines) + ("\n" if lines else "")


def statistics(report: Report, rules: dict[str, type[Rule]], with_summary: bool = True) -> str:
    """Render counts per code, most frequent first, then the total.

    Args:
        report: The run's report.
        rules: ``{code: rule class}``.
        with_summary: End with the total line (``--quiet`` turns it off).

    Returns:
        One line per code: count, code, ``[*]`` when fixable, the rule's summary; then
        ``Found N findings.`` (with how many ``--fix`` fixes) or :data:`ALL_PASSED`.
    """
    counts = collections.Counter(f.code for f in report.findings)
    out = []
    for code, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        rule = rules.get(code)
        mark = "[*]" if any(fixable(f) for f in report.findings if f.code == code) else "   "
        out.append(f"{count:6d}  {code}  {mark} {rule.summary if rule else ''}".rstrip())
    if with_summary and (report.findings or not report.errors):
        out.append(summary(report))
    return "\n".join(out) + ("\n" if out else "")


def fix_listing(applied: dict[str, dict[str, int]], rules: dict[str, type[Rule]], root: Path,
                verb: str = "Fixed") -> str:
    """Render ``--show-fixes``: the fixes applied (or, for ``--diff``, to be applied).

    Args:
        applied: ``{project-relative path: {code: number of fixes}}``.
        rules: ``{code: rule class}``, for the rule names.
        root: The project root.
        verb: ``Fixed`` or ``Would fix``.

    Returns:
        ``Fixed N findings:`` then per file ``- path:`` and ``    K × CODE (name)`` lines,
        or ``No findings fixed.`` when there were none.
    """
    total = sum(sum(codes.values()) for codes in applied.values())
    if not total:
        return "No findings fixed.\n" if verb == "Fixed" else "No findings would be fixed.\n"
    out = [f"{verb} {plural(total, 'finding')}:"]
    for rel in sorted(applied):
        codes = applied[rel]
        if not codes:
            continue
        out.append(f"- {display_path(rel, root)}:")
        for code, count in sorted(codes.items(), key=lambda kv: (-kv[1], kv[0])):
            rule = rules.get(code)
            name = f" ({rule.name})" if rule is not None and rule.name else ""
            out.append(f"    {count} \u00d7 {code}{name}")
    return "\n".join(out) + "\n"


def _finding_json(f: Finding, paths: Callable[[str], str]) -> dict[str, Any]:
    return {
        "code": f.code, "message": f.message, "path": f.path,
        "display_path": paths(f.path), "cell": f.cell,
        "line": f.line, "column": f.col + 1,
        "end_line": f.end_line, "end_column": f.end_col + 1 if f.end_col is not None else None,
        "fix": None if f.fix is None else {
            "safety": f.fix.safety, "description": f.fix.description,
            "edits": [{"start_line": e.start_line, "start_column": e.start_col + 1,
                       "end_line": e.end_line, "end_column": e.end_col + 1, "text": e.text}
                      for e in f.fix.edits]},
    }


#: ``json.dumps(..., indent=2)`` of a fix-less finding as an item of the report's
#: ``findings`` list (two levels deep), its values left to fill in.
_FINDING_JSON = ("    {\n"
                 + ",\n".join(f'      "{key}": %s' for key in (
                     "code", "message", "path", "display_path", "cell", "line", "column",
                     "end_line", "end_column", "fix"))
                 + "\n    }")


def _json_atom(value: Any) -> str | None:
    """Return ``json.dumps(value)`` for a ``str``, an ``int`` or ``None``; ``None`` otherwise."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is str:
        return json.encoder.encode_basestring_ascii(value)
    if kind is int:
        return int.__repr__(value)
    return None


def _finding_json_text(f: Finding, paths: Callable[[str], str]) -> str:
    """Return a finding as ``json_report`` lays it out, byte for byte as ``json.dumps`` would.

    ``json.dumps`` with ``indent`` runs the pure-Python encoder, a generator per nested
    value; a fix-less finding (nearly all of them) is instead filled into a template,
    with each value encoded by the same functions the encoder uses. Anything else (a
    fix, a value of another type) goes through ``json.dumps`` itself.
    """
    if f.fix is None:
        atoms = tuple(_json_atom(v) for v in (
            f.code, f.message, f.path, paths(f.path), f.cell, f.line, f.col + 1, f.end_line,
            f.end_col + 1 if f.end_col is not None else None, None))
        if None not in atoms:
            return _FINDING_JSON % atoms
    return "    " + json.dumps(_finding_json(f, paths), indent=2).replace("\n", "\n    ")


def json_report(report: Report) -> str:
    """Render the run as JSON (schema version 1, documented in the README).

    The text is exactly ``json.dumps(data, indent=2) + "\\n"`` of the report's dict; the
    findings are laid out by :func:`_finding_json_text` (timm's 1,991 findings: 26 ms
    with ``json.dumps`` alone, 7 ms so).

    Args:
        report: The run's report.

    Returns:
        The JSON text.
    """
    counts = collections.Counter(f.code for f in report.findings)
    head = {
        "schema_version": 1,
        "tool": {"name": "mlcheck-lint", "version": __version__},
        "root": report.root.as_posix(),
        "summary": {"files": len(report.files), "parsed": report.parsed, "cached": report.cached,
                    "findings": len(report.findings), "suppressed": report.suppressed,
                    "fixed": report.fixed, "errors": len(report.errors),
                    "by_code": dict(sorted(counts.items()))},
    }
    paths = _DisplayPaths(report.root)
    items = [_finding_json_text(f, paths) for f in report.findings]
    findings = "[\n" + ",\n".join(items) + "\n  ]" if items else "[]"
    errors = json.dumps(report.errors, indent=2).replace("\n", "\n  ")
    # ``head`` ends in "\n}": the two remaining keys go before that brace, one level in.
    return f'{json.dumps(head, indent=2)[:-2]},\n  "findings": {findings},\n  "errors": {errors}\n}}\n'


def rule_url(code: str) -> str:
    """Return the address of a rule's page on the documentation site.

    Args:
        code: The rule code.

    Returns:
        The page's URL (MkDocs directory URLs: ``.../lint/rules/MLC103/``).
    """
    return f"{DOCS_URI}/lint/rules/{code}/"


def _first_paragraph(doc: str) -> str:
    for block in doc.split("\n\n"):
        block = block.strip()
        if block and not block.endswith(":"):
            return " ".join(block.split())
    return ""


def _sarif_rule(rule: type[Rule]) -> dict[str, Any]:
    doc = rule.documentation()
    return {
        "id": rule.code,
        "name": "".join(part.capitalize() for part in (rule.name or rule.code).split("-")),
        "shortDescription": {"text": rule.summary or rule.code},
        "fullDescription": {"text": _first_paragraph(doc) or rule.summary or rule.code},
        "help": {"text": doc or rule.summary, "markdown": doc_markdown(doc) or rule.summary},
        "helpUri": rule_url(rule.code),
        "defaultConfiguration": {"level": "warning" if rule.code != "MLC000" else "error",
                                 "enabled": rule.default == "on"},
        "properties": {"tags": ["mlcheck", rule.name] if rule.name else ["mlcheck"],
                       "fix": rule.fix_safety or "none"},
    }


def sarif(report: Report, rules: dict[str, type[Rule]]) -> str:
    """Render the run as SARIF 2.1.0, as GitHub code scanning reads it.

    Args:
        report: The run's report.
        rules: ``{code: rule class}`` of every registered rule.

    Returns:
        The SARIF JSON text.
    """
    codes = sorted(set(report.enabled) | {f.code for f in report.findings})
    described = [rules[c] for c in codes if c in rules]
    index = {r.code: i for i, r in enumerate(described)}
    results = []
    for f in report.findings:
        region: dict[str, Any] = {"startLine": max(f.line, 1), "startColumn": f.col + 1}
        if f.end_line is not None and f.end_col is not None and not f.cell:
            region.update(endLine=f.end_line, endColumn=f.end_col + 1)
        result: dict[str, Any] = {
            "ruleId": f.code,
            "level": "error" if f.code == "MLC000" else "warning",
            "message": {"text": f.message},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": f.path, "uriBaseId": "%SRCROOT%"},
                "region": region}}],
        }
        if f.code in index:
            result["ruleIndex"] = index[f.code]
        if f.cell:
            result["properties"] = {"notebookCell": f.cell}
        if f.fix is not None and not f.cell:
            result["fixes"] = [{
                "description": {"text": f"{f.fix.description} ({f.fix.safety} fix)"},
                "artifactChanges": [{
                    "artifactLocation": {"uri": f.path, "uriBaseId": "%SRCROOT%"},
                    "replacements": [{
                        "deletedRegion": {"startLine": e.start_line, "startColumn": e.start_col + 1,
                                          "endLine": e.end_line, "endColumn": e.end_col + 1},
                        "insertedContent": {"text": e.text}} for e in f.fix.edits]}]}]
        results.append(result)
    notifications = [{"level": "error", "message": {"text": e["message"]},
                      "locations": [{"physicalLocation": {"artifactLocation": {
                          "uri": e["path"], "uriBaseId": "%SRCROOT%"}}}]
                      if e["path"] != "<project>" else [],
                      "associatedRule": {"id": e["rule"]}} for e in report.errors]
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "mlcheck-lint", "version": __version__,
                                "semanticVersion": __version__,
                                "informationUri": INFORMATION_URI, "rules": [_sarif_rule(r) for r in described]}},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": report.root.resolve().as_uri() + "/"}},
            "invocations": [{"executionSuccessful": not report.errors,
                             "toolExecutionNotifications": notifications}],
            "results": results,
        }],
    }
    return json.dumps(log, indent=2) + "\n"


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def github(report: Report) -> str:
    """Render findings as GitHub Actions workflow commands (annotations).

    Args:
        report: The run's report.

    Returns:
        One ``::error``/``::warning`` line per finding and internal error.
    """
    lines = []
    paths = _DisplayPaths(report.root)
    for f in report.findings:
        level = "error" if f.code == "MLC000" else "warning"
        props = [f"file={_escape_property(paths(f.path))}"]
        if not f.cell:
            props += [f"line={f.line}", f"col={f.col + 1}"]
            if f.end_line is not None:
                props.append(f"endLine={f.end_line}")
                if f.end_col is not None and f.end_line == f.line:
                    props.append(f"endColumn={f.end_col + 1}")
        title = f"{f.code}" + (f" (cell {f.cell}, line {f.line})" if f.cell else "")
        props.append(f"title={_escape_property(title)}")
        lines.append(f"::{level} {','.join(props)}::{_escape_data(f.code + ' ' + f.message)}")
    for e in report.errors:
        lines.append(f"::error title=mlcheck-lint internal error::{_escape_data(e['message'])}")
    return "\n".join(lines) + ("\n" if lines else "")


def doc_markdown(doc: str) -> str:
    """Turn a rule's documentation (ruff-shaped docstring) into Markdown.

    Unindented ``Heading:`` lines become bold headings, their indented bodies are
    dedented (so they are paragraphs and fenced code, not indented code blocks), and
    reST ````literals```` become Markdown ```literals```.

    Args:
        doc: The rule's documentation, as :meth:`~mlcheck_lint.api.Rule.documentation` returns it.

    Returns:
        Markdown text.
    """
    out = []
    for line in doc.splitlines():
        stripped = line.strip()
        if line and not line[0].isspace() and stripped.endswith((":", "?")) and len(stripped) <= 40:
            out.append(f"**{stripped.rstrip(':')}**")
            out.append("")
            continue
        out.append(line[4:] if line.startswith("    ") else line)
    return re.sub(r"(?<!`)``([^`\n]+)``(?!`)", r"`\1`", "\n".join(out)).strip()


def rules_table(rules: Iterable[type[Rule]], fmt: str) -> str:
    """Render the rule list (``--list-rules``).

    ``markdown`` is exactly what the README's rule section holds: a table, then each
    rule's documentation.

    Args:
        rules: Rule classes, sorted by code.
        fmt: ``text``, ``json`` or ``markdown``.

    Returns:
        The rendered list.
    """
    rules = list(rules)
    if fmt == "json":
        return json.dumps([{"code": r.code, "name": r.name, "summary": r.summary,
                            "default": r.default, "fix": r.fix_safety,
                            "file_kinds": list(r.file_kinds),
                            "documentation": r.documentation()} for r in rules], indent=2) + "\n"
    if fmt == "markdown":
        out = ["| code | name | default | fix | what |", "|---|---|---|---|---|"]
        for r in rules:
            summary = r.summary.replace("|", "\\|")
            out.append(f"| [{r.code}](#{r.code.lower()}) | `{r.name}` | {r.default} | "
                       f"{r.fix_safety or ''} | {summary} |")
        for r in rules:
            out += ["", f"### {r.code}", "", f"`{r.name}` (default: {r.default}"
                    + (f", {r.fix_safety} fix" if r.fix_safety else "") + ")", "",
                    doc_markdown(r.documentation())]
        return "\n".join(out) + "\n"
    width = max((len(r.name) for r in rules), default=4)
    out = [f"{r.code}  {r.default:<7}  {(r.fix_safety or '-'):<6}  {r.name:<{width}}  {r.summary}"
           for r in rules]
    return "\n".join(out) + "\n"


def explain(rule: type[Rule]) -> str:
    """Render ``--explain CODE``: the rule's header and its documentation.

    Args:
        rule: The rule class.

    Returns:
        The text.
    """
    fix = {"safe": "safe fix (applied by --fix)",
           "unsafe": "unsafe fix (shown by --diff, applied by --fix --unsafe-fixes)"}.get(
        rule.fix_safety or "", "no automatic fix")
    head = f"{rule.code} ({rule.name}): {rule.summary}\nDefault: {rule.default}. Fix: {fix}."
    return f"{head}\n\n{rule.documentation()}\n"


def unified_diff(old: str, new: str, path: str) -> str:
    """Return a unified diff between two versions of a file.

    Args:
        old: The current text.
        new: The fixed text.
        path: The path shown in the header.

    Returns:
        The diff text.
    """
    import difflib

    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=f"a/{path}", tofile=f"b/{path}"))


