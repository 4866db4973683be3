"""The codes the engine itself reports: MLC000 (file cannot be read) and MLC001 (unused noqa).

They are ordinary registered rules so that ``--explain``, ``--list-rules``, the README
table and SARIF describe them like any other; the engine emits their findings itself.
"""

from __future__ import annotations

from .api import Rule, register


@register
class UnreadableFile(Rule):
    """A file that cannot be decoded or parsed, so no other rule could check it.

    What it does:
        Reports, once per file, why the file could not be linted: a NUL byte (a binary
        file), bytes that are not valid in the file's encoding, a syntax error, or a
        notebook that is not valid JSON. The finding is placed at the offending
        position. Linting continues with the next file.

    Why is this bad?
        Every other rule silently skips a file it cannot parse, so a broken file would
        otherwise look clean. A syntax error in a module that tests never import is
        exactly the kind of bug that reaches a release.

    Example:
        ```python
        def train(model, lr=1e-3:
            ...
        ```

    Use instead:
        ```python
        def train(model, lr=1e-3):
            ...
        ```
    """

    code = "MLC000"
    name = "unreadable-file"
    summary = "file cannot be decoded or parsed"
    default = "on"


@register
class UnusedNoqa(Rule):
    """A ``# noqa`` comment that suppresses nothing.

    What it does:
        Reports a ``# noqa`` (bare or with ``MLC`` codes) on a line where no finding of
        the listed codes was suppressed in this run. Codes of other tools (``E501``)
        are left alone.

    Why is this bad?
        A stale ``noqa`` outlives the problem it silenced and will hide the next real
        finding on that line. Off by default because a bare ``noqa`` may be meant for
        another linter.

    Example:
        ```python
        def forward(self, x):  # noqa: MLC103
            \"\"\"Apply the layer.\"\"\"
        ```

    Use instead:
        ```python
        def forward(self, x):
            \"\"\"Apply the layer.\"\"\"
        ```

    Fix safety:
        Safe: removes the comment when it is only the noqa directive, or drops the
        unused codes and keeps the ones that still suppress something. A directive
        that shares its comment with other text is left for a human.
    """

    code = "MLC001"
    name = "unused-noqa"
    summary = "noqa comment suppresses nothing"
    default = "off"
    fix_safety = "safe"
