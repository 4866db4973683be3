"""The catalogue of warnings that mean "your results are probably wrong".

Libraries already warn about several well-known silent-bug situations, and test
suites scroll past those warnings. Under ``pytest --mlcheck`` the warnings guard
(:mod:`pytest_mlcheck.guards.warning_guard`) fails a test that issues one of the warnings
listed in :data:`CATALOGUE`, with the explanation below, or only reports it when the
entry's default is ``report``; any other warning stays a warning.

An entry matches a warning by the *name* of its category (the class or any base class,
so pandas and scikit-learn never need to be imported) and a regular expression searched
in the message. The catalogue is one table on purpose: adding an entry is one line.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Iterable


@dataclasses.dataclass(frozen=True)
class SilentWarning:
    """One catalogued warning.

    Attributes:
        id: A short stable name, usable in ``mlcheck_allow_warning`` (e.g. ``numpy-divide``).
        categories: Names of warning classes that match (a base class name matches too).
        pattern: A regular expression searched in the warning message.
        explanation: Why the results are probably wrong, and what to do instead.
        default: ``fail`` (the warning fails its test under ``mlcheck_guards = fail``) or
            ``report`` (only listed in the summary: real suites provoke it incidentally,
            in tests that never read the value it is about).
    """

    id: str
    categories: tuple[str, ...]
    pattern: str
    explanation: str
    default: str = "fail"

    def matches(self, category: type, message: str) -> bool:
        """Return whether a warning of ``category`` with ``message`` is this entry.

        Args:
            category: The warning class.
            message: The warning's text.

        Returns:
            True when a class in ``category``'s MRO is named in :attr:`categories` and
            :attr:`pattern` is found in ``message``.
        """
        names = {klass.__name__ for klass in getattr(category, "__mro__", (category,))}
        return bool(names.intersection(self.categories)) and _compiled(self.pattern).search(message) is not None


_CACHE: dict[str, re.Pattern] = {}


def _compiled(pattern: str) -> re.Pattern:
    compiled = _CACHE.get(pattern)
    if compiled is None:
        compiled = _CACHE[pattern] = re.compile(pattern, re.DOTALL)
    return compiled


_NUMPY_FP = (
    " numpy's floating-point error state was set to 'warn' for this test by --mlcheck."
)

#: The catalogue: id, category names, message pattern, explanation.
CATALOGUE: tuple[SilentWarning, ...] = tuple(SilentWarning(*row) for row in (
    ("torch-loss-broadcast", ("UserWarning",),
     r"Using a target size \(.*\) that is different to the input size",
     "The loss broadcast prediction and target of different shapes, e.g. (N, 1) against (N,), "
     "into an (N, N) matrix: the loss compares every prediction with every target, so it "
     "trains towards the mean and the value is wrong. Make the shapes equal: "
     "`pred.squeeze(-1)` or `target.unsqueeze(-1)`."),
    ("torch-implicit-softmax-dim", ("UserWarning",),
     r"Implicit dimension choice for (log_)?softm(ax|in) has been deprecated",
     "softmax/log_softmax/softmin was called without `dim=`; torch guessed the dimension "
     "from the number of dimensions, which is the batch dimension for 0-, 1- and 3-d "
     "inputs, so probabilities may be normalised across samples. Pass `dim=-1` (the class "
     "dimension) explicitly."),
    ("torch-scheduler-before-optimizer", ("UserWarning",),
     r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`",
     "The learning-rate scheduler stepped before the optimizer, so the first value of the "
     "schedule is skipped and every epoch trains with the next epoch's learning rate. Call "
     "`optimizer.step()` first, then `scheduler.step()`; if the optimizer step was skipped "
     "(e.g. by a GradScaler on inf gradients), check for that."),
    ("torch-nonleaf-grad", ("UserWarning",),
     r"\.grad attribute of a Tensor that is not a leaf Tensor is being accessed",
     "`.grad` of a non-leaf tensor (the result of an operation, e.g. `w = w0 * 2` or "
     "`x.to(device)`) is always None: code that reads or updates it does nothing. Take the "
     "gradient of the leaf (the parameter itself), or call `.retain_grad()` on the tensor "
     "before backward if you really need it."),
    ("torch-std-dof", ("UserWarning",),
     r"(std|var)(_mean)?\(\): degrees of freedom is <= 0",
     "A standard deviation or variance was taken over a single element (or none): the result "
     "is NaN or Inf, and any normalisation by it is wrong. Check the reduced dimension and "
     "the batch size (a batch of one?)."),
    ("torch-nonfull-backward-hook", ("UserWarning", "FutureWarning"),
     r"non-full backward hook when the forward contains multiple autograd Nodes",
     "A backward hook registered with `register_backward_hook` sees only part of the "
     "module's gradients, so what it records or changes is wrong. Use "
     "`register_full_backward_hook`."),
    ("torch-tracer", ("TracerWarning",),
     r"might cause the trace to be incorrect|not be recorded in the trace|will be treated as a constant",
     "torch.jit.trace recorded a value-dependent branch or a Python value as a constant: "
     "the traced model silently computes something different for other inputs. Script the "
     "function (`torch.jit.script`), or remove the data-dependent control flow."),
    ("numpy-invalid", ("RuntimeWarning",),
     r"invalid value encountered in",
     "numpy produced NaN (e.g. 0/0, inf-inf, sqrt or log of a negative number): every result "
     "computed from it is NaN, and comparisons with NaN are silently False. Find the operation "
     "named in the message and guard its input (clip, add an epsilon, mask)." + _NUMPY_FP),
    ("numpy-divide", ("RuntimeWarning",),
     r"divide by zero encountered in",
     "numpy divided by zero or took log(0), producing Inf: means, losses and normalisations "
     "computed from it are Inf or NaN. Guard the denominator (e.g. `np.maximum(d, eps)`) or "
     "clip before the log." + _NUMPY_FP),
    ("numpy-overflow", ("RuntimeWarning",),
     r"overflow encountered in",
     "A numpy operation overflowed its dtype (Inf for floats, e.g. `np.exp(1000)`; wrapped "
     "values for some integer casts): use a numerically stable form (subtract the max "
     "before exp, logsumexp, log1p) or a wider dtype." + _NUMPY_FP),
    ("numpy-empty-mean", ("RuntimeWarning",),
     r"Mean of empty slice",
     "A mean was taken over an empty array or slice, which is NaN: an empty batch, split, "
     "class or mask. Check the selection that produced the empty array."),
    ("numpy-dof", ("RuntimeWarning",),
     r"Degrees of freedom <= 0 for slice",
     "A variance or standard deviation was taken over too few elements (one, with ddof=1): "
     "the result is NaN or Inf. Check the axis and the number of samples."),
    ("complex-cast", ("ComplexWarning", "UserWarning"),
     r"Casting complex values to real discards the imaginary part",
     "A complex array or tensor was cast to a real dtype, silently dropping the imaginary "
     "part (e.g. after an FFT). Take `.real`, `abs()` or `angle()` explicitly, whichever you "
     "meant."),
    ("pandas-setting-with-copy", ("SettingWithCopyWarning",),
     r"",
     "pandas assigned into a copy of a slice, so the DataFrame you read later may not contain "
     "the change (features or labels silently not updated). Assign with a single `.loc[rows, "
     "col] = value` on the original frame, or take an explicit `.copy()` of the slice first."),
    ("pandas-chained-assignment", ("ChainedAssignmentError", "FutureWarning", "Warning"),
     r"through chained assignment",
     "pandas chained assignment (`df['a'][mask] = v` or `df['a'].fillna(0, inplace=True)`) "
     "updates a temporary copy, not the DataFrame: under copy-on-write (pandas 3) it never "
     "works. Use `df.loc[mask, 'a'] = v` or `df['a'] = df['a'].fillna(0)`."),
    ("sklearn-data-conversion", ("DataConversionWarning",),
     r"",
     "scikit-learn converted the data: most often a column-vector y of shape (n, 1) where a "
     "1-d array was expected (it was raveled, but the same shape bug elsewhere broadcasts), "
     "or object/bool features cast to float. Pass `y.ravel()` and the dtype you mean."),
    ("sklearn-undefined-metric", ("UndefinedMetricWarning",),
     r"",
     "A scikit-learn metric is undefined here (a class with no predicted or no true samples, "
     "one class only for ROC AUC, fewer than two samples for R^2) and was silently set to 0 "
     "or NaN, which then drags averages down. Check the evaluation split's classes, or set "
     "`zero_division=` explicitly if this is expected.",
     # skorch's test_net_overrides_caching scores F1 on tiny random batches it never reads:
     # whether a class goes unpredicted depends on the seed. Incidental far more often than not.
     "report"),
    ("sklearn-feature-names", ("UserWarning",),
     r"X (does not have valid|has) feature names, but \w+ was fitted (with|without) feature names",
     "The estimator was fitted on a DataFrame with named columns and is now given an array "
     "(or the reverse): scikit-learn cannot check that the columns are in the same order, so "
     "a reordered feature matrix gives silently wrong predictions. Predict on a DataFrame with "
     "the fitted columns (`X[model.feature_names_in_]`)."),
))


def find(category: type, message: str) -> SilentWarning | None:
    """Return the catalogue entry a warning matches, or ``None`` for an unknown warning.

    Args:
        category: The warning class.
        message: The warning's text.

    Returns:
        The first matching :class:`SilentWarning`, or ``None``.
    """
    for entry in CATALOGUE:
        if entry.matches(category, message):
            return entry
    return None


def compile_allowed(patterns: Iterable[str], where: str) -> list[re.Pattern]:
    """Compile allow patterns, failing clearly on an invalid regular expression.

    Args:
        patterns: Regular expressions (or catalogue ids) from a marker or the ini option.
        where: Where the patterns come from, for the error message.

    Returns:
        The compiled patterns.

    Raises:
        TypeError: When a pattern is not a string.
        ValueError: When a pattern is not a valid regular expression.
    """
    compiled = []
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise TypeError(f"{where}: a pattern must be a string, got {type(pattern).__name__} "
                            f"({pattern!r})")
        try:
            compiled.append(re.compile(pattern, re.DOTALL))
        except re.error as exc:
            raise ValueError(f"{where}: {pattern!r} is not a valid regular expression ({exc}); "
                             "escape special characters such as ( ) [ ] . with a backslash, "
                             "or give the catalogue id (e.g. 'numpy-divide')") from exc
    return compiled


def is_allowed(entry: SilentWarning, message: str, allowed: Iterable[re.Pattern]) -> bool:
    """Return whether an allow pattern covers this catalogued warning.

    Args:
        entry: The catalogue entry the warning matched.
        message: The warning's text.
        allowed: Compiled allow patterns; each matches the catalogue id exactly or is
            searched in the message.

    Returns:
        True when the warning is allowed.
    """
    return any(p.pattern == entry.id or p.search(message) is not None for p in allowed)
