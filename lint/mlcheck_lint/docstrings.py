"""Docstring parsing for the documentation rules (MLC1xx): Google, NumPy and Sphinx.

The parser works on a docstring's *raw* text (what sits between the quotes in the
file), line by line, so every parameter entry and documented default keeps its line
and column and a fix can point back into the source. It never imports, evaluates or
executes anything: documented defaults are read with ``ast`` and turned into Python
values only when they are plain literals (numbers, strings, ``True``/``False``/
``None``, tuples, lists, sets and dicts of those), so ``1e-3`` compares equal to
``0.001`` and anything else (``nn.ReLU``, "the number of cores") is left alone.

Precision beats recall here: when an entry cannot be read confidently the docstring is
marked ``uncertain`` and the rules that would report missing parameters stay quiet.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import re
from typing import Any

#: Returned by :func:`literal_value` for text that is not a plain literal.
UNKNOWN = object()

STYLES = ("google", "numpy", "sphinx")

_GOOGLE_PARAM_HEADERS = {"args", "arguments", "parameters", "params", "parameter", "arg"}
_GOOGLE_OTHER_HEADERS = {"keyword args", "keyword arguments", "kwargs", "other parameters",
                         "other args", "other arguments", "keyword parameters"}
_RETURNS_HEADERS = {"returns", "return"}
_YIELDS_HEADERS = {"yields", "yield"}
_GOOGLE_KNOWN = (_GOOGLE_PARAM_HEADERS | _GOOGLE_OTHER_HEADERS | _RETURNS_HEADERS | _YIELDS_HEADERS
                 | {"raises", "raise", "attributes", "example", "examples", "note", "notes",
                    "see also", "todo", "warning", "warnings", "references", "methods",
                    "shape", "shapes", "inputs", "outputs", "usage", "reference"})
_GOOGLE_HEADER_RE = re.compile(r"^([A-Za-z][A-Za-z ]*?)\s*:\s*(.*)$")
_NUMPY_UNDERLINE_RE = re.compile(r"^\s*-{3,}\s*$")
_SPHINX_FIELD_RE = re.compile(r"^\s*:([A-Za-z]+)((?:\s+[^:]*)?):(.*)$")
_SPHINX_DETECT_RE = re.compile(
    r"^\s*:(?:param|parameter|arg|argument|key|keyword|kwarg|kwparam|type|returns?|rtype|"
    r"yields?|ytype|raises?)\b[^:\n]*:", re.M)
_GOOGLE_DETECT_RE = re.compile(
    r"^[ \t]*(?:Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|"
    r"Other Parameters|Returns|Return|Yields|Yield|Raises|Attributes)[ \t]*:", re.M)
_NAME = r"[\\*]*[A-Za-z_][A-Za-z0-9_]*"
_NAMES_RE = re.compile(rf"^({_NAME}(?:\s*,\s*{_NAME})*)")
_NUMPY_ENTRY_RE = re.compile(rf"^({_NAME}(?:\s*,\s*{_NAME})*)\s*(?::\s*(.*))?$")

# A documented default: in a type part anything that says "default"; in a description
# only a phrase that starts a sentence or clause, so "the warmup defaults to 0.1" about
# some other quantity is not read as this parameter's default.
_DEFAULT_IN_TYPE_RE = re.compile(
    r"\b[Dd]efaults?(?:\s+(?:to|is|value\s+is)\b\s*:?|\s*[:=]|(?=\s+[-+.\d'\"`\[({*]|\s+(?:True|False|None)\b))\s*")
_DEFAULT_IN_DESC_RE = re.compile(
    r"(?:^|(?<=[.;,(])|(?<=[.;,(]\s)|(?<=[.;,(]\s\s))\s*(?:[Dd]efaults?(?:\s+(?:to|is|value\s+is)\b\s*:?|\s*[:=])"
    r"|[Dd]efault(?=\s+[-+.\d'\"`\[({]|\s+(?:True|False|None)\b))\s*")
_CONDITIONAL_RE = re.compile(r"^[(\[]?\s*(?:if|when|whenever|for|otherwise|unless|in case|only if|else)\b")
_NUMBER_RE = re.compile(r"[-+]?(?:\d[\d_]*\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)j?")
_WORD_RE = re.compile(r"[-+]?[A-Za-z_][A-Za-z0-9_.]*")


@dataclasses.dataclass
class DocDefault:
    """A default value stated in a parameter's documentation.

    Attributes:
        text: The literal as written, without surrounding backticks.
        line: Its 0-based line in the raw docstring, or ``None`` when it spans lines.
        col: Its 0-based column in that raw line.
    """

    text: str
    line: int | None
    col: int


@dataclasses.dataclass
class DocParam:
    """One documented parameter.

    Attributes:
        name: The parameter's name without stars or backslashes (``kwargs``).
        raw_name: The name as written (``**kwargs``, ``\\*args``).
        line: 0-based line of the entry in the raw docstring.
        col: 0-based column of ``raw_name`` in that line.
        type: The documented type, if any.
        description: The entry's description, continuation lines joined by spaces.
        default: The documented default, if one is stated.
        section: ``params`` (Args / Parameters / ``:param``) or ``other`` (Keyword
            Args / Other Parameters / ``:keyword``).
    """

    name: str
    raw_name: str
    line: int
    col: int
    type: str | None = None
    description: str = ""
    default: DocDefault | None = None
    section: str = "params"


@dataclasses.dataclass
class Docstring:
    """What the documentation rules need from one docstring.

    Attributes:
        style: ``google``, ``numpy``, ``sphinx`` or ``none`` (no sections found).
        params: Documented parameters, in docstring order.
        has_params_section: Whether a parameters section (or ``:param`` field) exists.
        uncertain: Whether a line in a parameters section could not be read as an
            entry, so the list of documented parameters may be incomplete.
        returns_line: 0-based line of the Returns section, if any.
        returns_text: The Returns section's text.
        yields_line: 0-based line of the Yields section, if any.
        rtype: A Sphinx ``:rtype:`` value, if any.
        raises: Documented exceptions as ``(name, line, col)`` in the raw text.
        sections: Lower-cased names of every section found.
        text: The raw docstring text that was parsed.
    """

    style: str
    params: list[DocParam] = dataclasses.field(default_factory=list)
    has_params_section: bool = False
    uncertain: bool = False
    returns_line: int | None = None
    returns_text: str = ""
    yields_line: int | None = None
    rtype: str | None = None
    raises: list[tuple[str, int, int]] = dataclasses.field(default_factory=list)
    sections: set[str] = dataclasses.field(default_factory=set)
    text: str = ""


def _indent(line: str) -> int:
    expanded = line.expandtabs(8)
    return len(expanded) - len(expanded.lstrip())


def _lead(line: str) -> int:
    """Number of raw leading whitespace characters (the column where text starts)."""
    return len(line) - len(line.lstrip())


def normalize_name(raw: str) -> str:
    """Return a documented parameter name without escaping backslashes or stars.

    Args:
        raw: The name as written, e.g. ``\\*\\*kwargs``.

    Returns:
        The bare name, e.g. ``kwargs``.
    """
    return raw.replace("\\", "").lstrip("*")


def detect_style(text: str) -> str:
    """Return the style of one docstring: ``google``, ``numpy``, ``sphinx`` or ``none``.

    Args:
        text: The docstring's text.

    Returns:
        The detected style name.
    """
    lines = text.splitlines()
    for i in range(1, len(lines)):
        if _NUMPY_UNDERLINE_RE.match(lines[i]) and lines[i - 1].strip():
            header = lines[i - 1].strip().lower()
            if header in _GOOGLE_PARAM_HEADERS | _GOOGLE_OTHER_HEADERS | _RETURNS_HEADERS | _YIELDS_HEADERS \
                    | {"raises"}:  # as Google's ``Raises:`` alone makes a sectioned docstring
                return "numpy"
    if _GOOGLE_DETECT_RE.search(text):
        return "google"
    if _SPHINX_DETECT_RE.search(text):
        return "sphinx"
    return "none"


def parse_docstring(text: str, convention: str = "auto") -> Docstring:
    """Parse a raw docstring in the given convention (or ``auto``: detect per docstring).

    Args:
        text: The docstring's raw text (between the quotes).
        convention: ``google``, ``numpy``, ``sphinx`` or ``auto``.

    Returns:
        The parsed :class:`Docstring`; ``style`` is ``none`` when no section was found.
    """
    style = detect_style(text) if convention == "auto" else convention
    lines = text.splitlines() or [""]
    if style == "google":
        doc = _parse_google(lines)
    elif style == "numpy":
        doc = _parse_numpy(lines)
    elif style == "sphinx":
        doc = _parse_sphinx(lines)
    else:
        doc = Docstring(style="none")
    doc.text = text
    if style in STYLES and not (doc.sections or doc.params):
        doc.style = "none"
    return doc


class _Joined:
    """Continuation lines joined by single spaces, remembering where each piece came from."""

    def __init__(self) -> None:
        self.text = ""
        self.pieces: list[tuple[int, int, int]] = []  # (start in text, line, col)

    def add(self, line_no: int, col: int, piece: str) -> None:
        piece = piece.rstrip()
        if not piece:
            return
        if self.text:
            self.text += " "
        self.pieces.append((len(self.text), line_no, col))
        self.text += piece

    def locate(self, start: int, end: int) -> tuple[int | None, int]:
        for i, (s, line_no, col) in enumerate(self.pieces):
            nxt = self.pieces[i + 1][0] if i + 1 < len(self.pieces) else len(self.text) + 1
            if s <= start < nxt:
                if end > nxt - 1:
                    return None, 0
                return line_no, col + (start - s)
        return None, 0


def _scan_value(text: str, pos: int) -> tuple[int, int] | None:
    """Return the span of a literal starting at ``text[pos:]``, markup stripped.

    The value must be followed by the end of the text, punctuation or an opening
    parenthesis; "Defaults to 10 epochs" or "defaults to 1 for regression" are not
    plain statements of a default and yield ``None``.
    """
    n = len(text)
    while pos < n and text[pos] in " \t":
        pos += 1
    marks = 0
    while pos < n and text[pos] in "`*":
        marks += 1
        pos += 1
    if pos >= n:
        return None
    ch = text[pos]
    start = pos
    if ch in "'\"":
        close = text.find(ch, pos + 1)
        if close < 0 or "\\" in text[pos:close]:
            return None
        end = close + 1
    elif ch in "([{":
        depth, end = 0, None
        for j in range(pos, n):
            if text[j] in "([{":
                depth += 1
            elif text[j] in ")]}":
                depth -= 1
                if depth == 0:
                    end = j + 1
                    break
        if end is None:
            return None
    else:
        m = _NUMBER_RE.match(text, pos) if (ch.isdigit() or ch in "+-.") else _WORD_RE.match(text, pos)
        if not m or m.end() == pos:
            return None
        end = m.end()
        while end > start and text[end - 1] == ".":
            end -= 1
        if end == start:
            return None
    after = end
    closing = 0
    while after < n and text[after] in "`*" and closing < marks:
        closing += 1
        after += 1
    rest = text[after:].lstrip(" \t")
    if rest.startswith("#"):
        return start, end  # a trailing comment (``default='x'  # noqa: E501``) is not part of it
    if rest and rest[0] not in ".,;:)(]}" and not rest.startswith(("if ", "when ")):
        return None
    if rest.startswith(("if ", "when ")):
        return None
    return start, end


def find_default(type_text: str | None, description: _Joined,
                 type_pos: tuple[int, int] | None = None) -> DocDefault | None:
    """Return the default stated in an entry's type or description, if any.

    Args:
        type_text: The entry's type part (``float, default 1e-3``), or ``None``.
        description: The entry's description with positions.
        type_pos: ``(line, col)`` where ``type_text`` starts, when it is known.

    Returns:
        The :class:`DocDefault`, or ``None``.
    """
    if type_text:
        m = _DEFAULT_IN_TYPE_RE.search(type_text)
        if m:
            span = _scan_value(type_text, m.end())
            if span:
                line, col = (type_pos[0], type_pos[1] + span[0]) if type_pos else (None, 0)
                return DocDefault(type_text[span[0]:span[1]], line, col)
    text = description.text
    for m in _DEFAULT_IN_DESC_RE.finditer(text):
        sentence = re.split(r"[.;]\s", text[:m.start()])[-1].strip().lower()
        if _CONDITIONAL_RE.match(sentence):
            continue  # "If 'fast', defaults to 4": the default of a special case, not of this parameter
        span = _scan_value(text, m.end())
        if span:
            line, col = description.locate(*span)
            return DocDefault(text[span[0]:span[1]], line, col)
    return None


def _split_names(names: str, line: str, base_col: int) -> list[tuple[str, int]]:
    out = []
    search_from = base_col
    for raw in (part.strip() for part in names.split(",")):
        if not raw:
            continue
        col = line.find(raw, search_from)
        out.append((raw, col if col >= 0 else base_col))
        search_from = max(search_from, col + len(raw)) if col >= 0 else search_from
    return out


def _google_entry(body: str) -> tuple[str, str | None, int] | None:
    """Split ``x (int): desc`` into (names, type, index where the description starts)."""
    m = _NAMES_RE.match(body)
    if not m:
        return None
    pos = m.end()
    n = len(body)
    while pos < n and body[pos] in " \t":
        pos += 1
    type_text = None
    if pos < n and body[pos] == "(":
        depth = 0
        for j in range(pos, n):
            if body[j] == "(":
                depth += 1
            elif body[j] == ")":
                depth -= 1
                if depth == 0:
                    type_text = body[pos + 1:j]
                    pos = j + 1
                    break
        else:
            return None
        while pos < n and body[pos] in " \t":
            pos += 1
    if pos < n and body[pos] == ":":
        return m.group(1), type_text, pos + 1
    return None


_EXCEPTION_RE = re.compile(r"[A-Za-z_][\w.]*")


def _raises_entries(lines: list[str], body: list[int], doc: Docstring) -> None:
    """Read the exception names of a Google or NumPy raises section's entry lines."""
    indents = [_indent(lines[k]) for k in body if lines[k].strip()]
    if not indents:
        return
    top = min(indents)
    for k in body:
        line = lines[k]
        if not line.strip() or _indent(line) != top:
            continue
        head = line.split(":", 1)[0]
        col = _lead(line)
        for m in _EXCEPTION_RE.finditer(head, col):
            if head[m.end():m.end() + 1] not in ("", ",", " ") and m.end() < len(head.rstrip()):
                break
            doc.raises.append((m.group(0).rsplit(".", 1)[-1], k, m.start()))
            rest = head[m.end():].lstrip(" ")
            if not rest.startswith(","):
                break


