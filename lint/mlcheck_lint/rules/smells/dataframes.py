"""pandas smells: chained assignment that may write to a copy, discarded results of
methods that return a new frame, and (off by default) merge parameters, idioms and
placeholder columns.

Both rules only flag receivers known to be DataFrames or Series: names assigned from
``pd.read_*``, ``pd.DataFrame``, ``pd.Series``, ``pd.concat`` and friends, from a
frame-returning method or a subscript of a known frame, and parameters annotated
``pd.DataFrame``/``pd.Series``. A list of lists or a NumPy array indexed twice is never
flagged.
"""

from __future__ import annotations

import ast
from typing import Any

from ...api import register
from ._base import ML_IMPORTS, SmellRule, dotted_name, is_literal, keyword, notebook_state, qualified_names, text_of

_CONSTRUCTORS = frozenset({
    "DataFrame", "Series", "concat", "merge", "merge_asof", "merge_ordered", "get_dummies", "pivot_table",
    "crosstab", "melt", "json_normalize", "read_csv", "read_table", "read_excel", "read_parquet", "read_json",
    "read_feather", "read_sql", "read_sql_query", "read_sql_table", "read_hdf", "read_fwf", "read_orc",
    "read_stata", "read_sas", "read_spss", "read_xml", "read_clipboard", "read_pickle"})
_FRAME_METHODS = frozenset({
    "copy", "dropna", "fillna", "drop", "rename", "sort_values", "sort_index", "reset_index", "set_index",
    "astype", "replace", "merge", "join", "assign", "query", "head", "tail", "sample", "drop_duplicates",
    "filter", "pivot", "pivot_table", "melt", "ffill", "bfill", "interpolate", "where", "mask", "clip",
    "round", "abs", "rename_axis", "reindex", "select_dtypes", "explode", "infer_objects", "convert_dtypes",
    "transpose", "nlargest", "nsmallest", "to_frame", "dropna", "isna", "notna", "isnull", "notnull"})
#: methods whose result is a new object unless ``inplace=True`` (astype has no inplace).
_DISCARDABLE = frozenset({"dropna", "fillna", "drop", "rename", "sort_values", "sort_index", "reset_index",
                          "set_index", "astype", "replace", "drop_duplicates", "ffill", "bfill", "interpolate",
                          "where", "mask", "clip", "round", "rename_axis", "reindex", "infer_objects",
                          "convert_dtypes", "abs", "assign", "query", "merge", "join"})


#: DataFrame/Series attributes that are not columns (``df.values[0] = v`` writes the array).
_FRAME_ATTRIBUTES = frozenset({
    "loc", "iloc", "at", "iat", "values", "index", "columns", "T", "str", "dt", "cat", "sparse", "array",
    "plot", "style", "attrs", "flags", "axes", "dtypes", "dtype", "shape", "name", "names", "empty", "ndim",
    "size", "hasnans", "is_unique", "data", "real", "imag"})


def _column_selection(frames: "_Frames", node: ast.AST) -> bool:
    """Whether ``node`` selects columns or rows of a known frame: ``df["a"]``, ``df[["a", "b"]]``,
    ``df.loc[:, "a"]``, ``df.a``."""
    if type(node) is ast.Subscript:
        return frames.known(node.value) or (type(node.value) is ast.Attribute  # type: ignore[attr-defined]
                                            and node.value.attr in ("loc", "iloc")  # type: ignore[attr-defined]
                                            and frames.known(node.value.value))  # type: ignore[attr-defined]
    return (type(node) is ast.Attribute and node.attr not in _FRAME_ATTRIBUTES  # type: ignore[attr-defined]
            and not node.attr.startswith("_") and frames.known(node.value))  # type: ignore[attr-defined]


