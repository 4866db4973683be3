"""Data leakage: rows and groups shared across splits, and features that encode the label.

Plain functions, usable without pytest: :func:`assert_no_leakage`,
:func:`assert_no_label_leakage` and :func:`assert_no_duplicates`. The fixture class
:class:`DataLeakage` (fixture ``data_leakage``) calls them; every call adds a record of
kind ``leakage`` to the session report.

How rows are compared. Each split becomes a matrix of canonical 64-bit words per row:
numeric arrays keep their bytes (after promotion to a common dtype across the splits),
floats are canonicalised first (``-0.0`` becomes ``0.0``, every NaN becomes the same
quiet NaN, so **NaN equals NaN**), and non-numeric columns (strings, bytes, Python
objects in DataFrames) are factorised into integer codes shared by all splits, with
every missing value (``None``, NaN, ``pd.NA``, ``NaT``) mapped to one code. Rows are
then hashed with a vectorised multiply-xorshift mix over their words, candidates are
found by sorting and binary search on the hashes, and every candidate pair is confirmed
by comparing its canonical words exactly: a hash collision can cost time, never a false
report.

Inputs accepted: numpy arrays (1-D: one value per row; N-D: trailing axes are the
row's features), torch tensors, pandas DataFrames and Series (pandas is never imported
here; a DataFrame can only exist if the caller imported pandas), and lists or tuples of
rows, of str or of bytes.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Sequence

import numpy as np

from . import report, validation
from .arrays import is_tensor, to_numpy

#: How many index pairs, groups or features a failure message lists.
SHOW = 5

# Rows hashed per chunk are sized to about this many bytes, so that hashing a large
# split stays in cache and never materialises a canonical copy of the whole split.
_CHUNK_BYTES = 1 << 22
_SEED = np.uint64(0x9E3779B97F4A7C15)
_MUL = np.uint64(0xFF51AFD7ED558CCD)
_MUL2 = np.uint64(0xC4CEB9FE1A85EC53)
_NUMERIC_KINDS = "biufc"
_MISSING_CODE = -1


# ---- input normalisation ---------------------------------------------------------


def _pandas():
    return sys.modules.get("pandas")


def _is_dataframe(x: Any) -> bool:
    pd = _pandas()
    return pd is not None and isinstance(x, pd.DataFrame)


def _is_series(x: Any) -> bool:
    pd = _pandas()
    return pd is not None and isinstance(x, pd.Series)


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, (float, np.floating)):
        return v != v
    # pd.NA and pd.NaT, recognised without importing pandas.
    return type(v).__name__ in ("NAType", "NaTType")


class _Split:
    """One split as rows: either a 2-D numeric array or a list of 1-D columns."""

    def __init__(self, name: str, n: int, *, array: np.ndarray | None = None,
                 columns: list[np.ndarray] | None = None, names: list[Any] | None = None,
                 labels: Sequence[Any] | None = None) -> None:
        self.name = name
        self.n = n
        self.array = array
        self.columns = columns
        self.names = names
        self.labels = labels

    @property
    def ncols(self) -> int:
        if self.array is not None:
            return int(self.array.shape[1])
        return len(self.columns or ())

    def column(self, j: int) -> np.ndarray:
        if self.array is not None:
            return self.array[:, j]
        assert self.columns is not None
        return self.columns[j]

    def column_name(self, j: int) -> str:
        if self.names is not None:
            name = self.names[j]
            return name if isinstance(name, str) else f"column {_plain(name)!r}"
        return f"column {j}"

    def as_columns(self) -> list[np.ndarray]:
        return [self.column(j) for j in range(self.ncols)]

    def drop(self, j: int) -> "_Split":
        names = None if self.names is None else self.names[:j] + self.names[j + 1:]
        if self.array is not None:
            arr = np.delete(self.array, j, axis=1)
            return _Split(self.name, self.n, array=arr, names=names, labels=self.labels)
        cols = list(self.columns or ())
        del cols[j]
        return _Split(self.name, self.n, columns=cols, names=names, labels=self.labels)

    def describe_row(self, i: int) -> str:
        if self.labels is not None:
            return f"{i} (index {_plain(self.labels[i])!r})"
        return str(i)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _default_index(index: Any, n: int) -> bool:
    try:
        return type(index).__name__ == "RangeIndex" and index.start == 0 and index.step == 1
    except AttributeError:  # pragma: no cover - pandas internals
        return False


def _to_split(name: str, x: Any) -> _Split:
    """Normalise one split, or raise a clear error naming it."""
    if _is_dataframe(x):
        n, k = x.shape
        columns = [x.iloc[:, j].to_numpy() for j in range(k)]
        labels = None if _default_index(x.index, n) else x.index
        split = _Split(name, n, columns=columns, names=list(x.columns), labels=labels)
    elif _is_series(x):
        labels = None if _default_index(x.index, len(x)) else x.index
        names = [x.name] if x.name is not None else None
        split = _Split(name, len(x), columns=[x.to_numpy()], names=names, labels=labels)
    elif is_tensor(x) or isinstance(x, np.ndarray):
        split = _array_split(name, to_numpy(x))
    elif isinstance(x, (list, tuple)):
        if len(x) and all(isinstance(v, (str, bytes)) for v in x):
            col = np.empty(len(x), dtype=object)
            col[:] = list(x)
            split = _Split(name, len(x), columns=[col])
        else:
            try:
                arr = np.asarray(x)
            except ValueError as exc:
                raise ValueError(
                    f"{name} is a ragged list: its rows have different lengths or shapes "
                    f"({exc}). Pass equal-length rows, a 2-D array or a DataFrame."
                ) from None
            if arr.dtype == object and arr.ndim == 1 and any(
                    isinstance(v, (list, tuple, np.ndarray)) for v in arr):
                raise ValueError(f"{name} is a ragged list: its rows have different lengths. "
                                 "Pass equal-length rows, a 2-D array or a DataFrame.")
            if arr.dtype.kind in "US":
                # Keep each value's Python type: ("a", 1) must not become ("a", "1").
                arr = np.asarray(x, dtype=object)
            split = _array_split(name, arr)
    else:
        raise TypeError(
            f"{name} must be a numpy array, a torch tensor, a pandas DataFrame or Series, or "
            f"a list of rows, strings or bytes; got {type(x).__name__}"
        )
    if split.n == 0:
        raise ValueError(_EMPTY.format(name=name))
    if split.ncols == 0:
        raise ValueError(f"{name} has rows with no values (shape {split.n} x 0).")
    return split


_EMPTY = ("{name} is empty (0 rows): there is nothing to compare. An empty split usually "
          "means a filter or split step upstream went wrong.")


def _array_split(name: str, arr: np.ndarray) -> _Split:
    if arr.ndim == 0:
        raise TypeError(f"{name} is a scalar (0-d array); pass one row per sample")
    n = int(arr.shape[0])
    if n == 0:
        raise ValueError(_EMPTY.format(name=name))
    arr2 = arr.reshape(n, -1) if arr.ndim != 2 else arr
    kind = arr.dtype.kind
    if kind == "V":
        raise TypeError(f"{name} is a structured numpy array; pass a DataFrame or a plain "
                        "2-D array instead")
    if kind in _NUMERIC_KINDS or kind in "mM":
        return _Split(name, n, array=arr2)
    # Strings, bytes and object arrays are compared column by column, by value.
    return _Split(name, n, columns=[arr2[:, j] for j in range(arr2.shape[1])])


# ---- canonical row words ---------------------------------------------------------


def _canonical_float(c: np.ndarray, decimals: int | None) -> np.ndarray:
    """Round (optionally), turn -0.0 into 0.0 and every NaN into one bit pattern, in place."""
    if decimals is not None:
        np.round(c, decimals, out=c)
    c += 0  # IEEE: -0.0 + 0 == +0.0
    nan = np.isnan(c)
    if nan.any():
        c[nan] = np.nan
    return c


def _as_words(b: np.ndarray) -> np.ndarray:
    """View a C-contiguous 2-D array's rows as uint64 words, zero-padding each row."""
    m = b.shape[0]
    raw = b.view(np.uint8).reshape(m, -1)
    width = raw.shape[1]
    if width % 8:
        padded = np.zeros((m, width + 8 - width % 8), dtype=np.uint8)
        padded[:, :width] = raw
        raw = padded
    return raw.view(np.uint64)


