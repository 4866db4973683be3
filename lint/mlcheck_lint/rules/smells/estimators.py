"""scikit-learn smells: preprocessing fitted on data it must not see."""

from __future__ import annotations

import ast
import re
from typing import Any

from ...api import register
from ._base import ML_IMPORTS, SmellRule, dotted_name, keyword, notebook_state, qualified_names

_TRANSFORMER_MODULES = ("sklearn.preprocessing.", "sklearn.impute.", "sklearn.feature_selection.",
                        "sklearn.decomposition.")
_HELD_OUT = re.compile(r"(test|tst|val|valid|validation|dev|holdout|heldout|eval)\d*")
_SPLITTERS = {"sklearn.model_selection.train_test_split", "sklearn.cross_validation.train_test_split"}


def is_held_out_name(name: str) -> bool:
    """Return whether a variable name says it holds a test or validation split.

    ``X_test``, ``x_val``, ``test_df``, ``valid_features``, ``Xtest`` and ``X_dev`` do;
    ``value``, ``interval``, ``device`` and a bare ``val`` (usually a value) do not.

    Args:
        name: The variable or attribute name.

    Returns:
        True for a held-out split's name.
    """
    lowered = name.lower()
    tokens = [t for t in re.split(r"_+", lowered) if t]
    if len(tokens) == 1:
        token = tokens[0]
        stripped = token[1:] if token[:1] in ("x", "y") and len(token) > 1 else None
        return stripped is not None and _HELD_OUT.fullmatch(stripped) is not None or token in ("test", "testing")
    return any(_HELD_OUT.fullmatch(t) for t in tokens)


def _data_names(node: ast.AST) -> list[str]:
    """Names of the data an argument is made of (not those inside a subscript's index)."""
    kind = type(node)
    if kind is ast.Name:
        return [node.id]  # type: ignore[attr-defined]
    if kind is ast.Attribute:
        return [node.attr]  # type: ignore[attr-defined]
    if kind is ast.Subscript:
        return _data_names(node.value)  # type: ignore[attr-defined]
    if kind is ast.Call:
        out: list[str] = []
        func = node.func  # type: ignore[attr-defined]
        if type(func) is ast.Attribute and type(func.value) is not ast.Name:
            out += _data_names(func.value)  # df_test.fillna(0).values
        elif type(func) is ast.Attribute and type(func.value) is ast.Name and func.attr not in ("concatenate",
                                                                                              "vstack", "concat",
                                                                                              "hstack", "array"):
            out += [func.value.id]
        for arg in node.args:  # type: ignore[attr-defined]
            out += _data_names(arg)
        return out
    if kind in (ast.List, ast.Tuple):
        return [n for e in node.elts for n in _data_names(e)]  # type: ignore[attr-defined]
    return []


class _FunctionFacts:
    def __init__(self) -> None:
        self.fits: list[tuple[ast.Call, list[str], str | None, str]] = []
        self.splits: list[tuple[ast.Call, set[str]]] = []


