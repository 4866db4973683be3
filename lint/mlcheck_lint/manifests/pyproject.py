"""``pyproject.toml`` requirements: PEP 621, PEP 735 groups, build-system, Poetry.

TOML parsers give values, not positions, so each requirement string is found again in
the text: within its table, after its key, as the quoted literal the value came from.
That position is what a fix rewrites; the rest of the file is never touched.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .model import DeclaredRequirement, Manifest, ManifestProblem

_HEADER = re.compile(r"^[ \t]*\[\[?[ \t]*([^\]]+?)[ \t]*\]\]?[ \t]*(?:#.*)?$", re.M)


def load_toml_text(text: str) -> tuple[dict[str, Any] | None, tuple[int, int, str] | None]:
    """Parse TOML text (``tomllib`` on 3.11+, ``tomlkit`` on 3.10).

    Args:
        text: The document.

    Returns:
        ``(data, None)``, or ``(None, (line, col, reason))`` when it is not valid TOML.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = None
    if tomllib is not None:
        try:
            return tomllib.loads(text), None
        except tomllib.TOMLDecodeError as exc:
            return None, _toml_position(str(exc))
        except RecursionError:
            return None, (1, 0, "nested too deeply to read")
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        return tomlkit.parse(text).unwrap(), None
    except ParseError as exc:
        return None, (exc.line, max(exc.col - 1, 0), str(exc))
    except RecursionError:
        return None, (1, 0, "nested too deeply to read")


def _toml_position(message: str) -> tuple[int, int, str]:
    match = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if match:
        return int(match.group(1)), max(int(match.group(2)) - 1, 0), message
    return 1, 0, message


class TomlLocator:
    """Finds where a string value of a TOML document is written.

    Args:
        text: The document's text.
    """

    def __init__(self, text: str) -> None:
        self.text = text[1:] if text.startswith("\ufeff") else text
        self._bom = 1 if text.startswith("\ufeff") else 0
        self.tables: list[tuple[str, int]] = [(m.group(1).replace(" ", "").replace('"', ""), m.start())
                                              for m in _HEADER.finditer(self.text)]
        self._line_starts = [0] + [m.end() for m in re.finditer(r"\r\n?|\n", self.text)]

    def _region(self, table: str) -> tuple[int, int]:
        for i, (name, start) in enumerate(self.tables):
            if name == table:
                end = self.tables[i + 1][1] if i + 1 < len(self.tables) else len(self.text)
                return start, end
        return 0, len(self.text)

    def position(self, offset: int) -> tuple[int, int]:
        """Return ``(line, col)`` of a character offset."""
        import bisect

        i = bisect.bisect_right(self._line_starts, offset) - 1
        return i + 1, offset - self._line_starts[i]

    def find_key(self, table: str, key: str) -> int | None:
        """Return the offset of ``key =`` in a table, or ``None``."""
        start, end = self._region(table)
        pattern = re.compile(r"^[ \t]*[\"']?" + re.escape(key) + r"[\"']?[ \t]*=", re.M)
        match = pattern.search(self.text, start, end)
        return match.start() if match else None

    def find_string(self, table: str, key: str | None, value: str,
                    after: int | None = None) -> tuple[int, int] | None:
        """Return the span ``(start, end)`` of a string literal, quotes included.

        Args:
            table: The dotted table name the value lives in.
            key: The key it belongs to, or ``None`` to search the whole table.
            value: The decoded string.
            after: Search from this offset (for the next element of an array).

        Returns:
            The offsets of the literal in the text, or ``None`` when not found.
        """
        start, end = self._region(table)
        if key is not None:
            at = self.find_key(table, key)
            if at is not None:
                start = at
        if after is not None:
            start = max(start, after)
        for literal in (json.dumps(value, ensure_ascii=False), f"'{value}'", f'"""{value}"""', f"'''{value}'''"):
            found = self.text.find(literal, start, end)
            if found >= 0:
                return found, found + len(literal)
        return None


def _requirement(manifest: Manifest, loc: TomlLocator, table: str, key: str, value: Any,
                 group: str, after: int | None) -> int | None:
    from packaging.requirements import InvalidRequirement, Requirement

    span = loc.find_string(table, key, value, after) if isinstance(value, str) else None
    key_at = loc.find_key(table, key)
    anchor = span[0] if span else (key_at if key_at is not None else loc._region(table)[0])
    line, col = loc.position(anchor)
    end_line, end_col = loc.position(span[1]) if span else (line, col)
    if not isinstance(value, str):
        manifest.problems.append(ManifestProblem(
            manifest.path, line, col, f"[{table}] {key}: expected a requirement string, got {type(value).__name__} {value!r}"))
        return after
    try:
        req = Requirement(value)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0]
        manifest.problems.append(ManifestProblem(
            manifest.path, line, col, f"[{table}] {key}: not a valid requirement {value!r}: {reason}"))
        return span[1] if span else after
    manifest.requirements.append(DeclaredRequirement(
        req, manifest.path, line, col, end_line, end_col, group, value,
        local=req.url or None))
    return span[1] if span else after


def _array(manifest: Manifest, loc: TomlLocator, table: str, key: str, values: Any, group: str,
           dicts_ok: bool = False) -> None:
    if not isinstance(values, list):
        at = loc.find_key(table, key)
        line, col = loc.position(at if at is not None else 0)
        manifest.problems.append(ManifestProblem(
            manifest.path, line, col, f"[{table}] {key}: expected an array of requirement strings, got {type(values).__name__}"))
        return
    after = None
    for value in values:
        if dicts_ok and isinstance(value, dict):
            continue  # PEP 735 {include-group = "..."}
        after = _requirement(manifest, loc, table, key, value, group, after)