class _ArrayCodec:
    """Canonical words of numeric arrays, promoted to one dtype across splits."""

    def __init__(self, splits: list[_Split], decimals: int | None) -> None:
        dtypes = [s.array.dtype for s in splits]  # type: ignore[union-attr]
        try:
            self.dtype = np.result_type(*dtypes)
        except TypeError:
            raise ValueError(
                "the splits hold incompatible dtypes: "
                + ", ".join(f"{s.name} is {d}" for s, d in zip(splits, dtypes))
                + "; convert them to one type first"
            ) from None
        self.decimals = decimals

    def words(self, split: _Split, rows: Any) -> np.ndarray:
        block = split.array[rows]  # type: ignore[index]
        kind = self.dtype.kind
        if kind in "fc":
            c = np.array(block, dtype=self.dtype, order="C", copy=True)
            if kind == "c":
                c = c.view(np.dtype(f"f{self.dtype.itemsize // 2}"))
            _canonical_float(c, self.decimals)
        else:
            c = np.ascontiguousarray(block, dtype=self.dtype)
        return _as_words(c.reshape(c.shape[0], -1))


class _TableCodec:
    """Canonical words of tables: one 64-bit word per column, computed for all splits."""

    def __init__(self, splits: list[_Split], decimals: int | None) -> None:
        self.mats: dict[str, np.ndarray] = {s.name: np.empty((s.n, s.ncols), np.uint64)
                                            for s in splits}
        for j in range(splits[0].ncols):
            cols = [s.column(j) for s in splits]
            for s, words in zip(splits, _column_words(cols, decimals, splits, j)):
                self.mats[s.name][:, j] = words

    def words(self, split: _Split, rows: Any) -> np.ndarray:
        return self.mats[split.name][rows]


def _column_words(cols: list[np.ndarray], decimals: int | None, splits: list[_Split],
                  j: int) -> list[np.ndarray]:
    kinds = {c.dtype.kind for c in cols}
    if kinds <= set("biu"):
        common = np.result_type(*[c.dtype for c in cols])
        if common.kind in "iu" or common.kind == "b":
            if common == np.uint64:
                return [c.astype(np.uint64) for c in cols]
            return [c.astype(np.int64).view(np.uint64) for c in cols]
    if kinds <= set("biuf"):
        return [_canonical_float(c.astype(np.float64), decimals).view(np.uint64) for c in cols]
    if len(kinds) == 1 and kinds <= set("mM"):
        common = np.result_type(*[c.dtype for c in cols])
        return [c.astype(common).view(np.int64).view(np.uint64) for c in cols]
    return _factorise(cols, decimals, splits, j)