def _parse_google(lines: list[str]) -> Docstring:
    doc = Docstring(style="google")
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _GOOGLE_HEADER_RE.match(line.strip())
        name = m.group(1).strip().lower() if m else ""
        if not m or name not in _GOOGLE_KNOWN or (m.group(2) and name not in _RETURNS_HEADERS | _YIELDS_HEADERS):
            i += 1
            continue
        previous = lines[i - 1].strip() if i else ""
        known = _GOOGLE_HEADER_RE.match(previous)
        if previous.endswith(":") and i > 1 and _indent(lines[i - 1]) <= _indent(line) and not (
                known and known.group(1).strip().lower() in _GOOGLE_KNOWN):
            # "The docstring is expected to be in the format:" then an example Args section.
            i += 1
            continue
        doc.sections.add(name)
        header_indent = _indent(line) if i else -1
        # Section body: following lines indented deeper than the header (blank lines inside allowed).
        j = i + 1
        body: list[int] = []
        while j < len(lines):
            if lines[j].strip():
                if _indent(lines[j]) <= header_indent:
                    break
                slip = _GOOGLE_HEADER_RE.match(lines[j].strip())
                if body and slip and not slip.group(2) and slip.group(1).strip().lower() in _GOOGLE_KNOWN \
                        and slip.group(1)[0].isupper() and _indent(lines[j]) <= _indent(lines[body[0]]):
                    break  # "     Attributes:" or "Returns:" indented like an entry: a new section
                if header_indent < 0 and _GOOGLE_HEADER_RE.match(lines[j].strip()) and \
                        _GOOGLE_HEADER_RE.match(lines[j].strip()).group(1).strip().lower() in _GOOGLE_KNOWN:
                    break
                body.append(j)
            j += 1
        if name in _RETURNS_HEADERS:
            doc.returns_line = i
            doc.returns_text = " ".join([m.group(2)] + [lines[k].strip() for k in body]).strip()
        elif name in _YIELDS_HEADERS:
            doc.yields_line = i
        elif name in ("raises", "raise"):
            _raises_entries(lines, body, doc)
        elif name in _GOOGLE_PARAM_HEADERS or name in _GOOGLE_OTHER_HEADERS:
            section = "params" if name in _GOOGLE_PARAM_HEADERS else "other"
            if section == "params":
                doc.has_params_section = True
            _google_params(lines, body, section, doc)
        i = j if j > i else i + 1
    return doc


