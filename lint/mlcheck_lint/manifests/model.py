"""The records every manifest reader returns: one requirement, one problem, one file.

Positions are those of the linter's findings: 1-based lines, 0-based columns, in the
file's own text. A requirement keeps the span of its text so a fix can rewrite exactly
that text and nothing around it.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class DeclaredRequirement:
    """One requirement as a manifest declares it.

    Attributes:
        requirement: The ``packaging.requirements.Requirement``, or ``None`` for a
            local path or an URL that names no project (``-e .``, ``./wheels/x.whl``).
        path: The manifest's path, relative to the project root, with ``/``.
        line: The 1-based line where the requirement's text starts.
        col: The 0-based column where it starts.
        end_line: The line where it ends.
        end_col: The column where it ends (exclusive).
        group: Where it belongs: ``dependencies``, ``optional:<extra>``,
            ``group:<name>``, ``build-system``, ``poetry:<group>``,
            ``setup.cfg:install_requires``, ``setup.cfg:extra:<name>``, ``conda:pip``,
            ``notebook`` or, for a requirements file, the file's name.
        text: The requirement exactly as written (after joining continuation lines).
        editable: Declared with ``-e`` / ``--editable``.
        local: The local path or URL of a requirement that is not a PEP 508 string.
        hashes: The ``--hash`` values that follow it.
        via: For a pip-tools lock, the ``# via`` provenance (package names,
            ``-r file`` and ``-c file`` entries).
        constraint: It comes from a ``-c`` constraints file, so it limits versions
            without asking for the package.
    """

    requirement: Any
    path: str
    line: int
    col: int
    end_line: int
    end_col: int
    group: str
    text: str
    editable: bool = False
    local: str | None = None
    hashes: tuple[str, ...] = ()
    via: tuple[str, ...] = ()
    constraint: bool = False

    @property
    def name(self) -> str | None:
        """The canonical project name (PEP 503), or ``None`` for a nameless local path."""
        if self.requirement is None:
            return None
        from packaging.utils import canonicalize_name

        return canonicalize_name(self.requirement.name)

    @property
    def pinned_version(self) -> str | None:
        """The version of an ``==``/``===`` pin to one version (no wildcard), else ``None``."""
        if self.requirement is None or self.requirement.url:
            return None
        specs = list(self.requirement.specifier)
        if len(specs) == 1 and specs[0].operator in ("==", "===") and not specs[0].version.endswith(".*"):
            return specs[0].version
        return None


@dataclasses.dataclass(frozen=True)
class ManifestProblem:
    """A part of a manifest that cannot be read: where, and the parser's reason.

    Attributes:
        path: The manifest's project-relative path.
        line: The 1-based line.
        col: The 0-based column.
        reason: What is wrong, in the parser's words, and what is accepted.
    """

    path: str
    line: int
    col: int
    reason: str


@dataclasses.dataclass(frozen=True)
class Include:
    """A ``-r`` or ``-c`` line: which file it names and where it is written.

    Attributes:
        kind: ``-r`` (requirements) or ``-c`` (constraints).
        target: The path as written, relative to the including file.
        line: The 1-based line of the include.
        col: The 0-based column of the target.
    """

    kind: str
    target: str
    line: int
    col: int


@dataclasses.dataclass(frozen=True)
class IndexOption:
    """An index option in a requirements file (``--index-url``, ``--extra-index-url``,
    ``--find-links``, ``--no-index``, ``--trusted-host``).

    Attributes:
        option: The long option name, e.g. ``--extra-index-url``.
        value: Its value (empty for ``--no-index``).
        line: The 1-based line.
        col: The 0-based column of the option.
        end_col: The column where the option and its value end.
    """

    option: str
    value: str
    line: int
    col: int
    end_col: int


@dataclasses.dataclass
class Manifest:
    """What one manifest file declares.

    Attributes:
        path: The project-relative path.
        kind: ``requirements``, ``pyproject``, ``setup.cfg``, ``conda``, ``notebook``,
            ``pylock`` or ``uv.lock``.
        requirements: The requirements in file order.
        problems: What could not be read (each is one MLC200 finding).
        includes: ``-r`` / ``-c`` lines (requirements files only).
        index_options: Index options (requirements files only).
        header: For a pip-compile output, the options of the command in its header
            (``["--generate-hashes", "--output-file=requirements.txt", ...]``), else
            ``None``.
        data: The parsed document for TOML and YAML files (plain dicts), else ``None``.
    """

    path: str
    kind: str
    requirements: list[DeclaredRequirement] = dataclasses.field(default_factory=list)
    problems: list[ManifestProblem] = dataclasses.field(default_factory=list)
    includes: list[Include] = dataclasses.field(default_factory=list)
    index_options: list[IndexOption] = dataclasses.field(default_factory=list)
    header: list[str] | None = None
    data: Any = None

    @property
    def is_pip_compile_output(self) -> bool:
        """Whether the file carries pip-compile's header."""
        return self.header is not None