def _factorise(cols: list[np.ndarray], decimals: int | None, splits: list[_Split],
               j: int) -> list[np.ndarray]:
    """Integer codes shared by all splits; values compare by Python equality."""
    table: dict[Any, int] = {}
    out = []
    for s, col in zip(splits, cols):
        codes = np.empty(len(col), dtype=np.int64)
        values = col.tolist()
        for i, v in enumerate(values):
            if _is_missing(v):
                codes[i] = _MISSING_CODE
                continue
            if decimals is not None and isinstance(v, float):
                v = round(v, decimals) + 0.0
            try:
                code = table.get(v)
            except TypeError:
                raise TypeError(
                    f"{s.name}, {s.column_name(j)}, row {i} holds an unhashable "
                    f"{type(v).__name__}; leakage checks compare numbers, strings, bytes and "
                    "other hashable values. Flatten nested arrays into columns first."
                ) from None
            if code is None:
                code = table[v] = len(table)
            codes[i] = code
        out.append(codes.view(np.uint64))
    return out


def _codec(splits: list[_Split], decimals: int | None):
    if all(s.array is not None for s in splits):
        return _ArrayCodec(splits, decimals)
    return _TableCodec(splits, decimals)


def _mix(words: np.ndarray) -> np.ndarray:
    """64-bit hash of each row of a uint64 matrix (fast, not cryptographic)."""
    m = words.shape[0]
    h = np.full(m, _SEED, dtype=np.uint64)
    tmp = np.empty(m, dtype=np.uint64)
    cols = np.ascontiguousarray(words.T)
    for j in range(cols.shape[0]):
        np.bitwise_xor(h, cols[j], out=h)
        np.multiply(h, _MUL, out=h)
        np.right_shift(h, np.uint64(29), out=tmp)
        np.bitwise_xor(h, tmp, out=h)
    np.multiply(h, _MUL2, out=h)
    np.right_shift(h, np.uint64(32), out=tmp)
    np.bitwise_xor(h, tmp, out=h)
    return h


def _row_bytes(split: _Split, codec: Any) -> int:
    return max(8, int(codec.words(split, slice(0, 1)).nbytes))