def _finish_entry(current: tuple[list[DocParam], str | None, "_Joined", Any] | None,
                  doc: Docstring) -> None:
    """Add a parsed Google or NumPy parameter entry, with its description and default."""
    if current is None:
        return
    params, type_text, joined, type_pos = current
    default = find_default(type_text, joined, type_pos)
    for p in params:
        p.description = joined.text
        p.default = default
        doc.params.append(p)


def _google_params(lines: list[str], body: list[int], section: str, doc: Docstring) -> None:
    if not body:
        doc.uncertain = True  # a header with nothing we can read under it
        return
    # Entries sit at the first entry's indent; a slip to the left is still an entry.
    entry_indent = _indent(lines[body[0]])
    current: tuple[list[DocParam], str | None, _Joined, Any] | None = None

    for k in body:
        line = lines[k]
        lead = _lead(line)
        if _indent(line) <= entry_indent:
            stripped = line[lead:]
            bullet = re.match(r"^(?:[-\u2022]|\*(?=\s))\s+", stripped)
            off = lead + (bullet.end() if bullet else 0)
            parsed = _google_entry(line[off:])
            if parsed is not None:
                _finish_entry(current, doc)
                names, type_text, desc_at = parsed
                params = [DocParam(normalize_name(raw), raw, k, col, type_text.strip() if type_text else None,
                                   section=section)
                          for raw, col in _split_names(names, line, off)]
                joined = _Joined()
                joined.add(k, off + desc_at + (_lead(line[off + desc_at:])), line[off + desc_at:].strip())
                type_col = line.find("(" + type_text + ")", off) + 1 if type_text is not None else -1
                current = (params, type_text, joined, (k, type_col) if type_col > 0 else None)
                continue
            # Not an entry (e.g. "p (float) probability" without its colon): what follows
            # belongs to that unreadable entry, not to the previous one.
            doc.uncertain = True
            _finish_entry(current, doc)
            current = None
            continue
        if current is not None:
            current[2].add(k, lead, line[lead:])
    _finish_entry(current, doc)


