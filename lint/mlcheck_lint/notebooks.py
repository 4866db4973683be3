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


# SoS notebooks run Python in their default kernel and name each other cell's kernel.
_PYTHON_NAMES = ("python", "ipython", "sos")


def cell_text(cell: dict[str, Any]) -> str:
    """Return a cell's source as one string (notebooks store it as a string or lines).

    Args:
        cell: One entry of the notebook's ``cells`` list.

    Returns:
        The cell's source.

    Raises:
        ValueError: The source is neither a string nor a list of strings.
    """
    source = cell.get("source", "")
    if isinstance(source, str):
        return source
    if isinstance(source, list) and all(isinstance(part, str) for part in source):
        return "".join(source)
    bad = next((p for p in source if not isinstance(p, str)), None) if isinstance(source, list) else source
    raise ValueError(f"'source' must be a string or a list of strings, found {type(bad).__name__} "
                     f"{_preview(bad)}")


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_python(name: Any) -> bool:
    return isinstance(name, str) and name.strip().lower().startswith(_PYTHON_NAMES)


def language(notebook: dict[str, Any]) -> str:
    """Return the notebook's kernel language, ``python`` when it does not say.

    Args:
        notebook: A parsed notebook.

    Returns:
        The language name as the notebook spells it (``python``, ``R``, ``julia``...).
    """
    metadata = notebook.get("metadata")
    if not isinstance(metadata, dict):
        return "python"
    for table, key in (("kernelspec", "language"), ("language_info", "name")):
        value = metadata.get(table)
        if isinstance(value, dict) and isinstance(value.get(key), str) and value[key].strip():
            return value[key].strip()
    return "python"


def _cell_language(cell: dict[str, Any]) -> str | None:
    metadata = cell.get("metadata")
    if not isinstance(metadata, dict):
        return None
    vscode = metadata.get("vscode")
    if isinstance(vscode, dict) and isinstance(vscode.get("languageId"), str):
        return vscode["languageId"]
    kernel = metadata.get("kernel")  # SoS: the cell's own kernel name
    return kernel if isinstance(kernel, str) else None


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
        ValueError: The file is not a JSON notebook with a ``cells`` list, is nested
            too deeply to parse, or has a code cell whose source is not text.
        UnicodeDecodeError: The file is not UTF-8.
    """
    try:
        notebook = json.loads(data.decode("utf-8"))
    except RecursionError:
        # json's parser recurses once per nesting level; a hostile file must be a
        # finding, not a crash of the run.
        raise ValueError("the JSON is nested too deeply to parse") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ValueError("not a Jupyter notebook: no 'cells' list at the top level")
    for index, cell in enumerate(notebook["cells"], start=1):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            try:
                cell_text(cell)
            except ValueError as exc:
                raise ValueError(f"cell {index}: {exc}") from None
    return notebook


def code_cells(notebook: dict[str, Any]) -> list[tuple[int, str, str | None]]:
    """List the code cells as ``(cell number, source, python text or None)``.

    Args:
        notebook: A parsed notebook.

    Returns:
        One tuple per code cell. Cells are numbered from 1 over every cell of the
        notebook, markdown included, as they appear in the editor. Empty for a notebook
        whose kernel is not Python; a cell marked as another language is left out.
    """
    if not _is_python(language(notebook)):
        return []
    cells = []
    for index, cell in enumerate(notebook["cells"], start=1):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            own = _cell_language(cell)
            if own is not None and not _is_python(own):
                continue
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
