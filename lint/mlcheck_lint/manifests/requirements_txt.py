"""pip's requirements-file format, as a small layer over ``packaging``.

Why our own layer: the two maintained parsers (``pip-requirements-parser``, a copy of
pip's internals, and ``requirements-parser``) give a line at best and never a column,
so a fix could not rewrite one requirement in place; see benchmarks/README.md for the
comparison on our corpus. The grammar followed is pip's ("Requirements File Format"):

* a ``\\`` at the end of a line joins the next one;
* ``#`` starts a comment at the start of a line or after whitespace (so ``#egg=`` and
  ``#sha256=`` inside an URL are not comments);
* a line starting with ``-`` is an option (``-r``, ``-c``, ``-e``, index options);
* otherwise the line is a requirement, followed by per-requirement options
  (``--hash``, ``--config-settings``) from the first word that starts with ``-``.

One bad line is one problem; reading goes on with the next line.
"""

from __future__ import annotations

import functools
import re
import shlex
from typing import Iterator

from .model import DeclaredRequirement, Include, IndexOption, Manifest, ManifestProblem

#: pip's environment-variable syntax in requirements files (POSIX names in braces only).
_ENV_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)\}")
_COMMENT = re.compile(r"(^|\s)#.*$")
_VIA = re.compile(r"^\s*#\s*via\b:?\s*(.*)$")
_VIA_MORE = re.compile(r"^\s*#\s{2,}(\S.*?)\s*$")
_HEADER_COMMAND = re.compile(r"^#\s+((?:uv\s+pip\s+compile|pip-compile)\b.*)$")
_URL_SCHEME = re.compile(r"^(?:[a-z][a-z0-9+.-]*\+)?(?:https?|file|ssh|git|svn|hg|bzr)(?::|\+)", re.I)
_ARCHIVE = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")
_EGG = re.compile(r"[#&]egg=([A-Za-z0-9][A-Za-z0-9._-]*)")

#: Options with a value, by every spelling pip accepts -> long name.
_VALUE_OPTIONS = {
    "-r": "--requirement", "--requirement": "--requirement",
    "-c": "--constraint", "--constraint": "--constraint",
    "-e": "--editable", "--editable": "--editable",
    "-i": "--index-url", "--index-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "-f": "--find-links", "--find-links": "--find-links",
    "--trusted-host": "--trusted-host",
    "--only-binary": "--only-binary", "--no-binary": "--no-binary",
    "--use-feature": "--use-feature",
    "--config-settings": "--config-settings", "--global-option": "--global-option",
}
#: Options without a value.
_FLAG_OPTIONS = {"--no-index", "--pre", "--prefer-binary", "--require-hashes", "--no-deps"}
_INDEX_OPTIONS = {"--index-url", "--extra-index-url", "--find-links", "--no-index", "--trusted-host"}
_PER_REQUIREMENT = {"--hash", "--config-settings", "--global-option"}


class _Logical:
    """A logical line: the joined text and where each of its characters came from."""

    __slots__ = ("text", "origins")

    def __init__(self) -> None:
        self.text = ""
        self.origins: list[tuple[int, int, int]] = []  # (offset in text, line, col)

    def add(self, line: int, col: int, segment: str) -> None:
        self.origins.append((len(self.text), line, col))
        self.text += segment

    def where(self, offset: int) -> tuple[int, int]:
        """Return ``(line, col)`` of a character of the joined text."""
        chosen = self.origins[0]
        for origin in self.origins:
            if origin[0] <= offset:
                chosen = origin
            else:
                break
        start, line, col = chosen
        return line, col + (offset - start)


def _logical_lines(lines: list[str]) -> Iterator[_Logical]:
    current: _Logical | None = None
    for number, raw in enumerate(lines, start=1):
        body = raw.rstrip("\r\n")
        if current is None:
            current = _Logical()
        # A comment line ends a continuation the way pip treats it: as a comment.
        if body.endswith("\\") and not re.match(r"\s*#", body):
            current.add(number, 0, body[:-1])
            continue
        current.add(number, 0, body)
        yield current
        current = None
    if current is not None:
        yield current


def _strip_comment(text: str) -> str:
    match = _COMMENT.search(text)
    return text[:match.start()] if match else text


def _words(text: str) -> list[tuple[int, str]]:
    return [(m.start(), m.group()) for m in re.finditer(r"\S+", text)]


def is_local_or_url(spec: str) -> bool:
    """Say whether a requirement is a path or URL rather than a PEP 508 name.

    Args:
        spec: The requirement text.

    Returns:
        ``True`` for ``.``, ``./pkg``, ``/abs/x.whl``, ``git+https://...``, an archive URL.
    """
    if " @ " in spec or re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*@", spec):
        return False
    if _URL_SCHEME.match(spec):
        return True
    if spec.startswith((".", "/", "~", "\\")) or re.match(r"^[A-Za-z]:[\\/]", spec):
        return True
    head = re.split(r"[;\s]", spec, maxsplit=1)[0]
    return "/" in head or "\\" in head or head.lower().endswith(_ARCHIVE)