def _hash_split(split: _Split, codec: Any) -> np.ndarray:
    step = max(1, _CHUNK_BYTES // _row_bytes(split, codec))
    out = np.empty(split.n, dtype=np.uint64)
    for start in range(0, split.n, step):
        stop = min(split.n, start + step)
        out[start:stop] = _mix(codec.words(split, slice(start, stop)))
    return out


def _rows_equal(codec: Any, a: _Split, ia: np.ndarray, b: _Split, ib: np.ndarray) -> np.ndarray:
    """Exact comparison of rows ``a[ia[k]]`` and ``b[ib[k]]``, in bounded-memory chunks."""
    out = np.zeros(len(ia), dtype=bool)
    step = max(1, _CHUNK_BYTES // _row_bytes(a, codec))
    for start in range(0, len(ia), step):
        sl = slice(start, start + step)
        out[sl] = np.all(codec.words(a, ia[sl]) == codec.words(b, ib[sl]), axis=1)
    return out


def _cross_duplicates(codec: Any, a: _Split, ha: np.ndarray, b: _Split,
                      hb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (rows of a, rows of b): for each row of b equal to some row of a, one match."""
    order = np.argsort(ha, kind="stable")
    sorted_h = ha[order]
    lo = np.searchsorted(sorted_h, hb, side="left")
    hi = np.searchsorted(sorted_h, hb, side="right")
    cand = np.flatnonzero(hi > lo)
    first = order[lo[cand]]
    equal = _rows_equal(codec, a, first, b, cand)
    ia, ib = list(first[equal]), list(cand[equal])
    # A candidate whose first hash-mate differs is a collision, unless another row in
    # the same hash bucket matches exactly: check those (rare) buckets one by one.
    for j in cand[~equal & (hi[cand] - lo[cand] > 1)]:
        mates = order[lo[j] + 1:hi[j]]
        hit = _rows_equal(codec, a, mates, b, np.full(len(mates), j))
        if hit.any():
            ia.append(mates[np.argmax(hit)])
            ib.append(j)
    ia_arr = np.asarray(ia, dtype=np.int64)
    ib_arr = np.asarray(ib, dtype=np.int64)
    sort = np.argsort(ib_arr, kind="stable")
    return ia_arr[sort], ib_arr[sort]


# ---- splits, keys and checks -----------------------------------------------------


def _verdict(check: str, values: dict[str, Any], message: str) -> dict[str, Any]:
    """Record a leakage check: ``FAILED`` (and raise) with a message, else ``ok``."""
    if message:
        report.emit("leakage", check, "FAILED", values, message)
        raise AssertionError(message)
    report.emit("leakage", check, "ok", values)
    return values


def _check_decimals(decimals: Any) -> int | None:
    if decimals is None:
        return None
    return validation.integer(decimals, "decimals", hint="or None to compare exact values")


def _align(splits: list[_Split]) -> list[_Split]:
    """Check column counts; align DataFrame columns by name when every split has names."""
    first = splits[0]
    if all(s.names is not None and s.columns is not None for s in splits):
        out = [first]
        base = list(first.names or ())
        for s in splits[1:]:
            names = list(s.names or ())
            if names == base:
                out.append(s)
                continue
            missing = [c for c in base if c not in names]
            extra = [c for c in names if c not in base]
            if missing or extra or len(names) != len(base):
                raise ValueError(
                    f"{s.name} and {first.name} have different columns: {s.name} lacks "
                    f"{missing} and has extra {extra}. Select the same feature columns in "
                    "every split."
                )
            pos = [names.index(c) for c in base]
            cols = [s.column(p) for p in pos]
            out.append(_Split(s.name, s.n, columns=cols, names=base, labels=s.labels))
        return out
    for s in splits[1:]:
        if s.ncols != first.ncols:
            raise ValueError(
                f"{s.name} has {s.ncols} columns per row but {first.name} has {first.ncols}: "
                "rows of different widths cannot be compared. Select the same features in "
                "every split."
            )
    return splits


def _key_column(split: _Split, raw: Any, key: Any) -> int:
    if _is_dataframe(raw):
        cols = list(raw.columns)
        if key in cols:
            return cols.index(key)
        if isinstance(key, int) and 0 <= key < len(cols):
            return key
        raise ValueError(f"key {key!r} is not a column of {split.name}; its columns are {cols}")
    if isinstance(key, str):
        raise ValueError(
            f"key {key!r} names a column, but {split.name} is a {type(raw).__name__} without "
            "column names; pass an int column index, a DataFrame, or per-split id arrays "
            "(key=(train_ids, test_ids))"
        )
    if not 0 <= key < split.ncols or split.ncols < 2:
        raise ValueError(
            f"key column {key} does not exist in {split.name}, which has {split.ncols} "
            "column(s) (the key must be one column among at least two)"
        )
    return key


def _split_keys(splits: list[_Split], raws: list[Any],
                key: Any) -> tuple[list[_Split], list[_Split] | None, str]:
    """Separate the group ids from the rows. Returns (row splits, id splits, key label)."""
    if key is None:
        return splits, None, ""
    if isinstance(key, (str, int, np.integer)) and not isinstance(key, bool):
        key = key if isinstance(key, str) else int(key)
        rows, ids = [], []
        for s, raw in zip(splits, raws):
            j = _key_column(s, raw, key)
            ids.append(_Split(s.name, s.n, columns=[s.as_columns()[j]], labels=s.labels))
            rows.append(s.drop(j))
        return rows, ids, f"column {key!r}"
    names = [s.name for s in splits]
    if isinstance(key, dict):
        if set(key) != set(names):
            raise ValueError(f"key as a dict must map exactly the splits {names} to id arrays; "
                             f"got keys {sorted(map(str, key))}")
        per_split = [key[n] for n in names]
    elif isinstance(key, (list, tuple)) and len(key) == len(splits) and all(
            isinstance(k, (list, tuple, np.ndarray)) or is_tensor(k) or _is_series(k) for k in key):
        per_split = list(key)
    else:
        raise TypeError(
            "key must be a column name (DataFrames), an int column index, a tuple of per-row "
            f"id arrays in the order {tuple(names)}, or a dict {{split: ids}}; got "
            f"{type(key).__name__}"
        )
    ids = []
    for s, k in zip(splits, per_split):
        idsplit = _to_split(f"key for {s.name}", k)
        if idsplit.n != s.n:
            raise ValueError(f"key for {s.name} has {idsplit.n} ids but {s.name} has {s.n} rows")
        ids.append(_Split(s.name, s.n, array=idsplit.array, columns=idsplit.columns,
                          labels=s.labels))
    return splits, ids, "the given ids"


def _pairs(splits: list[_Split]) -> list[tuple[_Split, _Split]]:
    by = {s.name: s for s in splits}
    out = [(by["train"], by["test"])]
    if "val" in by:
        out += [(by["train"], by["val"]), (by["val"], by["test"])]
    return out


def _row_leakage(splits: list[_Split], decimals: int | None) -> tuple[dict[str, Any], list[str]]:
    codec = _codec(splits, decimals)
    hashes = {s.name: _hash_split(s, codec) for s in splits}
    values: dict[str, Any] = {}
    lines: list[str] = []
    for a, b in _pairs(splits):
        ia, ib = _cross_duplicates(codec, a, hashes[a.name], b, hashes[b.name])
        pair = f"{a.name}/{b.name}"
        shown = [[int(i), int(j)] for i, j in zip(ia[:SHOW], ib[:SHOW])]
        values[pair] = {"rows": int(len(ib)), "of": b.n, "first_pairs": shown}
        if len(ib):
            lines.append(
                f"  {pair}: {len(ib)} of {b.n} {b.name} rows ({100.0 * len(ib) / b.n:.3g}%) "
                f"are exact copies of {a.name} rows"
                + (f" (after rounding to {decimals} decimals)" if decimals is not None else "")
                + f"; first ({a.name} row, {b.name} row) pairs: "
                + ", ".join(f"({a.describe_row(int(i))}, {b.describe_row(int(j))})"
                            for i, j in zip(ia[:SHOW], ib[:SHOW]))
            )
    return values, lines


def _group_leakage(ids: list[_Split], label: str) -> tuple[dict[str, Any], list[str]]:
    _align(ids)
    codec = _TableCodec(ids, None) if any(s.array is None for s in ids) else _ArrayCodec(ids, None)
    codes = {s.name: _key_codes(codec, s) for s in ids}
    values: dict[str, Any] = {}
    lines: list[str] = []
    for a, b in _pairs(ids):
        shared = np.intersect1d(codes[a.name], codes[b.name])
        rows_a = int(np.isin(codes[a.name], shared).sum())
        rows_b = int(np.isin(codes[b.name], shared).sum())
        pair = f"{a.name}/{b.name}"
        first_rows = [int(np.flatnonzero(codes[a.name] == g)[0]) for g in shared[:SHOW]]
        examples = [_id_value(a, r) for r in first_rows]
        values[pair] = {"groups": int(len(shared)), "rows": [rows_a, rows_b],
                        "first_groups": examples}
        if len(shared):
            lines.append(
                f"  {pair}: {len(shared)} group(s) by {label} appear in both "
                f"({rows_a} {a.name} rows, {rows_b} {b.name} rows); first: "
                + ", ".join(repr(e) for e in examples)
            )
    return values, lines


def _key_codes(codec: Any, s: _Split) -> np.ndarray:
    words = codec.words(s, slice(None))
    if words.shape[1] == 1:
        return words[:, 0]
    # Multi-word ids (e.g. a 2-column id array): compare whole rows exactly.
    void = np.ascontiguousarray(words).view(np.dtype((np.void, words.shape[1] * 8))).ravel()
    return void


def _id_value(s: _Split, row: int) -> Any:
    v = s.column(0)[row] if s.ncols == 1 else np.asarray([c[row] for c in s.as_columns()])
    return v.tolist() if isinstance(v, np.ndarray) else _plain(v)


_ROW_CAUSES = (
    "Likely causes: the test or validation split was cut from data that was not "
    "de-duplicated (augmented copies, repeated records, the same sample exported twice), "
    "the split was made before concatenating sources that overlap, or the test set was "
    "taken from the head of the training data (e.g. X[:n] reused for both)."
)
_GROUP_CAUSES = (
    "Likely causes: rows were split at random although several rows belong to one "
    "patient, user, session or document, so the model is tested on groups it trained on. "
    "Split by group instead (e.g. sklearn GroupShuffleSplit / GroupKFold on the id)."
)


def assert_no_leakage(train: Any, test: Any, *, val: Any = None, key: Any = None,
                      decimals: int | None = None) -> dict[str, Any]:
    """Fail when a row, or a group of rows, appears in more than one split.

    Every pair of splits is checked separately (train/test, and with ``val``
    train/val and val/test). Rows are compared exactly after canonicalisation: NaN
    equals NaN, ``-0.0`` equals ``0.0``, and with ``decimals`` floats are rounded first
    to catch near-duplicates. Hash collisions never cause a report: each candidate pair
    is confirmed value by value.

    Args:
        train: The training split: an array, tensor, DataFrame, Series or list of rows.
        test: The test split, in the same form and with the same columns.
        val: An optional validation split.
        key: A group id: a DataFrame column name or int column index (that column is
            then left out of the row comparison), or per-row id arrays, one per split,
            as a tuple ``(train_ids, test_ids[, val_ids])`` or a dict keyed by
            ``"train"``, ``"test"``, ``"val"``. Fails when a group id is in two splits.
        decimals: Round floats to this many decimals before comparing rows.

    Returns:
        The record's values: per pair of splits, the number of leaked rows (and groups).

    Raises:
        AssertionError: Rows or groups are shared between splits.
        ValueError: A split is empty or ragged, the splits' columns differ, or ``key``
            names a column that does not exist.
        TypeError: An input type is not supported.
    """
    decimals = _check_decimals(decimals)
    raws = [("train", train), ("test", test)] + ([("val", val)] if val is not None else [])
    splits = [_to_split(n, x) for n, x in raws]
    rows, ids, key_label = _split_keys(splits, [x for _, x in raws], key)
    rows = _align(rows)
    values: dict[str, Any] = {"splits": {s.name: s.n for s in rows}}
    messages: list[str] = []
    if rows[0].ncols:
        values["row_overlap"], lines = _row_leakage(rows, decimals)
        if lines:
            messages.append("rows shared between splits:\n" + "\n".join(lines) + "\n" + _ROW_CAUSES
                            + " Drop the copies from the later split, or de-duplicate before "
                            "splitting" + (" (decimals=... treats near-equal floats as equal)"
                                           if decimals is None else "") + ".")
    if ids is not None:
        values["group_overlap"], lines = _group_leakage(ids, key_label)
        if lines:
            messages.append("groups shared between splits:\n" + "\n".join(lines) + "\n"
                            + _GROUP_CAUSES)
    if messages:
        message = "data leakage: " + "\n".join(messages)
        return _verdict("split_overlap", values, message)
    return _verdict("split_overlap", values, "")


# ---- duplicates within one split -------------------------------------------------


def _duplicate_labels(split: _Split, codec: Any) -> np.ndarray | None:
    """Label each row that has an exact duplicate with its group's first row (else -1).

    Rows with equal hashes are compared with the first row of their hash bucket; the
    rare rows that differ from it (hash collisions) are grouped exactly among themselves.
    Returns ``None`` when no two rows share a hash.
    """
    h = _hash_split(split, codec)
    order = np.argsort(h, kind="stable")
    hs = h[order]
    same = hs[1:] == hs[:-1]
    if not same.any():
        return None
    starts = np.flatnonzero(np.r_[True, ~same])
    bucket_first = order[np.repeat(starts, np.diff(np.r_[starts, len(order)]))]
    multi = np.flatnonzero(order != bucket_first)  # sorted positions with an earlier mate
    rows, firsts = order[multi], bucket_first[multi]
    equal = _rows_equal(codec, split, rows, split, firsts)
    labels = np.full(split.n, -1, dtype=np.int64)
    labels[rows[equal]] = firsts[equal]
    labels[np.unique(firsts[equal])] = np.unique(firsts[equal])
    stray = rows[~equal]
    if len(stray):
        words = np.ascontiguousarray(codec.words(split, stray))
        key = np.concatenate([h[stray][:, None], words], axis=1)
        void = np.ascontiguousarray(key).view(np.dtype((np.void, key.shape[1] * 8))).ravel()
        _, inverse, counts = np.unique(void, return_inverse=True, return_counts=True)
        inverse = inverse.ravel()
        first = np.full(len(counts), split.n, dtype=np.int64)
        np.minimum.at(first, inverse, stray)
        keep = counts[inverse] > 1
        labels[stray[keep]] = first[inverse[keep]]
    return labels


def assert_no_duplicates(x: Any, *, decimals: int | None = None) -> dict[str, Any]:
    """Fail when a split holds duplicate rows, reporting how many and where.

    Rows are compared as in :func:`assert_no_leakage` (NaN equals NaN, optional
    rounding with ``decimals``).

    Args:
        x: One split: an array, tensor, DataFrame, Series or list of rows.
        decimals: Round floats to this many decimals before comparing rows.

    Returns:
        The record's values: row count, duplicated rows and duplicate groups.

    Raises:
        AssertionError: Some rows are duplicates of other rows.
        ValueError: ``x`` is empty or ragged.
        TypeError: The input type is not supported.
    """
    decimals = _check_decimals(decimals)
    split = _to_split("x", x)
    codec = _codec([split], decimals)
    labels = _duplicate_labels(split, codec)
    groups: list[np.ndarray] = []  # the largest groups, for the message
    extra = n_groups = 0
    if labels is not None:
        rows = np.flatnonzero(labels >= 0)
        group_of = labels[rows]
        uniq, inverse, counts = np.unique(group_of, return_inverse=True, return_counts=True)
        dup = np.flatnonzero(counts > 1)
        extra, n_groups = int((counts[dup] - 1).sum()), len(dup)
        # uniq holds each group's first row, so ties in size list the earliest group first
        for g in dup[np.lexsort((uniq[dup], -counts[dup]))][:SHOW]:
            groups.append(rows[inverse.ravel() == g])
    values = {"rows": split.n, "duplicate_rows": extra, "groups": n_groups,
              "largest": [[int(i) for i in g[:SHOW]] for g in groups]}
    if groups:
        shown = "\n".join(
            f"  {len(g)} copies: rows " + ", ".join(split.describe_row(int(i)) for i in g[:SHOW])
            + (", ..." if len(g) > SHOW else "") for g in groups)
        message = (
            f"duplicate rows: {extra} of {split.n} rows ({100.0 * extra / split.n:.3g}%) repeat "
            f"an earlier row, in {n_groups} group(s) of identical rows"
            + (f" (after rounding to {decimals} decimals)" if decimals is not None else "")
            + f"; largest groups:\n{shown}\n"
            "Likely causes: records exported or concatenated twice, augmentation applied "
            "before splitting, or a join that fanned rows out. Duplicates inflate the weight "
            "of those rows and, if the split is later re-split, leak across splits. "
            "De-duplicate (e.g. np.unique(x, axis=0) or DataFrame.drop_duplicates()) or "
            "confirm the repetition is real."
        )
        return _verdict("duplicates", values, message)
    return _verdict("duplicates", values, "")


# ---- features that encode the label ----------------------------------------------


def _label_vector(y: Any, n: int) -> np.ndarray:
    if _is_series(y):
        arr = y.to_numpy()
    elif is_tensor(y) or isinstance(y, np.ndarray):
        arr = to_numpy(y)
    elif isinstance(y, (list, tuple)):
        arr = np.empty(len(y), dtype=object)
        arr[:] = list(y)
        if all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in y):
            arr = np.asarray(y)
    else:
        raise TypeError(f"y must be an array, tensor, Series or list of labels; got "
                        f"{type(y).__name__}")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"y must hold one label per row (1-D), got shape {arr.shape}; for "
                         "one-hot labels pass y.argmax(1)")
    if len(arr) != n:
        raise ValueError(f"y has {len(arr)} labels but X has {n} rows")
    return arr


def _codes(col: np.ndarray, what: str) -> tuple[np.ndarray, bool]:
    """Integer codes of a column's values (equal values, equal codes; NaN one code).

    Returns the codes and whether code order follows value order.
    """
    kind = col.dtype.kind
    if kind in "biufmM":
        c = col.astype(np.float64) if kind == "f" else col
        _, inv = np.unique(c, return_inverse=True)
        return inv.ravel().astype(np.int64), True
    if kind == "c":
        _, inv = np.unique(col, return_inverse=True)
        return inv.ravel().astype(np.int64), True
    values = col.tolist()
    table: dict[Any, int] = {}
    codes = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if _is_missing(v):
            v = _MissingValue
        try:
            code = table.get(v)
        except TypeError:
            raise TypeError(f"{what}, row {i} holds an unhashable {type(v).__name__}") from None
        if code is None:
            code = table[v] = len(table)
        codes[i] = code
    keys = list(table)
    try:
        ranked = sorted(range(len(keys)), key=lambda k: (keys[k] is _MissingValue, keys[k]))
    except TypeError:
        return codes, False  # mixed types have no order: first appearance
    remap = np.empty(len(keys), dtype=np.int64)
    remap[np.asarray(ranked, dtype=np.int64)] = np.arange(len(keys))
    return remap[codes], True


class _MissingValue:
    """Stands for every missing value when values are coded."""


def _discrete_score(v: np.ndarray, lab: np.ndarray, k: int, ordered: bool) -> float:
    """Leave-one-out balanced accuracy of predicting ``lab`` from feature codes ``v``.

    A row whose feature value repeats is predicted by the strict majority label of the
    other rows with that value; a row whose value is unique is predicted by its
    neighbours in value order (both must agree), so a unique id scores at chance unless
    the ids are ordered by label. Ties count as wrong, so the score never rewards a
    feature for having many distinct values.
    """
    n = len(v)
    comb = v * k + lab
    uc, inv, cnt = np.unique(comb, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    own = cnt[inv] - 1
    gv, gl = uc // k, uc % k
    ngroups = int(v.max()) + 1
    order = np.lexsort((-cnt, gv))
    gv_s, cnt_s, gl_s = gv[order], cnt[order], gl[order]
    starts = np.flatnonzero(np.r_[True, gv_s[1:] != gv_s[:-1]])
    top1 = np.zeros(ngroups, dtype=np.int64)
    top1_lab = np.full(ngroups, -1, dtype=np.int64)
    top2 = np.zeros(ngroups, dtype=np.int64)
    top1[gv_s[starts]] = cnt_s[starts]
    top1_lab[gv_s[starts]] = gl_s[starts]
    second = starts + 1
    has2 = second < len(gv_s)
    has2[has2] = gv_s[second[has2]] == gv_s[starts[has2]]
    top2[gv_s[starts[has2]]] = cnt_s[second[has2]]
    best_other = np.where(top1_lab[v] == lab, top2[v], top1[v])
    correct = own > best_other
    size = np.bincount(v, minlength=ngroups)[v]
    single = np.flatnonzero(size == 1)
    if ordered and len(single) and n > 1:
        rank = np.argsort(v, kind="stable")
        lab_sorted = lab[rank]
        pos = np.empty(n, dtype=np.int64)
        pos[rank] = np.arange(n)
        p = pos[single]
        prev_ok = np.ones(len(p), dtype=bool)
        next_ok = np.ones(len(p), dtype=bool)
        has_prev, has_next = p > 0, p < n - 1
        prev_ok[has_prev] = lab_sorted[p[has_prev] - 1] == lab[single[has_prev]]
        next_ok[has_next] = lab_sorted[p[has_next] + 1] == lab[single[has_next]]
        correct[single] = prev_ok & next_ok
    counts = np.bincount(lab, minlength=k)
    hits = np.bincount(lab, weights=correct.astype(np.float64), minlength=k)
    valid = counts >= 2
    return float(np.mean(hits[valid] / counts[valid]))


def _continuous_score(col: np.ndarray, y: np.ndarray, what: str) -> float:
    """Absolute Pearson correlation (numeric features) or the square root of the
    leave-one-out R² of per-value means (non-numeric features)."""
    if col.dtype.kind in "biuf":
        x = col.astype(np.float64)
        ok = np.isfinite(x)
        x, yy = x[ok], y[ok]
        if len(x) < 3:
            return 0.0
        x = x - x.mean()
        yy = yy - yy.mean()
        den = math.sqrt(float(x @ x) * float(yy @ yy))
        return 0.0 if den == 0 else abs(float(x @ yy) / den)
    v, _ = _codes(col, what)
    sums = np.bincount(v, weights=y)
    size = np.bincount(v)
    total = float(y.sum())
    n = len(y)
    own_size = size[v]
    pred = np.where(own_size > 1, (sums[v] - y) / np.maximum(own_size - 1, 1),
                    (total - y) / (n - 1))
    sst = float(((y - y.mean()) ** 2).sum())
    if sst == 0:
        return 0.0
    r2 = 1.0 - float(((y - pred) ** 2).sum()) / sst
    return math.sqrt(max(0.0, r2))


def assert_no_label_leakage(X: Any, y: Any, *, threshold: float = 0.99,
                            discrete: bool | None = None) -> dict[str, Any]:
    """Fail when a single feature predicts the label almost perfectly.

    Discrete labels: each feature's score is the leave-one-out balanced accuracy of
    predicting the label by the majority label of the other rows with the same feature
    value (unique values are predicted from their neighbours in value order). Leaving
    each row out means an all-unique feature, such as a random row id, cannot
    "predict" its own label; balanced accuracy means a constant feature scores
    ``1 / classes`` even on imbalanced labels. Continuous labels: the absolute Pearson
    correlation (numeric features), or the square root of the leave-one-out R² of
    per-value means (non-numeric features).

    Args:
        X: Features, one row per sample: a 2-D array, tensor or DataFrame.
        y: The labels, one per row.
        threshold: Fail when a feature's score is at or above this, in (0, 1].
        discrete: Whether the labels are classes. ``None`` decides: bool, string and
            object labels are discrete; numeric labels are discrete when all values are
            whole numbers with fewer distinct values than half the rows, else continuous.

    Returns:
        The record's values: the method, the threshold and the highest scores.

    Raises:
        AssertionError: A feature scores at or above ``threshold``.
        ValueError: Shapes do not match, ``y`` has missing labels or a single class.
        TypeError: An input type is not supported.
    """
    validation.number(threshold, "threshold", low=0, high=1, low_open=True,
                      check="assert_no_label_leakage")
    split = _to_split("X", X)
    yv = _label_vector(y, split.n)
    if split.n < 2:
        raise ValueError("X has fewer than 2 rows: no feature can be scored")
    if yv.dtype.kind == "f" and np.isnan(yv).any() or any(_is_missing(v) for v in (
            yv.tolist() if yv.dtype == object else ())):
        raise ValueError("y has missing labels (NaN/None): drop unlabelled rows first")
    if discrete is None:
        if yv.dtype.kind in "iuf":
            whole = bool(np.all(np.isfinite(yv)) and np.all(yv == np.round(yv)))
            discrete = whole and len(np.unique(yv)) < split.n / 2
        else:
            discrete = yv.dtype.kind != "c"
    scores: list[tuple[float, str]] = []
    if discrete:
        lab, _ = _codes(yv, "y")
        k = int(lab.max()) + 1
        if k < 2:
            raise ValueError("y has a single class: there is nothing a feature could leak")
        if np.count_nonzero(np.bincount(lab) >= 2) < 2:
            raise ValueError("y has fewer than two classes with at least 2 rows each: "
                             "leave-one-out scores cannot be computed")
        method = "leave-one-out balanced accuracy of the majority label per feature value"
        for j in range(split.ncols):
            v, ordered = _codes(split.column(j), f"X, {split.column_name(j)}")
            scores.append((_discrete_score(v, lab, k, ordered), split.column_name(j)))
    else:
        yf = yv.astype(np.float64)
        if not np.all(np.isfinite(yf)):
            raise ValueError("y has non-finite labels (inf)")
        method = "absolute correlation with the label"
        for j in range(split.ncols):
            name = split.column_name(j)
            scores.append((_continuous_score(split.column(j), yf, f"X, {name}"), name))
    ranked = sorted(scores, key=lambda s: -s[0])
    values = {"method": method, "threshold": float(threshold), "discrete": bool(discrete),
              "features": split.ncols, "rows": split.n,
              "top": {name: round(score, 6) for score, name in ranked[:SHOW]}}
    bad = [(score, name) for score, name in ranked if score >= threshold]
    if bad:
        listed = "\n".join(f"  {name}: {score:.4f}" for score, name in bad[:SHOW])
        more = f"\n  ... and {len(bad) - SHOW} more" if len(bad) > SHOW else ""
        message = (
            f"label leakage: {len(bad)} feature(s) predict the label almost perfectly on "
            f"their own ({method}, threshold {threshold}):\n{listed}{more}\n"
            "Likely causes: the label itself or a copy of it is among the features (an id "
            "or code column equal to the class), a feature computed from the label (target "
            "encoding fitted on all rows, a post-outcome field), or an id/file name assigned "
            "after sorting rows by class. Drop or recompute that feature; if it is "
            "legitimately this predictive, raise threshold or leave it out of X."
        )
        return _verdict("label_leakage", values, message)
    return _verdict("label_leakage", values, "")


class DataLeakage:
    """The ``data_leakage`` fixture: leakage checks that record into the session report.

    Args:
        request: The pytest fixture request of the test using it.
    """

    def __init__(self, request: Any) -> None:
        self.request = request

    def check(self, train: Any, test: Any, *, val: Any = None, key: Any = None,
              decimals: int | None = None) -> dict[str, Any]:
        """Fail when rows or groups are shared between splits (see :func:`assert_no_leakage`).

        Args:
            train: The training split.
            test: The test split.
            val: An optional validation split.
            key: A group id column (name or index) or per-split id arrays.
            decimals: Round floats to this many decimals before comparing rows.

        Returns:
            The record's values.
        """
        return assert_no_leakage(train, test, val=val, key=key, decimals=decimals)

    def check_labels(self, X: Any, y: Any, *, threshold: float = 0.99,
                     discrete: bool | None = None) -> dict[str, Any]:
        """Fail when one feature predicts the label (see :func:`assert_no_label_leakage`).

        Args:
            X: The features, one row per sample.
            y: The labels.
            threshold: Fail at or above this score.
            discrete: Whether the labels are classes (``None`` decides).

        Returns:
            The record's values.
        """
        return assert_no_label_leakage(X, y, threshold=threshold, discrete=discrete)

    def check_duplicates(self, x: Any, *, decimals: int | None = None) -> dict[str, Any]:
        """Fail when one split holds duplicate rows (see :func:`assert_no_duplicates`).

        Args:
            x: One split.
            decimals: Round floats to this many decimals before comparing rows.

        Returns:
            The record's values.
        """
        return assert_no_duplicates(x, decimals=decimals)
