"""Jupyter notebooks: the code cells as Python text, with IPython syntax blanked out.

A line magic (``%time``), a shell line (``!pip install``), an assignment from either
(``files = !ls``) and a help line (``obj?``) become ``pass`` at the same indentation, so
every other line keeps its number and columns and findings map straight back to the
cell. A cell that starts with a cell magic (``%%bash``) is not Python and is skipped.
"""

from __future__ import annotations

import json
import re
from typing import Any

_MAGIC = re.compile(r"^(\s*)(?:[%!]|[A-Za-z_][\w.,\s]*=\s*[%!])")
_HELP = re.compile(r"^(\s*)[\w.]+\?{1,2}\s*$")


def cell_text(cell: dict[str, Any]) -> str:
    """Return a cell's source as one string (notebooks store it as a string or lines).

    Args:
        cell: One entry of the notebook's ``cells`` list.

    Returns:
        The cell's source.
    """
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def blank_magics(text: str) -> str | None:
    """Return the cell's text with IPython-only lines replaced by ``pass``.

    Args:
        text: A code cell's source.

    Returns:
        The Python text with the same lines and columns, or ``None`` for a cell-magic
        cell, which is not Python.
    """
    if text.lstrip().startswith("%%"):
        return None
    lines = text.splitlines(keepends=True)
    out = []
    continued = False
    for line in lines:
        body = line.rstrip("\r\n")
        ending = line[len(body):]
        if continued:
            # The rest of a multi-line magic: blank lines keep the numbering.
            out.append(ending)
            continued = body.endswith("\\")
            continue
        match = _MAGIC.match(body) or _HELP.match(body)
        if match:
            out.append(match.group(1) + "pass" + ending)
            continued = body.endswith("\\")
        else:
            out.append(line)
    return "".join(out)


def read_notebook(data: bytes) -> dict[str, Any]:
    """Parse a notebook file.

    Args:
        data: The ``.ipynb`` file's bytes.

    Returns:
        The notebook as a dict.

    Raises:
        ValueError: The file is not a JSON notebook with a ``cells`` list.
    """
    notebook = json.loads(data.decode("utf-8"))
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ValueError("not a Jupyter notebook: no 'cells' list at the top level")
    return notebook


def code_cells(notebook: dict[str, Any]) -> list[tuple[int, str, str | None]]:
    """List the code cells as ``(cell number, source, python text or None)``.

    Args:
        notebook: A parsed notebook.

    Returns:
        One tuple per code cell. Cells are numbered from 1 over every cell of the
        notebook, markdown included, as they appear in the editor.
    """
    cells = []
    for index, cell in enumerate(notebook["cells"], start=1):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            text = cell_text(cell)
            cells.append((index, text, blank_magics(text)))
    return cells


def write_cells(notebook: dict[str, Any], new_sources: dict[int, str]) -> str:
    """Return the notebook's JSON with some cells' sources replaced.

    Args:
        notebook: A parsed notebook (modified in place).
        new_sources: Cell number -> new source text.

    Returns:
        The notebook serialised as Jupyter writes it (one-space indent).
    """
    for number, text in new_sources.items():
        notebook["cells"][number - 1]["source"] = text.splitlines(keepends=True)
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
