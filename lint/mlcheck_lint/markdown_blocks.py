"""Code blocks of README and docs files: Markdown fences and reST code directives.

A block is returned as document positions plus code text, so a rule that parses the
code (with ``ast``; nothing is run) can point a finding at the exact Markdown line and
column. Console sessions (``>>>`` prompts) keep only their input lines.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

_FENCE_RE = re.compile(r"^([ \t]*)(`{3,}|~{3,})[ \t]*\{?\.?([A-Za-z0-9_+-]*)\}?[^\n]*$")
_RST_DIRECTIVE_RE = re.compile(r"^([ \t]*)\.\.\s+(?:code-block|code|sourcecode)::\s*(python3?|py|pycon|ipython3?)\s*$")


def doc_files(project: Any) -> list[str]:
    """Return the README and ``docs/`` Markdown and reST files of a project.

    Args:
        project: The project's context (its ``root``).

    Returns:
        Project-relative paths, README first.
    """
    root = project.root
    out = []
    for name in ("README.md", "README.rst"):
        if (root / name).is_file():
            out.append(name)
    docs = root / "docs"
    if docs.is_dir():
        for p in sorted(docs.rglob("*")):
            if p.suffix in (".md", ".rst") and p.is_file() and not any(part.startswith(".") or part == "_build"
                                                                         for part in p.relative_to(root).parts):
                out.append(p.relative_to(root).as_posix())
    return out


def code_blocks(text: str, rst: bool) -> Iterator[tuple[int, list[tuple[int, str]]]]:
    """Yield the Python code blocks of a Markdown or reST text.

    Args:
        text: The document.
        rst: Read ``.. code-block:: python`` directives instead of fences.

    Returns:
        An iterator of ``(first line, [(column offset, code line), ...])``: the
        1-based document line of the block's first code line, and for each code line
        the column in the document where its code starts (console prompts removed).
    """
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if rst:
            m = _RST_DIRECTIVE_RE.match(lines[i])
            if not m:
                i += 1
                continue
            base = len(m.group(1).expandtabs(8))
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or lines[j].lstrip().startswith(":")
                                      and len(lines[j]) - len(lines[j].lstrip()) > base and j == i + 1):
                j += 1
            body: list[int] = []
            k = j
            while k < len(lines) and (not lines[k].strip() or len(lines[k].expandtabs(8)) - len(
                    lines[k].expandtabs(8).lstrip()) > base):
                body.append(k)
                k += 1
            indents = [len(lines[b]) - len(lines[b].lstrip()) for b in body if lines[b].strip()]
            cut = min(indents) if indents else 0
            yield j + 1, _prompts([(cut, lines[b][cut:]) for b in body], j + 1)
            i = k
            continue
        m = _FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(2), m.group(3).lower()
        indent = len(m.group(1))
        j = i + 1
        body = []
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(j)
            j += 1
        if lang in ("python", "py", "python3", "pycon", "ipython", "ipython3"):
            yield i + 2, _prompts([(min(indent, len(lines[b]) - len(lines[b].lstrip())),
                                    lines[b][min(indent, len(lines[b]) - len(lines[b].lstrip())):]) for b in body],
                                  i + 2)
        i = j + 1


def _prompts(block: list[tuple[int, str]], first: int) -> list[tuple[int, str]]:
    """Strip ``>>>``/``...`` prompts (dropping output lines) when the block is a console session."""
    del first
    if not any(line.lstrip().startswith(">>>") for _, line in block):
        return block
    out = []
    for col, line in block:
        stripped = line.lstrip()
        lead = len(line) - len(stripped)
        if stripped.startswith(">>> ") or stripped == ">>>":
            out.append((col + lead + 4, stripped[4:]))
        elif stripped.startswith("... ") or stripped == "...":
            out.append((col + lead + 4, stripped[4:]))
        else:
            out.append((col, ""))  # output line: keep numbering, drop the text
    return out


def blank_shell(line: str) -> str:
    """Blank a shell or magic line (``!pip``, ``%time``, ``$ cmd``) of a code block.

    Args:
        line: One code line.

    Returns:
        ``""`` for a shell line, else the line.
    """
    stripped = line.lstrip()
    return "" if stripped.startswith(("!", "%", "$ ")) else line
