"""``setup.cfg``, conda ``environment.yml`` and notebook ``%pip install`` lines.

Each reader returns a :class:`~mlcheck_lint.manifests.model.Manifest` with positions in
the file's own text, so findings point at the requirement and not at its section.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from .model import DeclaredRequirement, Manifest, ManifestProblem
from .requirements_txt import parse_requirement

_SECTION = re.compile(r"^\[([^\]]+)\]\s*$")
_KEY = re.compile(r"^([A-Za-z0-9_.-]+)\s*[=:]\s*(.*)$")
_PIP_LINE = re.compile(r"^\s*(?:[A-Za-z_]\w*\s*=\s*)?[!%]\s*(?:pip3?|python3?\s+-m\s+pip|uv\s+pip)\s+install\b(.*)$")


def read_setup_cfg_text(text: str, path: str) -> Manifest:
    """Read ``[options] install_requires`` and ``[options.extras_require]``.

    Args:
        text: The file's text.
        path: Its project-relative path.

    Returns:
        The manifest; one problem per malformed requirement.
    """
    manifest = Manifest(path=path, kind="setup.cfg")
    section = ""
    key = None
    lines = (text[1:] if text.startswith("\ufeff") else text).splitlines()
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        match = _SECTION.match(stripped)
        if match and not raw[:1].isspace():
            section, key = match.group(1).strip(), None
            continue
        value_col = 0
        if not raw[:1].isspace():
            kv = _KEY.match(raw)
            if not kv:
                key = None
                continue
            key, value = kv.group(1), kv.group(2)
            value_col = kv.start(2)
        elif key is not None:
            value = stripped
            value_col = len(raw) - len(raw.lstrip())
        else:
            continue
        if section == "options" and key == "install_requires":
            group = "setup.cfg:install_requires"
        elif section == "options.extras_require" and key is not None:
            group = f"setup.cfg:extra:{key}"
        elif section == "options" and key in ("setup_requires", "tests_require"):
            group = f"setup.cfg:{key}"
        else:
            continue
        value = re.sub(r"\s+[#;].*$", "", value).strip()
        for part in [value] if (";" in value or raw[:1].isspace()) else value.split(","):
            spec = part.strip()
            if not spec:
                continue
            col = value_col + raw[value_col:].find(spec)
            requirement, local, error = parse_requirement(spec)
            if error:
                manifest.problems.append(ManifestProblem(
                    path, number, col, f"[{section}] {key}: not a valid requirement {spec!r}: {error}"))
                continue
            manifest.requirements.append(DeclaredRequirement(
                requirement, path, number, col, number, col + len(spec), group, spec, local=local))
    return manifest


def read_environment_yml_text(text: str, path: str) -> Manifest:
    """Read the ``pip:`` list of a conda ``environment.yml``.

    Conda's own packages are not PyPI requirements and are not checked. Parsed with
    PyYAML's safe loader; without PyYAML the file is one problem that says so.

    Args:
        text: The file's text.
        path: Its project-relative path.

    Returns:
        The manifest; a file that is not YAML, or not a mapping, is one problem.
    """
    manifest = Manifest(path=path, kind="conda")
    try:
        # PyYAML is optional: only environment.yml needs it, and the finding below says
        # so when it is missing (pre-commit, in the test extra, brings it).
        import yaml  # noqa: MLC205
    except ImportError:
        manifest.problems.append(ManifestProblem(path, 1, 0, "cannot read environment.yml: PyYAML is not "
                                                 "installed in the linter's environment (pip install pyyaml)"))
        return manifest
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column) if mark is not None else (1, 0)
        manifest.problems.append(ManifestProblem(path, line, col, f"not valid YAML: {str(exc).splitlines()[0]}"))
        return manifest
    if not isinstance(data, dict):
        manifest.problems.append(ManifestProblem(
            path, 1, 0, f"an environment file must be a mapping with a 'dependencies' list, not {type(data).__name__}"))
        return manifest
    manifest.data = data
    deps = data.get("dependencies") or []
    if not isinstance(deps, list):
        manifest.problems.append(ManifestProblem(path, 1, 0, "'dependencies' must be a list"))
        return manifest
    lines = text.splitlines()
    start = 0
    for dep in deps:
        if isinstance(dep, dict) and "pip" in dep:
            pip = dep["pip"]
            if not isinstance(pip, list):
                manifest.problems.append(ManifestProblem(path, 1, 0, "'pip' must be a list of requirements"))
                continue
            for spec in pip:
                spec = str(spec).strip()
                line, col, start = _find_line(lines, spec, start)
                if spec.startswith("-"):
                    continue  # an option line (-r, --extra-index-url): seen by the option rules
                requirement, local, error = parse_requirement(spec)
                if error:
                    manifest.problems.append(ManifestProblem(path, line, col, f"pip: not a valid requirement {spec!r}: {error}"))
                    continue
                manifest.requirements.append(DeclaredRequirement(
                    requirement, path, line, col, line, col + len(spec), "conda:pip", spec, local=local))
    return manifest


def _find_line(lines: list[str], needle: str, start: int) -> tuple[int, int, int]:
    for i in range(start, len(lines)):
        col = lines[i].find(needle)
        if col >= 0:
            return i + 1, col, i + 1
    return 1, 0, start


def pip_install_lines(cell_text: str) -> list[tuple[int, int, list[tuple[int, str]]]]:
    """Find the ``!pip install`` / ``%pip install`` lines of a notebook cell.

    Args:
        cell_text: The cell's source.

    Returns:
        ``(line, col of the first argument, [(col, word), ...])`` per install line;
        words are the arguments after ``install``, options included.
    """
    out = []
    for number, line in enumerate(cell_text.splitlines(), start=1):
        match = _PIP_LINE.match(line)
        if not match:
            continue
        rest = match.group(1)
        base = match.start(1)
        words = [(base + m.start(), m.group()) for m in re.finditer(r"\S+", rest)]
        cleaned = []
        for col, word in words:
            if word.startswith("#"):
                break  # the shell's comment
            try:
                parts = shlex.split(word)
            except ValueError:
                parts = [word]
            cleaned.append((col, parts[0] if parts else word))
        out.append((number, base, cleaned))
    return out


def notebook_requirements(words: list[tuple[int, str]]) -> list[tuple[int, str, Any, str | None]]:
    """Turn the words of a ``pip install`` line into requirements.

    Args:
        words: ``(col, word)`` pairs from :func:`pip_install_lines`.

    Returns:
        ``(col, text, requirement or None, error or None)`` per requirement; options
        and their values (``-q``, ``-r file``, ``--index-url URL``) are skipped.
    """
    takes_value = {"-r", "--requirement", "-c", "--constraint", "-i", "--index-url",
                   "--extra-index-url", "-f", "--find-links", "--target", "-t", "--prefix"}
    out = []
    skip = False
    for col, word in words:
        if skip:
            skip = False
            continue
        if word.startswith("-"):
            skip = word in takes_value
            continue
        if word.startswith(("$", "{")):
            continue  # an IPython variable: not known statically
        requirement, local, error = parse_requirement(word)
        if local is not None and requirement is None:
            continue
        out.append((col, word, requirement, error))
    return out
