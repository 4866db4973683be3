"""TensorFlow smells: unguarded logs, ``tf.tile`` where broadcasting serves, Python lists
grown in ``tf.function`` loops, models built in a loop without ``clear_session``."""

from __future__ import annotations

import ast
from typing import Any

from ...api import register
from ._base import LOOPS, SmellRule, dotted_name, loops_in_scope, qualified_names

_LOGS = {"tensorflow.math.log", "tensorflow.log", "tensorflow.compat.v1.log"}
_GUARDS = {"tensorflow.clip_by_value", "tensorflow.maximum", "tensorflow.math.maximum", "tensorflow.math.softplus",
           "tensorflow.nn.softplus", "tensorflow.where", "tensorflow.math.abs"}
_MODEL_BUILDERS = ("tensorflow.keras.Sequential", "tensorflow.keras.Model", "tensorflow.keras.models.Sequential",
                   "tensorflow.keras.models.Model", "keras.Sequential", "keras.Model", "keras.models.Sequential",
                   "keras.models.Model")
_CLEAR = {"tensorflow.keras.backend.clear_session", "keras.backend.clear_session", "keras.utils.clear_session"}


def _guarded(names: Any, node: ast.AST) -> bool:
    if type(node) is ast.BinOp and type(node.op) is ast.Add:  # x + eps
        return type(node.left) is ast.Constant or type(node.right) is ast.Constant or \
            any(type(s) is ast.Name and "eps" in s.id.lower() for s in (node.left, node.right))
    if type(node) is ast.Call:
        qual = names.resolve(node.func) or ""  # type: ignore[attr-defined]
        return qual in _GUARDS or qual.startswith("tensorflow.math.softmax") or "softmax" in qual
    return False


@register
class TensorFlowPitfalls(SmellRule):
    """Flags TensorFlow code that underflows, copies, retraces or leaks.

    What it does:
        Finds ``tf.math.log(x)`` whose argument is neither clipped (``tf.clip_by_value``,
        ``tf.maximum``) nor offset by a constant; ``tf.tile`` (broadcasting usually
        serves); ``list.append`` inside a loop of a ``@tf.function``; and Keras models
        built inside a loop that never calls ``clear_session()``.

    Why is this bad?
        ``log(0)`` is ``-inf`` and turns the loss into ``nan``. ``tf.tile`` materialises
        copies that broadcasting avoids. A Python list in a traced loop is unrolled at
        trace time (use ``tf.TensorArray``), so graphs grow with the loop count. Each
        model built in a loop adds to Keras' global graph state, so memory grows and
        layer names drift.

    Example:
        ```python
        loss = -tf.reduce_sum(labels * tf.math.log(probs))
        ```

    Use instead:
        ```python
        loss = -tf.reduce_sum(labels * tf.math.log(tf.clip_by_value(probs, 1e-7, 1.0)))
        ```
    """

    code = "MLC324"
    name = "tensorflow-pitfalls"
    summary = "TensorFlow: unguarded log, tf.tile, list grown in tf.function, no clear_session"
    default = "preview"
    requires_text = ("tensorflow", "keras")

    def begin_file(self, ctx: Any) -> None:
        """Start a file.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.builders: dict[int, ast.AST] = {}
        self.cleared: set[int] = set()

    def _in_tf_function(self) -> bool:
        names = qualified_names(self.ctx)
        for a in self.ctx.ancestors:
            if type(a) in (ast.FunctionDef, ast.AsyncFunctionDef):
                for deco in a.decorator_list:  # type: ignore[attr-defined]
                    target = deco.func if type(deco) is ast.Call else deco
                    if names.resolve(target) == "tensorflow.function":
                        return True
        return False

    def visit_Call(self, node: ast.Call) -> None:
        """Check a call.

        Args:
            node: The call.
        """
        names = qualified_names(self.ctx)
        func = node.func
        qual = names.resolve(func) if type(func) in (ast.Name, ast.Attribute) else None
        if qual in _LOGS and len(node.args) == 1 and not _guarded(names, node.args[0]):
            self.report(node, "`tf.math.log` of an unclipped value is `-inf` at 0 and makes the loss `nan`; "
                              "clip it (`tf.clip_by_value(x, eps, 1.0)`) or use a log-space op")
        elif qual in ("tensorflow.tile", "tensorflow.compat.v1.tile"):
            self.report(node, "`tf.tile` copies the tensor; broadcasting in the operation that follows "
                              "usually gives the same result without the copy")
        elif type(func) is ast.Attribute and func.attr == "append" and type(func.value) is ast.Name and \
                loops_in_scope(self.ctx.ancestors) and self._in_tf_function():
            self.report(node, f"`{func.value.id}.append` in a loop of a `tf.function` is unrolled at trace "
                              f"time; collect into a `tf.TensorArray` instead")
        elif qual in _MODEL_BUILDERS or qual in _CLEAR:
            loops = [a for a in self.ctx.ancestors if isinstance(a, LOOPS)]
            if loops:
                if qual in _CLEAR:
                    self.cleared.add(id(loops[0]))
                else:
                    self.builders.setdefault(id(loops[0]), node)

    def end_file(self) -> list:
        """Report models built in loops without ``clear_session``.

        Returns:
            The findings.
        """
        for loop, node in self.builders.items():
            if loop not in self.cleared:
                self.report(node, f"a Keras model is built in a loop without "
                                  f"`tf.keras.backend.clear_session()`: global state grows every iteration; "
                                  f"clear the session at the start of each iteration ({dotted_name(node.func)})")  # type: ignore[attr-defined]
        return super().end_file()