def parse_requirement(spec: str) -> tuple[object | None, str | None, str | None]:
    """Parse one requirement the way pip reads it in a requirements file.

    Args:
        spec: The requirement text, without per-requirement options or comment.

    Returns:
        ``(requirement or None, local path/URL or None, error or None)``. A VCS or
        archive URL with ``#egg=name`` becomes the requirement ``name @ url``.
    """
    from packaging.requirements import InvalidRequirement, Requirement

    if is_local_or_url(spec):
        egg = _EGG.search(spec)
        name = egg.group(1) if egg else None
        if name is None and re.match(r"^(git|hg|svn|bzr)\+", spec):
            # pip learns a bare VCS URL's name by building it; the repository's name
            # is what it almost always is, and lets the pinning rules judge the ref.
            repo = re.sub(r"[@#].*$", "", spec.split("://", 1)[-1].split("/", 1)[-1]).rstrip("/")
            name = re.sub(r"\.git$", "", repo.rsplit("/", 1)[-1]) or None
        if name and _URL_SCHEME.match(spec):
            try:
                return Requirement(f"{name} @ {spec}"), spec, None
            except InvalidRequirement:
                pass
        return None, spec, None
    fast = _simple_requirement(spec)
    if fast is not None:
        return fast, None, None
    try:
        return Requirement(spec), None, None
    except InvalidRequirement as exc:
        return None, None, _reason(exc)


_SIMPLE = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:(===|==|>=|<=|~=|!=|<|>)\s*([A-Za-z0-9.*+!_-]+))?\s*$")


@functools.lru_cache(maxsize=4096)
def _specifier(text: str) -> object:
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(text)


def _simple_requirement(spec: str) -> object | None:
    """Build the Requirement of ``name`` or ``name<op>version`` without the full parser.

    pip-compile output is 100 % such lines, and packaging's general parser costs about
    ten times more; anything else (extras, markers, URLs, several specifiers) returns
    ``None`` and goes through ``packaging`` as usual. The object is the same as
    ``Requirement(spec)`` would build: same name, specifier, extras, url and marker.
    """
    match = _SIMPLE.match(spec)
    if match is None:
        return None
    from packaging.requirements import Requirement
    from packaging.specifiers import InvalidSpecifier

    name, operator, version = match.groups()
    try:
        specifier = _specifier(f"{operator}{version}" if operator else "")
    except InvalidSpecifier:
        return None  # let the full parser word the error
    req = Requirement.__new__(Requirement)
    req.name, req.url, req.extras, req.specifier, req.marker = name, None, set(), specifier, None
    return req


def _reason(exc: Exception) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def parse_header(lines: list[str]) -> list[str] | None:
    """Return the options of pip-compile's (or ``uv pip compile``'s) header command.

    Args:
        lines: The file's first lines.

    Returns:
        The command's words after the program name, or ``None`` without such a header.
    """
    head = lines[:20]
    if not any("autogenerated by" in line and ("pip-compile" in line or "uv" in line)
               for line in head):
        return None
    for line in head:
        match = _HEADER_COMMAND.match(line.rstrip("\r\n"))
        if match:
            try:
                words = shlex.split(match.group(1))
            except ValueError:
                words = match.group(1).split()
            skip = 3 if words[:1] == ["uv"] else 1
            return words[skip:]
    return []


def _via_words(text: str) -> list[str]:
    text = text.strip()
    if not text:
        return []
    if text.startswith(("-r ", "-c ")):
        return [text]
    return [w.strip() for w in re.split(r"[,\s]+(?![^()]*\))", text) if w.strip() and w.strip() != "via"]