def read_pyproject_text(text: str, path: str) -> Manifest:
    """Read every requirement a ``pyproject.toml`` declares.

    Args:
        text: The file's text.
        path: Its project-relative path.

    Returns:
        The manifest; ``data`` holds the parsed document. Invalid TOML is one problem.
    """
    manifest = Manifest(path=path, kind="pyproject")
    data, error = load_toml_text(text)
    if data is None:
        line, col, reason = error
        manifest.problems.append(ManifestProblem(path, line, col, f"not valid TOML: {reason}"))
        return manifest
    manifest.data = data
    loc = TomlLocator(text)
    project = data.get("project")
    if isinstance(project, dict):
        if "dependencies" in project:
            _array(manifest, loc, "project", "dependencies", project["dependencies"], "dependencies")
        extras = project.get("optional-dependencies")
        if extras is not None and not isinstance(extras, dict):
            at = loc.find_key("project", "optional-dependencies")
            line, col = loc.position(at if at is not None else 0)
            manifest.problems.append(ManifestProblem(path, line, col, "[project] optional-dependencies must be a table "
                                                                      "of extra = [requirements]"))
        if isinstance(extras, dict):
            table = "project.optional-dependencies"
            for extra, values in extras.items():
                _array(manifest, loc, table, extra, values, f"optional:{extra}")
    groups = data.get("dependency-groups")
    if isinstance(groups, dict):
        for name, values in groups.items():
            _array(manifest, loc, "dependency-groups", name, values, f"group:{name}", dicts_ok=True)
    build = data.get("build-system")
    if isinstance(build, dict) and "requires" in build:
        _array(manifest, loc, "build-system", "requires", build["requires"], "build-system")
    poetry = data.get("tool", {}).get("poetry") if isinstance(data.get("tool"), dict) else None
    if isinstance(poetry, dict):
        _poetry(manifest, loc, poetry)
    return manifest


def poetry_specifier(constraint: str) -> str:
    """Translate a Poetry version constraint into a PEP 440 specifier.

    Args:
        constraint: ``^1.2``, ``~1.2.3``, ``>=1,<2``, ``1.2.*``, ``*`` or a bare version.

    Returns:
        The equivalent specifier (``""`` for any version).
    """
    out = []
    for part in [p.strip() for p in re.split(r"[,\s]+(?=[<>=!~^*\d])", constraint.strip()) if p.strip()]:
        if part in ("*", ""):
            continue
        if part.startswith("^"):
            version = part[1:]
            nums = [int(n) for n in re.findall(r"\d+", version)[:3]] or [0]
            first = next((i for i, n in enumerate(nums) if n), len(nums) - 1)
            upper = nums[:first] + [nums[first] + 1]
            out += [f">={version}", "<" + ".".join(map(str, upper))]
        elif part.startswith("~") and not part.startswith("~="):
            version = part[1:]
            nums = [int(n) for n in re.findall(r"\d+", version)[:3]] or [0]
            upper = [nums[0] + 1] if len(nums) == 1 else [nums[0], nums[1] + 1]
            out += [f">={version}", "<" + ".".join(map(str, upper))]
        elif re.match(r"^\d", part):
            out.append(f"=={part}")
        else:
            out.append(part)
    return ",".join(out)


def _poetry(manifest: Manifest, loc: TomlLocator, poetry: dict[str, Any]) -> None:
    from packaging.requirements import InvalidRequirement, Requirement

    tables = [("tool.poetry.dependencies", poetry.get("dependencies"), "poetry:main"),
              ("tool.poetry.dev-dependencies", poetry.get("dev-dependencies"), "poetry:dev")]
    for name, group in (poetry.get("group") or {}).items():
        if isinstance(group, dict):
            tables.append((f"tool.poetry.group.{name}.dependencies", group.get("dependencies"), f"poetry:{name}"))
    for table, deps, group in tables:
        if not isinstance(deps, dict):
            continue
        for dist, value in deps.items():
            if dist.lower() == "python":
                continue
            at = loc.find_key(table, dist)
            line, col = loc.position(at if at is not None else loc._region(table)[0])
            entries = value if isinstance(value, list) else [value]
            for entry in entries:
                extras, marker, spec, url = "", "", "", None
                if isinstance(entry, str):
                    spec = poetry_specifier(entry)
                elif isinstance(entry, dict):
                    spec = poetry_specifier(str(entry.get("version", "*")))
                    if entry.get("extras"):
                        extras = "[" + ",".join(entry["extras"]) + "]"
                    if entry.get("markers"):
                        marker = f"; {entry['markers']}"
                    if entry.get("git"):
                        url = f"git+{entry['git']}" + (f"@{entry.get('rev') or entry.get('tag') or entry.get('branch')}"
                                                       if entry.get("rev") or entry.get("tag") or entry.get("branch") else "")
                    elif entry.get("url"):
                        url = entry["url"]
                    elif entry.get("path"):
                        url = None
                        manifest.requirements.append(DeclaredRequirement(
                            None, manifest.path, line, col, line, col, group, str(entry), local=str(entry["path"])))
                        continue
                else:
                    manifest.problems.append(ManifestProblem(
                        manifest.path, line, col, f"[{table}] {dist}: expected a version string or table, got {entry!r}"))
                    continue
                text = f"{dist}{extras} @ {url}{marker}" if url else f"{dist}{extras}{spec}{marker}"
                try:
                    req = Requirement(text)
                except InvalidRequirement as exc:
                    manifest.problems.append(ManifestProblem(
                        manifest.path, line, col, f"[{table}] {dist}: cannot read {entry!r}: {str(exc).splitlines()[0]}"))
                    continue
                manifest.requirements.append(DeclaredRequirement(
                    req, manifest.path, line, col, line, col, group, text, local=url))