@register
class PreprocessingLeakage(SmellRule):
    """Flags a scikit-learn preprocessing step fitted on test or validation data.

    What it does:
        Finds ``.fit(...)``/``.fit_transform(...)`` of a transformer from
        ``sklearn.preprocessing``, ``impute``, ``feature_selection`` or
        ``decomposition`` (a scaler, imputer, selector, PCA) called on data named as a
        test or validation split (``X_test``, ``val_df``), or on data that the same
        function splits afterwards with ``train_test_split``.

    Why is this bad?
        The transformer learns statistics (means, variances, selected features,
        components) from the data used to evaluate the model. Evaluation scores are
        optimistic and do not hold on truly unseen data: a leak that raises no error.

    Example:
        ```python
        X = scaler.fit_transform(X)
        X_train, X_test, y_train, y_test = train_test_split(X, y)
        ```

    Use instead:
        ```python
        X_train, X_test, y_train, y_test = train_test_split(X, y)
        X_train = scaler.fit_transform(X_train)
        X_test = scaler.transform(X_test)
        ```
    """

    code = "MLC312"
    name = "preprocessing-leakage"
    summary = "preprocessing fitted on test data, or on data split afterwards"
    requires_text = ("sklearn",) + ML_IMPORTS

    def begin_file(self, ctx: Any) -> None:
        """Start a file.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.transformers: set[str] = notebook_state(ctx, "MLC312.transformers", set)
        self.functions: list[_FunctionFacts] = [_FunctionFacts()]

    def _is_transformer(self, call: ast.AST) -> bool:
        if type(call) is not ast.Call:
            return False
        qual = qualified_names(self.ctx).resolve(call.func) or ""  # type: ignore[attr-defined]
        return qual.startswith(_TRANSFORMER_MODULES) and qual.rsplit(".", 1)[-1][:1].isupper()

    def visit_FunctionDef(self, node: ast.AST) -> None:
        """Open a function.

        Args:
            node: The function.
        """
        self.functions.append(_FunctionFacts())

    def leave_FunctionDef(self, node: ast.AST) -> None:
        """Close a function and report fits on data it splits afterwards.

        Args:
            node: The function.
        """
        self._finish(self.functions.pop())

    visit_AsyncFunctionDef = visit_FunctionDef
    leave_AsyncFunctionDef = leave_FunctionDef

    def visit_Assign(self, node: ast.Assign) -> None:
        """Remember names bound to transformers.

        Args:
            node: The assignment.
        """
        if self._is_transformer(node.value):
            for target in node.targets:
                key = dotted_name(target)
                if key:
                    self.transformers.add(key)

    def visit_Call(self, node: ast.Call) -> None:
        """Check fits and record splits.

        Args:
            node: The call.
        """
        func = node.func
        facts = self.functions[-1]
        if type(func) is ast.Attribute and func.attr in ("fit", "fit_transform"):
            receiver = func.value
            if not (self._is_transformer(receiver) or dotted_name(receiver) in self.transformers):
                return
            given = keyword(node, "X")
            data = given.value if given is not None else (node.args[0] if node.args else None)
            if data is None:
                return
            data_names = _data_names(data)
            held_out = [n for n in data_names if is_held_out_name(n)]
            what = dotted_name(receiver) or "the transformer"
            if held_out:
                self.report(node, f"`{what}.{func.attr}` learns its statistics from `{held_out[0]}`, a "
                                  f"test/validation split: evaluation leaks into preprocessing; fit on the "
                                  f"training split and only `.transform` the held-out data")
                return
            parent = self.ctx.ancestors[-1] if self.ctx.ancestors else None
            result = None
            if type(parent) is ast.Assign and parent.value is node and type(parent.targets[0]) is ast.Name:
                result = parent.targets[0].id
            facts.fits.append((node, data_names, result, what))
            return
        qual = qualified_names(self.ctx).resolve(func) if type(func) in (ast.Name, ast.Attribute) else None
        if qual in _SPLITTERS or (qual is None and type(func) is ast.Name and func.id == "train_test_split"):
            facts.splits.append((node, {n for a in node.args for n in _data_names(a)}))

    def _finish(self, facts: _FunctionFacts) -> None:
        for fit, data_names, result, what in facts.fits:
            for split, split_names in facts.splits:
                if (split.lineno, split.col_offset) <= (fit.lineno, fit.col_offset):
                    continue
                shared = [n for n in [result, *data_names] if n and n in split_names]
                if shared:
                    self.report(fit, f"`{what}.{fit.func.attr}` is fitted on `{shared[0]}`, which "  # type: ignore[attr-defined]
                                     f"`train_test_split` on line {split.lineno} splits afterwards: the test "
                                     f"split's statistics leak into preprocessing; split first, then fit on "
                                     f"the training split")
                    break

    def end_file(self) -> list:
        """Report module-level fits (scripts, notebook cells).

        Returns:
            The findings.
        """
        while self.functions:
            self._finish(self.functions.pop())
        return super().end_file()