class _Frames:
    """Which dotted names hold a DataFrame or Series, per function scope."""

    def __init__(self) -> None:
        self.scopes: list[set[str]] = [set()]

    def known(self, node: ast.AST) -> bool:
        while type(node) is ast.Subscript:
            node = node.value  # type: ignore[attr-defined]
        key = dotted_name(node)
        return key is not None and any(key in s for s in (self.scopes[-1], self.scopes[0]))


def _is_frame_expr(names: Any, frames: _Frames, value: ast.AST) -> bool:
    kind = type(value)
    if kind is ast.Call:
        func = value.func  # type: ignore[attr-defined]
        qual = names.resolve(func)
        if qual is not None:
            return qual.startswith("pandas.") and qual.rsplit(".", 1)[-1] in _CONSTRUCTORS
        if type(func) is ast.Attribute and func.attr in _FRAME_METHODS:
            if keyword(value, "inplace") is not None and not is_literal(keyword(value, "inplace").value, False):  # type: ignore[arg-type, union-attr]
                return False
            return frames.known(func.value)
        return False
    if kind is ast.Subscript:
        return frames.known(value)
    if kind in (ast.Name, ast.Attribute):
        return frames.known(value)
    return False


class _FrameTracking(SmellRule):
    """Base of the pandas rules: follows which names hold frames through the walk."""

    requires_text = ("pandas", "pd.", "df") + ML_IMPORTS

    def begin_file(self, ctx: Any) -> None:
        """Start a file.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.frames = _Frames()
        self.frames.scopes[0] = notebook_state(ctx, self.code + ".frames", set)
        self.pandas = qualified_names(ctx).imports("pandas")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        """Open a scope; parameters annotated as DataFrame or Series are frames.

        Args:
            node: The function.
        """
        scope: set[str] = set()
        if self.pandas:
            names = qualified_names(self.ctx)
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                annotation = arg.annotation
                if annotation is None:
                    continue
                if type(annotation) is ast.Constant and isinstance(annotation.value, str):
                    text = annotation.value
                    local = text.split(".", 1)[0]
                    qual = names.bindings.get(local, "") + text[len(local):]
                else:
                    qual = names.resolve(annotation) or ""
                if qual in ("pandas.DataFrame", "pandas.Series", "pandas.core.frame.DataFrame"):
                    scope.add(arg.arg)
        self.frames.scopes.append(scope)

    def leave_FunctionDef(self, node: ast.AST) -> None:
        """Close a scope.

        Args:
            node: The function.
        """
        self.frames.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]
    leave_AsyncFunctionDef = leave_FunctionDef

    def _assign(self, targets: list[ast.expr], value: ast.AST) -> None:
        if not self.pandas:
            return
        frame = _is_frame_expr(qualified_names(self.ctx), self.frames, value)
        for target in targets:
            key = dotted_name(target)
            if key is None:
                continue
            # self.df assigned in __init__ is a frame in every method: keep attributes
            # of self at module scope.
            scope = self.frames.scopes[0] if "." in key else self.frames.scopes[-1]
            if frame:
                scope.add(key)
            else:
                scope.discard(key)

    def visit_Assign(self, node: ast.Assign) -> None:
        """Track frames; subclasses check the targets first.

        Args:
            node: The assignment.
        """
        self.check_targets(node.targets)
        self._assign(node.targets, node.value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        """Track frames through annotated assignments.

        Args:
            node: The assignment.
        """
        if node.value is not None:
            self.check_targets([node.target])
            self._assign([node.target], node.value)

    def check_targets(self, targets: list[ast.expr]) -> None:
        """Check assignment targets (overridden by MLC313).

        Args:
            targets: The targets.
        """


@register
class ChainedAssignment(_FrameTracking):
    """Flags pandas chained assignment, which may write to a temporary copy.

    What it does:
        Finds ``df[a][b] = v``, ``df.loc[i][c] = v``, ``df[c].loc[i] = v`` and
        ``df.col[i] = v`` where ``df`` is known to be a DataFrame or Series
        (``.loc``/``.iloc`` chains are flagged in any file that imports pandas), and an
        in-place method on a selection, ``df["col"].fillna(0, inplace=True)``.

    Why is this bad?
        The first indexing may return a copy; the assignment then changes the copy and
        the frame stays as it was. pandas warns only sometimes
        (``SettingWithCopyWarning``), and under copy-on-write (the default from pandas
        3.0) such an assignment never changes the frame.

    Example:
        ```python
        df["price"][df["price"] < 0] = 0
        ```

    Use instead:
        ```python
        df.loc[df["price"] < 0, "price"] = 0
        ```
    """

    code = "MLC313"
    name = "pandas-chained-assignment"
    summary = "pandas chained assignment may modify a copy and silently do nothing"

    def check_targets(self, targets: list[ast.expr]) -> None:
        """Check assignment targets.

        Args:
            targets: The targets.
        """
        if not self.pandas:
            return
        for target in targets:
            if type(target) is not ast.Subscript:
                continue
            inner = target.value
            flagged = False
            if type(inner) is ast.Subscript:
                base = inner.value
                if type(base) is ast.Attribute and base.attr in ("loc", "iloc"):
                    flagged = True
                elif self.frames.known(base):
                    flagged = True
            elif type(inner) is ast.Attribute and inner.attr in ("loc", "iloc", "at", "iat") \
                    and type(inner.value) is ast.Subscript and self.frames.known(inner.value):
                flagged = True
            elif type(inner) is ast.Attribute and _column_selection(self.frames, inner):
                flagged = True  # df.price[df.price < 0] = 0
            if flagged:
                self.report(target, "chained assignment: the first indexing may return a copy, so this "
                                    "assignment can silently leave the frame unchanged; index once with "
                                    "`.loc[rows, column] = value`")

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        """Check an augmented assignment's target.

        Args:
            node: The assignment.
        """
        self.check_targets([node.target])

    def visit_Expr(self, node: ast.Expr) -> None:
        """Check ``df["a"].fillna(0, inplace=True)``: an in-place method on a selection.

        Args:
            node: The statement.
        """
        call = node.value
        if not self.pandas or type(call) is not ast.Call or type(call.func) is not ast.Attribute \
                or call.func.attr not in _DISCARDABLE:
            return
        inplace = keyword(call, "inplace")
        if inplace is None or not is_literal(inplace.value, True):
            return
        selection = call.func.value
        if not _column_selection(self.frames, selection):
            return
        self.report(call, f"`{call.func.attr}(..., inplace=True)` on a selection changes a temporary copy (always "
                          f"under copy-on-write, the default from pandas 3.0; always for a list of columns), so "
                          f"the frame stays unchanged; assign the result back (`df[col] = df[col]."
                          f"{call.func.attr}(...)`) or call it on the frame (`df.{call.func.attr}"
                          f"({{col: ...}}, inplace=True)`)")


@register
class DiscardedPandasResult(_FrameTracking):
    """Flags a pandas method whose new result is thrown away.

    What it does:
        Finds a bare statement ``df.dropna()`` (``fillna``, ``drop``, ``rename``,
        ``sort_values``, ``reset_index``, ``astype``, ``replace`` and other methods
        that return a new object) without ``inplace=True``, on a receiver known to be a
        DataFrame or Series.

    Why is this bad?
        These methods do not change the frame; they return a changed copy. Discarding
        it leaves the data as it was, so missing values, wrong types or unsorted rows
        silently flow into training.

    Example:
        ```python
        df = pd.read_csv("train.csv")
        df.dropna()
        ```

    Use instead:
        ```python
        df = pd.read_csv("train.csv")
        df = df.dropna()
        ```
    """

    code = "MLC314"
    name = "pandas-result-discarded"
    summary = "result of a pandas method that returns a new object is discarded"

    def visit_Expr(self, node: ast.Expr) -> None:
        """Check a bare expression statement.

        Args:
            node: The statement.
        """
        call = node.value
        if not self.pandas or type(call) is not ast.Call or type(call.func) is not ast.Attribute:
            return
        if self.ctx.cell is not None and self.ctx.tree.body and self.ctx.tree.body[-1] is node:
            return  # a notebook shows the value of a cell's last expression: not discarded
        parent = self.ctx.ancestors[-1] if self.ctx.ancestors else None
        if type(parent) in (ast.Try, getattr(ast, "TryStar", ast.Try)) and parent.body == [node] and parent.handlers:
            return  # try: df.assign(...) / except KeyError: the call is made for its exception
        method = call.func.attr
        if method not in _DISCARDABLE or any(kw.arg is None for kw in call.keywords):
            return
        inplace = keyword(call, "inplace")
        if inplace is not None and not is_literal(inplace.value, False):
            return
        if not self.frames.known(call.func.value):
            return
        receiver = dotted_name(call.func.value)
        if receiver is None:  # df[col].fillna(...): quote the selection as written
            written = text_of(self.ctx, call.func.value)
            receiver = written if len(written) <= 60 and "\n" not in written else "the frame"
        self.report(call, f"`{receiver}.{method}(...)` returns a new object, which is discarded here: "
                          f"`{receiver}` is unchanged; assign the result (`{receiver} = {receiver}.{method}(...)`)")


@register
class MergeParametersNotSet(_FrameTracking):
    """Flags pandas merges and joins that leave their keys, kind or check implicit, and
    ``read_csv`` without ``dtype`` for a frame whose columns are used later.

    What it does:
        Finds ``pd.merge``/``df.merge``/``df.join`` on frames without ``on`` (or
        ``left_on``/``right_on``, ``left_index``), ``how`` or ``validate``, and
        ``pd.read_csv(...)`` without ``dtype``/``converters`` assigned to a frame whose
        columns the file then indexes.

    Why is this bad?
        A merge on every shared column name silently joins on columns added later; the
        default ``how="inner"`` silently drops unmatched rows; without ``validate``,
        duplicate keys multiply rows. ``read_csv`` guesses types per file, so a column
        of IDs becomes float when one value is missing, or ``object`` when one is text.

    Example:
        ```python
        rows = pd.merge(orders, customers)
        ```

    Use instead:
        ```python
        rows = pd.merge(orders, customers, on="customer_id", how="left", validate="many_to_one")
        ```
    """

    code = "MLC320"
    name = "merge-parameters-not-set"
    summary = "pandas merge/join without on/how/validate, read_csv without dtype"
    default = "off"

    def begin_file(self, ctx: Any) -> None:
        """Start a file.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.reads: dict[str, ast.Call] = {}
        self.indexed: set[str] = set()

    def visit_Assign(self, node: ast.Assign) -> None:
        """Remember frames read without dtypes, then track frames.

        Args:
            node: The assignment.
        """
        value = node.value
        if self.pandas and type(value) is ast.Call and \
                qualified_names(self.ctx).resolve(value.func) in ("pandas.read_csv", "pandas.read_table") and \
                keyword(value, "dtype") is None and keyword(value, "converters") is None and \
                not any(kw.arg is None for kw in value.keywords):
            for target in node.targets:
                key = dotted_name(target)
                if key:
                    self.reads[key] = value
        super().visit_Assign(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        """Record column access by name.

        Args:
            node: The subscript.
        """
        if type(node.slice) is ast.Constant and isinstance(node.slice.value, str):
            key = dotted_name(node.value)
            if key:
                self.indexed.add(key)

    def visit_Call(self, node: ast.Call) -> None:
        """Check merges and joins.

        Args:
            node: The call.
        """
        if not self.pandas or any(kw.arg is None for kw in node.keywords):
            return
        func = node.func
        qual = qualified_names(self.ctx).resolve(func) if type(func) in (ast.Name, ast.Attribute) else None
        if qual == "pandas.merge":
            kind = "merge"
        elif type(func) is ast.Attribute and func.attr in ("merge", "join") and self.frames.known(func.value):
            kind = func.attr
        else:
            return
        given = {kw.arg for kw in node.keywords}
        missing = []
        if not given & {"on", "left_on", "right_on", "left_index", "right_index"}:
            missing.append("on")
        missing += [k for k in ("how", "validate") if k not in given]
        if kind == "join" and len(node.args) > 1:
            missing = [m for m in missing if m != "on"]
        if missing:
            self.report(node, f"`{kind}` without {', '.join(f'`{m}=`' for m in missing)}: keys, kind and "
                              f"cardinality are implicit, so rows can be dropped or multiplied silently")

    def end_file(self) -> list:
        """Report ``read_csv`` without dtypes for frames whose columns are used.

        Returns:
            The findings.
        """
        for key, call in self.reads.items():
            if key in self.indexed:
                self.report(call, f"`{key}` is read without `dtype=` and its columns are used below: pandas "
                                  f"guesses each column's type per file; declare the dtypes you rely on")
        return super().end_file()


@register
class PandasNumpyIdioms(_FrameTracking):
    """Flags ``df.values``, ``np.dot`` and ``df.iterrows()`` loops.

    What it does:
        Finds ``.values`` on a known DataFrame or Series, ``np.dot(a, b)``, and ``for``
        loops over ``df.iterrows()``.

    Why is this bad?
        ``.values`` returns an ndarray or an extension array depending on the dtypes,
        so downstream code gets different types per frame; ``to_numpy()`` is explicit.
        ``np.dot`` means inner product for 1-D, matrix product for 2-D and a sum
        product over odd axes for N-D; ``@``/``np.matmul`` says what is meant.
        ``iterrows`` builds a Series per row, hundreds of times slower than the
        vectorised column operation, and loses dtypes.

    Example:
        ```python
        X = df.values
        for _, row in df.iterrows():
            total += row["price"] * row["qty"]
        ```

    Use instead:
        ```python
        X = df.to_numpy()
        total = (df["price"] * df["qty"]).sum()
        ```
    """

    code = "MLC321"
    name = "pandas-numpy-idioms"
    summary = "df.values, np.dot, or a df.iterrows() loop a vectorised operation replaces"
    default = "off"
    requires_text = ("values", "dot", "iterrows")

    def begin_file(self, ctx: Any) -> None:
        """Start a file.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.numpy = qualified_names(ctx).imports("numpy")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        """Check ``.values``.

        Args:
            node: The attribute.
        """
        if node.attr == "values" and self.pandas and type(node.ctx) is ast.Load and self.frames.known(node.value):
            parent = self.ctx.ancestors[-1] if self.ctx.ancestors else None
            if type(parent) is ast.Call and parent.func is node:
                return  # dict.values() is a call; df.values is not
            self.report(node, "`.values` returns an ndarray or an extension array depending on dtypes; use "
                              "`.to_numpy()`")

    def visit_Call(self, node: ast.Call) -> None:
        """Check ``np.dot``.

        Args:
            node: The call.
        """
        if self.numpy and type(node.func) is ast.Attribute and node.func.attr == "dot" and \
                qualified_names(self.ctx).resolve(node.func) == "numpy.dot":
            self.report(node, "`np.dot` means a different product for 1-D, 2-D and N-D input; write `a @ b` "
                              "(or `np.matmul`) for matrix products")

    def visit_For(self, node: ast.For) -> None:
        """Check ``for ... in df.iterrows()``.

        Args:
            node: The loop.
        """
        it = node.iter
        if self.pandas and type(it) is ast.Call and type(it.func) is ast.Attribute and \
                it.func.attr in ("iterrows", "itertuples") and self.frames.known(it.func.value):
            self.report(it, f"a Python loop over `{it.func.attr}()` is far slower than a vectorised column "
                            f"operation and loses dtypes; compute with whole columns instead")


@register
class EmptyColumnMisinitialized(_FrameTracking):
    """Flags a new DataFrame column filled with ``0`` or ``""`` as a placeholder.

    What it does:
        Finds ``df["col"] = 0``, ``= 0.0`` or ``= ""`` (and ``df.loc[:, "col"] = ...``,
        ``df.assign(col="")``) on a known DataFrame, where ``"col"`` is a column this
        file has not named before: a placeholder column created to be filled later.
        Off by default: a counter that starts at 0 on purpose looks the same, and a
        column that only the data file names looks new.

    Why is this bad?
        Rows the later code never fills keep a value that looks real: a zero is
        averaged into statistics and fed to models as data, an empty string passes
        ``notna()``. With ``np.nan`` (or ``pd.NA``) the unfilled rows stay visible to
        ``isna()``, ``dropna()`` and every aggregation (the "empty column
        misinitialization" smell of the ML code-smell catalogue).

    Example:
        ```python
        df["score"] = 0
        df.loc[mask, "score"] = compute(df[mask])
        ```

    Use instead:
        ```python
        df["score"] = np.nan
        df.loc[mask, "score"] = compute(df[mask])
        ```
    """

    code = "MLC327"
    name = "empty-column-misinitialized"
    summary = "new DataFrame column initialised with 0 or an empty string instead of NaN"
    default = "off"

    def begin_file(self, ctx: Any) -> None:
        """Start a file.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.columns: set[str] = notebook_state(ctx, "MLC327.columns", set)  # column names seen so far

    @staticmethod
    def _placeholder(value: ast.AST | None) -> bool:
        return (type(value) is ast.Constant and type(value.value) in (int, float, str)  # type: ignore[union-attr]
                and value.value in (0, ""))  # type: ignore[union-attr]

    def visit_Constant(self, node: ast.Constant) -> None:
        """Remember every string of the file so far: a column named before is not new.

        Args:
            node: The constant.
        """
        if type(node.value) is str and len(node.value) < 200:
            self.columns.add(node.value)

    def _column(self, target: ast.AST) -> str | None:
        if type(target) is not ast.Subscript:
            return None
        index = target.slice
        holder = target.value
        if type(holder) is ast.Attribute and holder.attr == "loc" and type(index) is ast.Tuple and len(index.elts) == 2:
            rows, index = index.elts
            if not (type(rows) is ast.Slice and rows.lower is None and rows.upper is None and rows.step is None):
                return None  # df.loc[mask, "c"] = 0 fills some rows: not a new placeholder
            holder = holder.value
        if type(index) is not ast.Constant or type(index.value) is not str or not self.frames.known(holder):
            return None
        return index.value

    def visit_Assign(self, node: ast.Assign) -> None:
        """Check ``df["new"] = 0`` (before the target's own string counts as seen), then track frames.

        Args:
            node: The assignment.
        """
        if self.pandas and self._placeholder(node.value):
            for target in node.targets:
                column = self._column(target)
                if column is not None and column not in self.columns:
                    self._report(target, column, node.value)  # type: ignore[arg-type]
        super().visit_Assign(node)

    def _report(self, node: ast.AST, column: str, value: ast.Constant) -> None:
        self.report(node, f"new column `{column}` is filled with `{value.value!r}` as a placeholder: rows never "
                          f"filled later look like real data; initialise it with `np.nan` (or `pd.NA`)")

    def visit_Call(self, node: ast.Call) -> None:
        """Check ``df.assign(col=0)``.

        Args:
            node: The call.
        """
        func = node.func
        if type(func) is ast.Attribute and func.attr == "assign" and self.frames.known(func.value):
            for kw in node.keywords:
                if kw.arg is not None and self._placeholder(kw.value) and kw.arg not in self.columns:
                    self._report(kw.value, kw.arg, kw.value)  # type: ignore[arg-type]