def read_requirements_text(text: str, path: str, group: str | None = None) -> Manifest:
    """Read a requirements, constraints or pip-tools ``.in`` / lock file.

    Args:
        text: The file's text (a leading BOM is ignored; CRLF is fine).
        path: Its project-relative path, copied into every record.
        group: The group name for its requirements (default: the file name).

    Returns:
        The manifest; ``-r``/``-c`` lines are listed in ``includes``, not followed.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    group = group or path.rsplit("/", 1)[-1]
    manifest = Manifest(path=path, kind="requirements")
    lines = text.splitlines()
    manifest.header = parse_header(lines)
    via: dict[int, list[str]] = {}
    via_open = False
    constraint = path.rsplit("/", 1)[-1].startswith("constraints")
    for logical in _logical_lines(lines):
        raw = logical.text
        single = len(logical.origins) == 1
        if single:
            match = _VIA.match(raw)
            if match and manifest.requirements:
                via_open = True
                via.setdefault(len(manifest.requirements) - 1, []).extend(_via_words(match.group(1)))
                continue
            more = _VIA_MORE.match(raw)
            if via_open and more and manifest.requirements:
                via.setdefault(len(manifest.requirements) - 1, []).extend(_via_words(more.group(1)))
                continue
        via_open = False
        comment = _COMMENT.search(raw)
        body = raw[:comment.start()] if comment else raw
        if not body.strip():
            continue
        words = _words(body)
        first_offset, first = words[0]
        if first.startswith("-"):
            _read_option(manifest, logical, body, words, group)
            continue
        # The requirement runs up to the first word that starts with "-" (pip's rule).
        req_end = len(body.rstrip())
        options: list[tuple[int, str]] = []
        for i, (offset, word) in enumerate(words):
            if i and word.startswith("-"):
                req_end = len(body[:offset].rstrip())
                options = words[i:]
                break
        spec = body[first_offset:req_end]
        line, col = logical.where(first_offset)
        end_line, end_col = logical.where(req_end)
        hashes, bad = _requirement_options(options)
        for offset, reason in bad:
            where = logical.where(offset)
            manifest.problems.append(ManifestProblem(path, where[0], where[1], reason))
        requirement, local, error = parse_requirement(spec)
        if error is not None:
            variable = _ENV_VARIABLE.search(spec)
            if variable:  # pip expands ${VAR} when it installs; its value is not knowable here
                manifest.problems.append(ManifestProblem(
                    path, line, col, f"{spec!r} uses the environment variable ${{{variable.group(1)}}}, which pip "
                                     f"expands at install time: its value is unknown here, so this line is not "
                                     f"checked; pin the package itself, or suppress this line with `# noqa: MLC200`"))
                continue
            manifest.problems.append(ManifestProblem(path, line, col, f"not a valid requirement {spec!r}: {error}"))
            continue
        manifest.requirements.append(DeclaredRequirement(
            requirement, path, line, col, end_line, end_col, group, spec,
            local=local, hashes=tuple(hashes), constraint=constraint))
        if comment:
            inline = re.match(r"\s*#\s*via\s+(.*)$", comment.group())
            if inline:
                via.setdefault(len(manifest.requirements) - 1, []).extend(_via_words(inline.group(1)))
    if via:
        import dataclasses

        manifest.requirements = [dataclasses.replace(r, via=tuple(via[i])) if i in via else r
                                 for i, r in enumerate(manifest.requirements)]
    return manifest


def _requirement_options(options: list[tuple[int, str]]) -> tuple[list[str], list[tuple[int, str]]]:
    hashes: list[str] = []
    bad: list[tuple[int, str]] = []
    i = 0
    while i < len(options):
        offset, word = options[i]
        name, eq, value = word.partition("=")
        if name not in _PER_REQUIREMENT:
            bad.append((offset, f"unknown per-requirement option {name!r}; pip accepts "
                                f"{', '.join(sorted(_PER_REQUIREMENT))} after a requirement"))
            i += 1
            continue
        if not eq:
            if i + 1 >= len(options):
                bad.append((offset, f"{name} needs a value"))
                break
            value = options[i + 1][1]
            i += 1
        if name == "--hash":
            if not re.match(r"^(sha256|sha384|sha512|md5|sha1|sha224):[0-9a-fA-F]+$", value):
                bad.append((offset, f"bad --hash value {value!r}; expected ALGORITHM:HEXDIGEST, "
                                    f"e.g. sha256:<64 hex digits>"))
            else:
                hashes.append(value)
        i += 1
    return hashes, bad


def _read_option(manifest: Manifest, logical: _Logical, body: str,
                 words: list[tuple[int, str]], group: str) -> None:
    path = manifest.path
    offset, word = words[0]
    name, eq, value = word.partition("=")
    value_offset = offset + len(name) + 1
    if name not in _VALUE_OPTIONS and name not in _FLAG_OPTIONS and len(name) > 2 and name[1] != "-":
        # pip's short options take their value glued on: -rbase.txt, -e.
        short = name[:2]
        if short in _VALUE_OPTIONS:
            name, eq, value, value_offset = short, "=", word[2:], offset + 2
    line, col = logical.where(offset)
    if name in _FLAG_OPTIONS:
        if name == "--no-index":
            manifest.index_options.append(IndexOption(name, "", line, col, col + len(word)))
        return
    long = _VALUE_OPTIONS.get(name)
    if long is None:
        manifest.problems.append(ManifestProblem(
            path, line, col, f"unknown option {name!r} in a requirements file"))
        return
    if not eq:
        if len(words) < 2:
            manifest.problems.append(ManifestProblem(path, line, col, f"{name} needs a value"))
            return
        value_offset, value = words[1]
        value = body[value_offset:].strip()
    else:
        value = body[value_offset:].strip()
    value = value.strip().strip("'\"") if long != "--editable" else value.strip()
    vline, vcol = logical.where(value_offset)
    if long in ("--requirement", "--constraint"):
        manifest.includes.append(Include("-r" if long == "--requirement" else "-c", value, vline, vcol))
    elif long == "--editable":
        spec = value.strip("'\"")
        requirement, local, error = parse_requirement(spec)
        if error is not None:
            manifest.problems.append(ManifestProblem(path, vline, vcol, f"not a valid editable requirement {spec!r}: {error}"))
            return
        end_line, end_col = logical.where(len(body.rstrip()))
        manifest.requirements.append(DeclaredRequirement(
            requirement, path, vline, vcol, end_line, end_col, group, spec,
            editable=True, local=local or (requirement.url if requirement is not None else None)))
    elif long in _INDEX_OPTIONS:
        end = logical.where(len(body.rstrip()))[1]
        manifest.index_options.append(IndexOption(long, value, line, col, end))