def _parse_numpy(lines: list[str]) -> Docstring:
    doc = Docstring(style="numpy")
    headers = [i for i in range(len(lines) - 1)
               if lines[i].strip() and _NUMPY_UNDERLINE_RE.match(lines[i + 1])]
    for h_index, h in enumerate(headers):
        name = lines[h].strip().lower().rstrip(":")
        doc.sections.add(name)
        end = headers[h_index + 1] if h_index + 1 < len(headers) else len(lines)
        body = [k for k in range(h + 2, end) if lines[k].strip()]
        if name in _RETURNS_HEADERS:
            doc.returns_line = h
            doc.returns_text = " ".join(lines[k].strip() for k in body)
        elif name in _YIELDS_HEADERS:
            doc.yields_line = h
        elif name in ("raises", "raise"):
            _raises_entries(lines, body, doc)
        elif name in _GOOGLE_PARAM_HEADERS or name in _GOOGLE_OTHER_HEADERS:
            section = "params" if name in _GOOGLE_PARAM_HEADERS else "other"
            if section == "params":
                doc.has_params_section = True
            _numpy_params(lines, body, section, doc)
    return doc


def _numpy_params(lines: list[str], body: list[int], section: str, doc: Docstring) -> None:
    if not body:
        doc.uncertain = True
        return
    # Entries sit at the first entry's indent; a slip to the left is still an entry.
    entry_indent = _indent(lines[body[0]])
    current: tuple[list[DocParam], str | None, _Joined, Any] | None = None

    for k in body:
        line = lines[k]
        lead = _lead(line)
        if _indent(line) <= entry_indent:
            m = _NUMPY_ENTRY_RE.match(line[lead:].rstrip())
            if m:
                _finish_entry(current, doc)
                type_text = m.group(2).strip() if m.group(2) else None
                params = [DocParam(normalize_name(raw), raw, k, col, type_text, section=section)
                          for raw, col in _split_names(m.group(1), line, lead)]
                type_pos = (k, lead + m.start(2) + _lead(m.group(2))) if type_text else None
                current = (params, type_text, _Joined(), type_pos)
                continue
            doc.uncertain = True
            _finish_entry(current, doc)
            current = None
            continue
        if current is not None:
            current[2].add(k, lead, line[lead:])
    _finish_entry(current, doc)


