"""Node positions for findings, computed from one cheap code-generation pass.

libcst's ``PositionProvider`` builds a ``CodeRange`` for every node and splits every
token on newlines; on a large file that costs about as much as parsing it again.
Findings need positions for a handful of nodes, so this pass tracks only a character
offset while it renders the module, records ``(start, end)`` offsets with the same
syntactic rules as ``PositionProvider`` (``record_syntactic_position``), and turns an
offset into a line and column only when a finding asks for it.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from typing import Any

from libcst._nodes.internal import CodegenState

_NEWLINE = re.compile(r"\r\n?|\n")


@dataclasses.dataclass(frozen=False)
class _OffsetState(CodegenState):
    """A codegen state that counts characters instead of keeping tokens."""

    offset: int = 0
    spans: dict = dataclasses.field(default_factory=dict)
    stack: list = dataclasses.field(default_factory=list)
    line_starts: list = dataclasses.field(default_factory=lambda: [0])

    def before_codegen(self, node: Any) -> None:
        self.stack.append(self.offset)

    def after_codegen(self, node: Any) -> None:
        start = self.stack.pop()
        # A syntactic position recorded inside the node wins, as in PositionProvider.
        if node not in self.spans:
            self.spans[node] = (start, self.offset)

    def add_indent_tokens(self) -> None:
        for token in self.indent_tokens:
            self.offset += len(token)

    def add_token(self, value: str) -> None:
        # Line breaks are found per token, exactly as PositionProvider splits them, so
        # the line table is that of the rendered text even where it differs from the
        # source (whitespace at the end of a file without a final newline).
        if "\n" in value or "\r" in value:
            starts = self.line_starts
            for match in _NEWLINE.finditer(value):
                starts.append(self.offset + match.end())
        self.offset += len(value)

    def pop_trailing_newline(self) -> None:
        # PositionProvider drops the token but keeps its position, so the module and
        # its last Newline end on the line after the text; do the same.
        pass

    def record_syntactic_position(self, node: Any, *, start_node: Any = None,
                                  end_node: Any = None) -> "_Syntactic":
        return _Syntactic(self, node, start_node, end_node)


class _Syntactic:
    """``record_syntactic_position`` as a plain context manager: a generator-based one
    costs a third of the whole pass, and it is entered for most nodes."""

    __slots__ = ("state", "node", "start_node", "end_node", "start")

    def __init__(self, state: _OffsetState, node: Any, start_node: Any, end_node: Any) -> None:
        self.state, self.node, self.start_node, self.end_node = state, node, start_node, end_node

    def __enter__(self) -> None:
        self.start = self.state.offset

    def __exit__(self, *exc: Any) -> None:
        spans = self.state.spans
        start = spans[self.start_node][0] if self.start_node is not None else self.start
        end = spans[self.end_node][1] if self.end_node is not None else self.state.offset
        spans[self.node] = (start, end)


class Positions:
    """Line and column of any node of one module, in the coordinates of ``PositionProvider``.

    The pass renders the module one top-level statement at a time and stops as soon
    as the node asked for has been rendered; the next question resumes where it
    stopped. A file whose findings sit near its top is never rendered to the end.

    Args:
        module: The parsed ``libcst.Module``.
        source: The text the module was parsed from.
    """

    def __init__(self, module: Any, source: str) -> None:
        self._module = module
        self._source = source
        self._state = _OffsetState(default_indent=module.default_indent,
                                   default_newline=module.default_newline)
        # Module codegen checks ``tokens`` to decide whether an empty module needs
        # its newline; a placeholder keeps that check meaningful without storing text.
        self._state.tokens.append("")
        self._units = iter((*module.header, *module.body, *module.footer))
        self._finished = False
        #: Whether the rendered text has the source's length (libcst round-trips
        #: source exactly, except some whitespace at the end of a file without a final
        #: newline); known once the pass has finished, ``True`` until then.
        self.exact = True

    def _render_until(self, node: Any) -> bool:
        spans = self._state.spans
        if node in spans:
            return True
        if self._finished:
            return False
        for unit in self._units:
            unit._codegen(self._state)
            if node in spans:
                return True
        self._finish()
        return node in spans

    def _finish(self) -> None:
        state, module = self._state, self._module
        if module.has_trailing_newline and state.offset == 0:
            state.add_token(state.default_newline)
        state.spans[module] = (0, state.offset)
        self._finished = True
        self.exact = state.offset == len(self._source) or (
            not module.has_trailing_newline
            and state.offset == len(self._source) + len(module.default_newline))

    def _line_col(self, offset: int) -> tuple[int, int]:
        starts = self._state.line_starts
        index = bisect.bisect_right(starts, offset) - 1
        return index + 1, offset - starts[index]

    def __contains__(self, node: Any) -> bool:
        return self._render_until(node)

    def find(self, node: Any) -> tuple[int, int, int, int] | None:
        """Return ``(line, col, end_line, end_col)`` of ``node``, or ``None``.

        Args:
            node: A node of the module.

        Returns:
            1-based lines and 0-based columns as ``PositionProvider`` reports them, or
            ``None`` when the node is not in the module or the text did not round-trip.
        """
        if not self._render_until(node):
            return None
        if self._finished and not self.exact:
            return None
        return self.get(node)

    def get(self, node: Any) -> tuple[int, int, int, int]:
        """Return ``(line, col, end_line, end_col)`` of a node already rendered.

        Args:
            node: A node of the module.

        Returns:
            1-based lines and 0-based columns, as ``PositionProvider`` reports them.
        """
        self._render_until(node)
        start, end = self._state.spans[node]
        return (*self._line_col(start), *self._line_col(end))

    def finish(self) -> "Positions":
        """Render the rest of the module (tests compare every node).

        Returns:
            This object.
        """
        if not self._finished:
            for unit in self._units:
                unit._codegen(self._state)
            self._finish()
        return self
