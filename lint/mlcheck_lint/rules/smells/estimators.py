"""scikit-learn smells: preprocessing fitted on data it must not see."""

from __future__ import annotations

import ast
import re
from typing import Any

from ...api import register
from ._base import ML_IMPORTS, ScopedSmellRule, SmellRule, dotted_name, keyword, notebook_state, qualified_names

_TRANSFORMER_MODULES = ("sklearn.preprocessing.", "sklearn.impute.", "sklearn.feature_selection.",
                        "sklearn.decomposition.")
_HELD_OUT = re.compile(r"(test|tst|val|valid|validation|dev|holdout|heldout|eval)\d*")
_SPLITTERS = {"sklearn.model_selection.train_test_split", "sklearn.cross_validation.train_test_split"}
#: cross-validation helpers that split their data (the second argument) into folds.
_CROSS_VALIDATORS = {f"sklearn.model_selection.{n}" for n in (
    "cross_val_score", "cross_validate", "cross_val_predict", "learning_curve", "validation_curve",
    "permutation_test_score")}


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
        # (where, data names, how: "split", "index" or the cross-validator's name, the held-out name)
        self.splits: list[tuple[ast.AST, set[str], str, str]] = []


@register
class PreprocessingLeakage(ScopedSmellRule):
    """Flags a scikit-learn preprocessing step fitted on test or validation data.

    What it does:
        Finds ``.fit(...)``/``.fit_transform(...)`` of a transformer from
        ``sklearn.preprocessing``, ``impute``, ``feature_selection`` or
        ``decomposition`` (a scaler, imputer, selector, PCA) called on data named as a
        test or validation split (``X_test``, ``val_df``), or on data that the same
        function splits afterwards: with ``train_test_split``, by indexing into a
        held-out name (``X_test = X[n:]``, ``test = df.iloc[idx]``), or into folds with
        ``cross_val_score`` and the other cross-validation helpers.

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

    def _is_transformer(self, call: ast.AST) -> bool:
        if type(call) is not ast.Call:
            return False
        qual = qualified_names(self.ctx).resolve(call.func) or ""  # type: ignore[attr-defined]
        return qual.startswith(_TRANSFORMER_MODULES) and qual.rsplit(".", 1)[-1][:1].isupper()

    def visit_Assign(self, node: ast.Assign) -> None:
        """Remember names bound to transformers, and splits by indexing (``X_test = X[n:]``).

        Args:
            node: The assignment.
        """
        pairs: list[tuple[ast.AST, ast.AST]] = []
        for target in node.targets:
            if type(target) is ast.Tuple and type(node.value) is ast.Tuple and len(target.elts) == len(node.value.elts):
                pairs += zip(target.elts, node.value.elts)  # X_train, X_test = X[:n], X[n:]
            else:
                pairs.append((target, node.value))
        for target, value in pairs:
            if type(value) is not ast.Subscript or type(target) is not ast.Name or not is_held_out_name(target.id):
                continue
            root = value.value
            if type(root) is ast.Attribute and root.attr in ("iloc", "loc"):
                root = root.value
            if type(root) is ast.Name:
                self.scopes[-1].splits.append((value, {root.id}, "index", target.id))
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
        facts = self.scopes[-1]
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
            what = dotted_name(receiver)
            if what is None:  # StandardScaler().fit(...)
                built = dotted_name(receiver.func) if type(receiver) is ast.Call else None
                what = f"{built}(...)" if built else "the transformer"
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
            facts.splits.append((node, {n for a in node.args for n in _data_names(a)}, "split", ""))
        elif qual in _CROSS_VALIDATORS:
            given = keyword(node, "X")
            data = given.value if given is not None else (node.args[1] if len(node.args) > 1 else None)
            if data is not None:
                facts.splits.append((node, set(_data_names(data)), qual.rsplit(".", 1)[-1], ""))  # type: ignore[union-attr]

    def _new_scope(self) -> _FunctionFacts:
        return _FunctionFacts()

    def _finish(self, facts: _FunctionFacts) -> None:
        for fit, data_names, result, what in facts.fits:
            for split, split_names, how, held in facts.splits:
                if (split.lineno, split.col_offset) <= (fit.lineno, fit.col_offset):
                    continue
                shared = [n for n in [result, *data_names] if n and n in split_names]
                if not shared:
                    continue
                fitted = f"`{what}.{fit.func.attr}` is fitted on `{shared[0]}`"  # type: ignore[attr-defined]
                if how == "split":
                    self.report(fit, f"{fitted}, which `train_test_split` on line {split.lineno} splits afterwards: "
                                     f"the test split's statistics leak into preprocessing; split first, then fit "
                                     f"on the training split")
                elif how == "index":
                    self.report(fit, f"{fitted}, which line {split.lineno} indexes into `{held}` afterwards: the "
                                     f"held-out rows' statistics leak into preprocessing; split first, then fit "
                                     f"on the training rows")
                else:
                    self.report(fit, f"{fitted}, which `{how}` on line {split.lineno} splits into folds "
                                     f"afterwards: every fold's held-out part leaks into preprocessing; put the "
                                     f"transformer in a `Pipeline` with the estimator, so each fold fits it")
                break



_TUNED_MODULES = ("sklearn.ensemble.", "sklearn.svm.", "sklearn.tree.", "sklearn.neighbors.", "sklearn.cluster.",
                  "sklearn.neural_network.", "sklearn.linear_model.", "sklearn.gaussian_process.",
                  "sklearn.kernel_ridge.", "xgboost.", "lightgbm.")
_NO_TUNING = {"LinearRegression", "GaussianNB", "DummyClassifier", "DummyRegressor"}


@register
class HyperparametersNotSet(SmellRule):
    """Flags an estimator or optimizer built with every tuning parameter left to its default.

    What it does:
        Finds a scikit-learn (or XGBoost/LightGBM) estimator constructed without any
        argument (``RandomForestClassifier()``) and a ``torch.optim`` optimizer given
        only its parameters (``torch.optim.Adam(model.parameters())``).

    Why is this bad?
        Defaults change between releases (scikit-learn changed ``n_estimators``,
        ``solver``, ``gamma`` and ``max_features`` defaults), so an upgrade silently
        changes results; and the experiment does not record what it ran with.

    Example:
        ```python
        clf = RandomForestClassifier()
        ```

    Use instead:
        ```python
        clf = RandomForestClassifier(n_estimators=300, max_depth=None, random_state=0)
        ```
    """

    code = "MLC319"
    name = "hyperparameters-not-set"
    summary = "estimator or optimizer built with every hyperparameter left to its default"
    default = "off"
    requires_text = ("sklearn", "optim", "xgboost", "lightgbm")

    def visit_Call(self, node: ast.Call) -> None:
        """Check a call.

        Args:
            node: The call.
        """
        if type(node.func) not in (ast.Name, ast.Attribute):
            return
        qual = qualified_names(self.ctx).resolve(node.func)
        if not qual:
            return
        last = qual.rsplit(".", 1)[-1]
        if not last[:1].isupper():
            return
        if qual.startswith(_TUNED_MODULES) and last not in _NO_TUNING and not node.args and not node.keywords:
            self.report(node, f"`{last}()` leaves every hyperparameter to the library's default, which "
                              f"changes between releases; set the ones that matter explicitly")
        elif qual.startswith("torch.optim.") and qual.count(".") == 2 and len(node.args) <= 1 \
                and not node.keywords and node.args:
            self.report(node, f"`{last}(params)` relies on the default learning rate and settings; pass "
                              f"`lr=` (and the others you depend on) explicitly")


_THRESHOLD_METRICS = {"accuracy_score", "f1_score", "precision_score", "recall_score", "balanced_accuracy_score",
                      "fbeta_score", "jaccard_score"}
_RANKING_METRICS = {"roc_auc_score", "average_precision_score", "precision_recall_curve", "roc_curve",
                    "log_loss", "brier_score_loss", "det_curve", "top_k_accuracy_score"}


@register
class ThresholdOnlyValidation(ScopedSmellRule):
    """Flags an evaluation that only computes threshold-dependent metrics.

    What it does:
        Finds a function (or script) that computes accuracy, F1, precision or recall
        with ``sklearn.metrics`` but never a threshold-free metric (ROC-AUC, PR-AUC,
        log loss, Brier score).

    Why is this bad?
        Accuracy and F1 at the default 0.5 threshold depend on a cut-off nobody chose:
        they hide a model that ranks well but is badly calibrated, and swing with
        class balance, so model comparisons are unreliable.

    Example:
        ```python
        print(accuracy_score(y_test, clf.predict(X_test)))
        ```

    Use instead:
        ```python
        print(accuracy_score(y_test, clf.predict(X_test)))
        print(roc_auc_score(y_test, clf.predict_proba(X_test)[:, 1]))
        ```
    """

    code = "MLC322"
    name = "threshold-only-validation"
    summary = "only threshold-dependent metrics, no threshold-free one, in an evaluation"
    default = "off"
    requires_text = ("sklearn",)

    def visit_Call(self, node: ast.Call) -> None:
        """Record metric calls.

        Args:
            node: The call.
        """
        qual = qualified_names(self.ctx).resolve(node.func) if type(node.func) in (ast.Name, ast.Attribute) else None
        if not qual or not qual.startswith("sklearn.metrics"):
            return
        last = qual.rsplit(".", 1)[-1]
        scope = self.scopes[-1]
        if last in _RANKING_METRICS:
            scope[1] = True
        elif last in _THRESHOLD_METRICS and scope[0] is None:
            scope[0] = node

    def _new_scope(self) -> list[Any]:
        return [None, False]  # [first threshold metric call, ranking seen]

    def _finish(self, scope: list[Any]) -> None:
        if scope[0] is not None and not scope[1]:
            self.report(scope[0], "only threshold-dependent metrics here: they depend on an unchosen "
                                  "0.5 cut-off; also report a threshold-free one (`roc_auc_score`, "
                                  "`average_precision_score`)")



_SCALING_SENSITIVE = {"SVC", "SVR", "LinearSVC", "LinearSVR", "NuSVC", "NuSVR", "KNeighborsClassifier",
                      "KNeighborsRegressor", "PCA", "KMeans", "LogisticRegression", "MLPClassifier",
                      "MLPRegressor", "Ridge", "Lasso", "ElasticNet", "SGDClassifier", "SGDRegressor"}
_SCALERS = {"StandardScaler", "MinMaxScaler", "RobustScaler", "MaxAbsScaler", "Normalizer", "QuantileTransformer",
            "PowerTransformer", "Pipeline", "make_pipeline", "ColumnTransformer", "make_column_transformer",
            "scale", "minmax_scale", "robust_scale", "normalize"}


@register
class UnscaledFeatures(ScopedSmellRule):
    """Flags a scaling-sensitive estimator fitted where nothing scales the features.

    What it does:
        Finds ``.fit`` of an SVM, k-nearest neighbours, PCA, k-means, penalised linear
        model or MLP in a function (or script) that uses no scaler and no pipeline.

    Why is this bad?
        These estimators measure distances or penalise coefficients: a feature in
        thousands dominates one in fractions, so the model effectively ignores the
        small-scale features and results depend on the units chosen.

    Example:
        ```python
        SVC(C=1.0).fit(X_train, y_train)
        ```

    Use instead:
        ```python
        make_pipeline(StandardScaler(), SVC(C=1.0)).fit(X_train, y_train)
        ```
    """

    code = "MLC323"
    name = "unscaled-features"
    summary = "scaling-sensitive estimator fitted on features no scaler touched"
    default = "off"
    requires_text = ("sklearn",)

    def begin_file(self, ctx: Any) -> None:
        """Start a file.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.sensitive: dict[str, str] = {}

    def _estimator(self, node: ast.AST) -> str | None:
        if type(node) is ast.Call:
            qual = qualified_names(self.ctx).resolve(node.func) or ""  # type: ignore[attr-defined]
            last = qual.rsplit(".", 1)[-1]
            return last if qual.startswith("sklearn.") and last in _SCALING_SENSITIVE else None
        key = dotted_name(node)
        return self.sensitive.get(key) if key else None

    def visit_Assign(self, node: ast.Assign) -> None:
        """Remember names bound to scaling-sensitive estimators.

        Args:
            node: The assignment.
        """
        found = self._estimator(node.value) if type(node.value) is ast.Call else None
        for target in node.targets:
            key = dotted_name(target)
            if key and found:
                self.sensitive[key] = found
            elif key:
                self.sensitive.pop(key, None)

    def visit_Call(self, node: ast.Call) -> None:
        """Record scalers and fits.

        Args:
            node: The call.
        """
        func = node.func
        qual = qualified_names(self.ctx).resolve(func) if type(func) in (ast.Name, ast.Attribute) else None
        if qual and qual.startswith("sklearn.") and qual.rsplit(".", 1)[-1] in _SCALERS:
            self.scopes[-1][1] = True
            return
        if type(func) is ast.Attribute and func.attr in ("fit", "fit_transform", "fit_predict"):
            estimator = self._estimator(func.value)
            if estimator:
                self.scopes[-1][0].append((node, estimator))

    def _new_scope(self) -> list[Any]:
        return [[], False]  # [(fit call, estimator)], scaled

    def _finish(self, scope: list[Any]) -> None:
        if scope[1]:
            return
        for node, estimator in scope[0]:
            self.report(node, f"`{estimator}` is sensitive to feature scale, and nothing here scales the "
                              f"features; fit it in `make_pipeline(StandardScaler(), {estimator}(...))`")