def _parse_sphinx(lines: list[str]) -> Docstring:
    doc = Docstring(style="sphinx")
    types: dict[str, str] = {}
    fields: list[tuple[str, str, int, int, _Joined]] = []  # (kind, arg, line, col, joined)
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _SPHINX_FIELD_RE.match(line)
        if not m:
            i += 1
            continue
        kind, arg = m.group(1).lower(), m.group(2).strip()
        indent = _indent(line) if i else -1
        joined = _Joined()
        rest_col = m.start(3)
        joined.add(i, rest_col + _lead(m.group(3)), m.group(3).strip())
        j = i + 1
        while j < len(lines):
            nxt = lines[j]
            if nxt.strip() and (_indent(nxt) <= indent or _SPHINX_FIELD_RE.match(nxt)):
                break
            if nxt.strip():
                joined.add(j, _lead(nxt), nxt.strip())
            j += 1
        arg_col = line.find(arg, line.find(":" + m.group(1)) + len(m.group(1)) + 1) if arg else 0
        fields.append((kind, arg, i, arg_col, joined))
        i = j
    for kind, arg, line_no, arg_col, joined in fields:
        if kind in ("type",) and arg:
            types[normalize_name(arg)] = joined.text
    for kind, arg, line_no, arg_col, joined in fields:
        if kind in ("param", "parameter", "arg", "argument", "key", "keyword", "kwarg", "kwparam"):
            doc.sections.add("params")
            section = "params" if kind in ("param", "parameter", "arg", "argument") else "other"
            if section == "params":
                doc.has_params_section = True
            if not arg:
                doc.uncertain = True
                continue
            parts = arg.split()
            raw = parts[-1]
            type_text = " ".join(parts[:-1]) or None
            if not re.fullmatch(_NAME, raw):
                doc.uncertain = True
                continue
            name = normalize_name(raw)
            col = arg_col + arg.rfind(raw)
            type_text = type_text or types.get(name)
            doc.params.append(DocParam(name, raw, line_no, col, type_text, joined.text,
                                       find_default(type_text, joined), section))
        elif kind in ("returns", "return"):
            doc.sections.add("returns")
            doc.returns_line = line_no
            doc.returns_text = joined.text
        elif kind == "rtype":
            doc.rtype = joined.text
        elif kind in ("yields", "yield"):
            doc.sections.add("yields")
            doc.yields_line = line_no
        elif kind in ("raises", "raise", "except", "exception"):
            doc.sections.add("raises")
            search = lines[line_no].find(arg, lines[line_no].find(":") + 1) if arg else -1
            for m in _EXCEPTION_RE.finditer(arg):
                doc.raises.append((m.group(0).rsplit(".", 1)[-1], line_no, max(search, 0) + m.start()))
    return doc


