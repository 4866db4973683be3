"""MLC207: ``--extra-index-url`` (dependency confusion)."""

from __future__ import annotations

import re
from typing import Any, Iterable

from ... import manifests
from ...api import Finding, Rule, register
from .syntax import parsed

_PIP_CONF_KEY = re.compile(r"^\s*(extra[-_]index[-_]url)\s*[=:]\s*(.*)$", re.I)
_INLINE = re.compile(r"--extra-index-url(?:\s*=\s*|\s+)(\S+)")


def _message(where: str, url: str) -> str:
    return (f"{where} adds an extra index ({url or 'no URL'}): pip then takes each package from "
            f"whichever index has the highest version, so anyone who publishes a private "
            f"package's name on PyPI wins (dependency confusion). Use `--index-url` with one index "
            f"that proxies PyPI, or pin each private package to its index (uv `[tool.uv.sources]`, "
            f"hashes with `--require-hashes`)")


@register
class ExtraIndexUrl(Rule):
    """``--extra-index-url`` in a requirements file or a pip config in the project.

    What it does:
        Flags ``--extra-index-url`` lines in requirements, constraints and conda
        ``environment.yml`` pip sections, and ``extra-index-url`` keys in a
        ``pip.conf`` / ``pip.ini`` inside the project.

    Why is this bad?
        pip treats every index as equal and picks the highest version of a name from
        any of them. A private package named on the extra index can be shadowed by a
        public upload of the same name: the classic dependency-confusion attack.

    Example:
        ```text
        --extra-index-url https://pypi.internal.example/simple
        internal-utils==1.4.0
        ```

    Use instead:
        ```text
        --index-url https://pypi.internal.example/simple   # proxies PyPI
        internal-utils==1.4.0 --hash=sha256:...
        ```
    """

    code = "MLC207"
    name = "extra-index-url"
    summary = "--extra-index-url in a requirements file or pip config (dependency confusion)"
    file_kinds = ("text",)
    text_files = manifests.REQUIREMENTS_PATTERNS + ("pip.conf", "pip.ini", "environment.yml", "environment.yaml")

    def check(self, ctx: Any) -> Iterable[Finding]:
        """Yield one finding per extra index in one file.

        Args:
            ctx: The file's context.

        Yields:
            The findings.
        """
        name = ctx.path.rsplit("/", 1)[-1]
        if manifests.manifest_kind(ctx.path) == "requirements":
            for option in parsed(ctx).index_options:
                if option.option == "--extra-index-url":
                    yield Finding(self.code, _message("`--extra-index-url`", option.value), option.line,
                                  option.col, option.line, option.end_col, path=ctx.path)
            return
        for number, line in enumerate(ctx.source.splitlines(), start=1):
            if line.lstrip().startswith(("#", ";")):
                continue
            if name in ("pip.conf", "pip.ini"):
                match = _PIP_CONF_KEY.match(line)
                if match:
                    yield Finding(self.code, _message(f"pip config key `{match.group(1)}`", match.group(2).strip()),
                                  number, match.start(1), number, len(line.rstrip()), path=ctx.path)
            else:
                for match in _INLINE.finditer(line):
                    yield Finding(self.code, _message("`--extra-index-url` in the pip section", match.group(1)),
                                  number, match.start(), number, match.end(), path=ctx.path)