def literal_value(node_or_text: Any) -> Any:
    """Return the Python value of a literal expression: an ``ast`` node or its source text.

    Only numbers, strings, ``True``, ``False``, ``None``, unary signs and tuples,
    lists, sets and dicts of literals are evaluated; anything else gives
    :data:`UNKNOWN`. Nothing is ever ``eval``-ed: text is parsed with ``ast`` only.

    Args:
        node_or_text: An ``ast.expr`` or the text of one.

    Returns:
        The value, or :data:`UNKNOWN`.
    """
    node = node_or_text
    if isinstance(node, str):
        text = node.strip()
        if not text or len(text) > 10_000:
            return UNKNOWN
        try:
            node = ast.parse(text, mode="eval").body
        except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
            return UNKNOWN  # not an expression at all
    try:
        return _literal(node)
    except (RecursionError, ValueError, TypeError):
        return UNKNOWN


def _literal(node: Any) -> Any:
    if isinstance(node, ast.Constant):
        value = node.value
        if value is None or isinstance(value, (bool, int, float, complex, str)):
            return value
        return UNKNOWN  # bytes, Ellipsis
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _literal(node.operand)
        if isinstance(inner, (int, float, complex)) and not isinstance(inner, bool):
            return -inner if isinstance(node.op, ast.USub) else inner
        return UNKNOWN
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items = []
        for el in node.elts:
            v = UNKNOWN if isinstance(el, ast.Starred) else _literal(el)
            if v is UNKNOWN:
                return UNKNOWN
            items.append(v)
        return tuple(items) if not isinstance(node, ast.Set) else ("<set>", *items)
    if isinstance(node, ast.Dict):
        out = []
        for key, value in zip(node.keys, node.values):
            if key is None:  # ``**other``
                return UNKNOWN
            k, v = _literal(key), _literal(value)
            if k is UNKNOWN or v is UNKNOWN:
                return UNKNOWN
            out.append((k, v))
        return ("<dict>", *out)
    return UNKNOWN


def same_value(a: Any, b: Any) -> bool:
    """Compare two literal values the way a reader would: ``1e-3 == 0.001``,
    ``(1, 2) == [1, 2]``, and ``1 == 1.0``.

    Args:
        a: A value from :func:`literal_value`.
        b: Another one.

    Returns:
        Whether they state the same default.
    """
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, tuple) != isinstance(b, tuple):
        # "stride: Default: 1" for ``stride=(1, 1)``: the scalar is shorthand for the tuple.
        seq, scalar = (a, b) if isinstance(a, tuple) else (b, a)
        return bool(seq) and seq[0] not in ("<set>", "<dict>") and all(same_value(x, scalar) for x in seq)
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0) or a == b
    if isinstance(a, str) and isinstance(b, str):
        return a.strip() == b.strip()  # a stray space inside documented quotes is not drift
    if isinstance(a, str) != isinstance(b, str):
        # Docs often drop the quotes: "defaults to 1" for the token "1".
        text, other = (a, b) if isinstance(a, str) else (b, a)
        return isinstance(other, (int, float)) and not isinstance(other, bool) and text.strip() == repr(other)
    return type(a) is type(b) and a == b
