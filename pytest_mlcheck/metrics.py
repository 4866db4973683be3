"""Metric regression: compare metrics against baselines reviewed in pull requests.

The ``metric_regression`` fixture is a :class:`MetricRegression`. Its three checks
record what they find as report records (kind ``metric`` or ``array``) and fail with
a table that names every metric, its baseline, the current value, the allowed band
and the command that accepts the new values:

* :meth:`MetricRegression.check` compares a closed set of scalar metrics, each within
  ``atol + rtol * |baseline|``, one-sided for metrics with a direction;
* :meth:`MetricRegression.check_repeated` runs a function once per seed and compares
  means with a band that also allows for the measured seed-to-seed noise;
* :meth:`MetricRegression.check_array` snapshots an array or tensor.

Baselines live in TOML files next to the tests (see :mod:`pytest_mlcheck.baselines`)
and are only written with ``pytest --mlcheck-update``.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import report, validation
from .baselines import (
    DEFAULT_GROUP,
    BaselineEntryError,
    array_file_name,
    entry_label,
    glob_match,
    local_id,
    variant_key,
)
from .environment import environment_note, recording_environment
from .session import MetricDefaults, MLCheckSession

if TYPE_CHECKING:
    import numpy as np

#: Verdicts of one metric, as shown in tables and records.
OK, IMPROVED, REGRESSED, NEW, MISSING, NON_FINITE, WRITTEN = (
    "ok", "improved", "REGRESSED", "NEW", "MISSING", "NON-FINITE", "written")

_CAUSES = {
    REGRESSED: (
        "REGRESSED: the value moved past its band in the bad direction. Usual causes: a "
        "change to the model or its defaults, to the data pipeline (split, shuffling, "
        "preprocessing, a dropped last batch) or to the metric's own code (e.g. averaging "
        "per batch instead of per sample), a changed seed, or a dependency bump (compare "
        "the recording environment). If the change is intended, accept it; if it is "
        "run-to-run noise, measure it with check_repeated or widen atol/rtol."
    ),
    MISSING: (
        "MISSING: the baseline has this metric but the test no longer reports it: it was "
        "renamed or dropped, or the code computing it was skipped. Report it again, or "
        "accept its removal."
    ),
    NON_FINITE: (
        "NON-FINITE: the current value is NaN or infinite: training diverged (learning "
        "rate, no gradient clipping), a division by zero or log(0) in the metric (an empty "
        "class or split), or NaN inputs. NaN and inf never pass and are never recorded."
    ),
    NEW: (
        "NEW: the baseline has no value for this metric (a new metric, a new test or a "
        "new name=), so there is nothing to compare against yet."
    ),
}


def _fmt(value: Any) -> str:
    return validation.format_value(value, digits=6) if not isinstance(value, str) else value


_fmt_short = validation.format_number


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
            for r in [header] + rows]


def _binary_exponent(magnitude: float) -> int:
    """Return ``e`` with ``magnitude < 2**e``: dividing by ``2**e`` is exact and keeps |x| < 1."""
    return math.frexp(magnitude)[1] if magnitude > 0 else 0


def seed_statistics(values: list[float], name: str = "metric") -> dict[str, Any]:
    """Return what a baseline keeps of one metric's per-seed values.

    The sums are taken over the values scaled by a power of two (exact), so values near
    the float range (``1e200``, or many seeds of ``1e306``) neither overflow nor warn,
    and ordinary values give bit-for-bit the plain formula's result.

    Args:
        values: The metric under each seed (at least two).
        name: The metric's name, for the error message.

    Returns:
        ``mean``, ``std`` (sample, ``n - 1``), ``n``, ``min`` and ``max``; mean and std
        are NaN when a value is not finite.

    Raises:
        ValueError: The values are finite but their standard deviation is not
            representable as a float (it overflows), naming the metric.
    """
    n = len(values)
    finite = all(math.isfinite(v) for v in values)
    mean = std = float("nan")
    if finite:
        e = _binary_exponent(max(abs(v) for v in values))
        scaled = [math.ldexp(v, -e) for v in values]
        mean_s = math.fsum(scaled) / n
        mean = math.ldexp(mean_s, e)
        if n > 1:
            std_s = math.sqrt(math.fsum((v - mean_s) ** 2 for v in scaled) / (n - 1))
            try:
                std = math.ldexp(std_s, e)
            except OverflowError:
                std = math.inf
            if not math.isfinite(std):
                raise ValueError(
                    f"metric {name!r}: the standard deviation of its per-seed values "
                    f"(from {min(values)!r} to {max(values)!r}) overflows a float; report "
                    f"the metric in larger units, or as a logarithm")
    return {"mean": mean, "std": std, "n": n, "min": min(values), "max": max(values)}


def noise_band(current: Mapping[str, Any], baseline: Mapping[str, Any], sigmas: float) -> float:
    """Return ``sigmas`` standard errors of the difference of two means.

    Computed on the standard deviations scaled by a power of two (exact), so a std of
    ``1e200`` does not overflow when squared, nor one of ``1e-200`` underflow to 0.

    Args:
        current: ``std`` and ``n`` of the current runs.
        baseline: ``std`` and ``n`` of the baseline's runs.
        sigmas: How many standard errors count as noise.

    Returns:
        ``sigmas * sqrt(std²/n + baseline_std²/baseline_n)``; ``inf`` only when that
        number is beyond the float range.
    """
    e = _binary_exponent(max(abs(current["std"]), abs(baseline["std"])))
    a, b = math.ldexp(current["std"], -e), math.ldexp(baseline["std"], -e)
    root = math.sqrt(a ** 2 / current["n"] + b ** 2 / baseline["n"])
    try:
        return sigmas * math.ldexp(root, e)
    except OverflowError:
        return math.inf


def array_statistics(arr: np.ndarray) -> dict[str, float]:
    """Return the summary a snapshot's TOML entry keeps: mean, std, min, max of finite values.

    Mean and std are taken over the values scaled by a power of two (exact), so values
    near the float range neither overflow nor warn: both are at most the largest
    magnitude, and ordinary arrays give bit-for-bit numpy's plain result.

    Args:
        arr: The snapshot.

    Returns:
        The statistics as floats, or ``{}`` when no element is finite.
    """
    import numpy as np

    finite = arr[np.isfinite(arr)] if arr.dtype.kind == "f" else arr
    if not finite.size:
        return {}
    f64 = finite.astype(np.float64)
    lo, hi = float(f64.min()), float(f64.max())
    e = _binary_exponent(max(abs(lo), abs(hi)))
    scaled = np.ldexp(f64, -e) if e else f64
    return {"mean": math.ldexp(float(scaled.mean()), e),
            "std": math.ldexp(float(scaled.std()), e), "min": lo, "max": hi}


def _percent_change(current: float, baseline: float) -> float | None:
    """Return ``100 * (current - baseline) / |baseline|``, finite for finite inputs.

    Near the float range ``100 * delta`` (or ``delta`` itself) overflows; the same
    number is then computed in an order that does not.
    """
    if baseline == 0:
        return None
    delta = current - baseline
    pct = 100.0 * delta / abs(baseline)
    if not math.isfinite(pct):
        pct = (current / abs(baseline) - math.copysign(1.0, baseline)) * 100.0
    return pct


def verdict(current: float, baseline: float, band: float, direction: str) -> str:
    """Return the verdict of one finite current value against a finite baseline.

    Args:
        current: The current value.
        baseline: The baseline value.
        band: The allowed absolute deviation.
        direction: ``higher``, ``lower`` or ``""`` (two-sided).

    Returns:
        ``ok``, ``improved`` or ``REGRESSED``.
    """
    delta = current - baseline
    if abs(delta) <= band:
        return OK
    if direction == "higher" and delta > 0:
        return IMPROVED
    if direction == "lower" and delta < 0:
        return IMPROVED
    return REGRESSED


class MetricRegression:
    """The ``metric_regression`` fixture: metric checks against reviewed baselines.

    Args:
        request: The pytest fixture request of the test using it.
        session: The plugin's session (``plugin.py`` hands it in).
    """

    def __init__(self, request: Any, session: MLCheckSession) -> None:
        self.config = request.config
        self.state = session
        self.nodeid: str = request.node.nodeid
        self.test: str = local_id(self.nodeid)
        store = self.state.baseline_store()
        module = request.node.path
        self.file = store.file_for_module(module if isinstance(module, Path) else Path(str(module)))
        # Parse now, so a corrupt file makes the test error at setup, before it runs.
        self.file.load()
        self._used: set[tuple[str, str, str]] = set()

    # ---- options ---------------------------------------------------------------------

    def _defaults(self) -> MetricDefaults:
        defaults = self.state.metric_defaults
        if defaults is None:
            defaults = MetricDefaults(
                atol=self._ini_float("mlcheck_atol"),
                rtol=self._ini_float("mlcheck_rtol"),
                higher=tuple(self.state.ini("mlcheck_higher_is_better") or ()),
                lower=tuple(self.state.ini("mlcheck_lower_is_better") or ()),
                env=tuple(self.state.ini("mlcheck_baseline_env") or ()),
            )
            self.state.metric_defaults = defaults
        return defaults

    def _ini_float(self, key: str) -> float:
        raw = self.state.ini(key)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"ini option {key} must be a number, got {raw!r}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"ini option {key} must be finite and >= 0, got {raw!r}")
        return value

    def _tolerances(self, value: Any, argname: str, names: Iterable[str],
                    given: set[str] | None = None) -> dict[str, float]:
        """Return each metric's tolerance; add the metrics the caller gave one for to ``given``."""
        default = getattr(self._defaults(), argname)
        names = list(names)
        if value is None:
            return {n: default for n in names}
        valid = validation.tolerance

        if isinstance(value, Mapping):
            per = {str(k): valid(v, f"{argname}[{k!r}]") for k, v in value.items()}
            for pattern in per:
                if not any(glob_match(n, (pattern,)) for n in names):
                    raise ValueError(
                        f"{argname} has an entry for {pattern!r}, which matches no metric "
                        f"of this check ({', '.join(map(repr, names))}); a typo?")
            out = {}
            for n in names:
                hit = per.get(n)
                if hit is None:
                    hit = next((v for p, v in per.items() if glob_match(n, (p,))), None)
                if hit is not None and given is not None:
                    given.add(n)
                out[n] = default if hit is None else hit
            return out
        v = valid(value, argname)
        if given is not None:
            given.update(names)
        return {n: v for n in names}

    def _directions(self, names: Iterable[str], higher: Any, lower: Any) -> dict[str, str]:
        what = "metric names or glob patterns"
        higher = validation.names(higher, "higher_is_better", what=what)
        lower = validation.names(lower, "lower_is_better", what=what)
        ini_h, ini_l = self._defaults().higher, self._defaults().lower
        if not (higher or lower or ini_h or ini_l):
            return {n: "" for n in names}
        out = {}
        for n in names:
            h, lo = glob_match(n, higher), glob_match(n, lower)
            source = "higher_is_better and lower_is_better"
            if not (h or lo):
                h, lo = glob_match(n, ini_h), glob_match(n, ini_l)
                source = "ini options mlcheck_higher_is_better and mlcheck_lower_is_better"
            if h and lo:
                raise ValueError(f"metric {n!r} matches both {source}; give it one direction")
            out[n] = "higher" if h else "lower" if lo else ""
        return out

    def _key(self, group: str, env: Any) -> tuple[tuple[str, str, str], dict[str, str]]:
        if env is None:
            facets = self._defaults().env
        else:
            facets = validation.names(env, "env", what="environment facets")
        if facets:
            from .environment import select

            chosen = select(facets)
        else:
            chosen = {}
        return (self.test, group, variant_key(chosen)), chosen

    def _group(self, name: Any) -> str:
        if name is None:
            return DEFAULT_GROUP
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        return name

    def _claim(self, key: tuple[str, str, str], method: str) -> None:
        if key in self._used:
            raise ValueError(
                f"metric_regression.{method}: the entry {entry_label(key)} was already "
                f"checked in this test; give each check its own name=")
        self._used.add(key)

    def _accept_command(self) -> str:
        parts = ["pytest", shlex.quote(self.nodeid)]
        if self.state.enabled:
            parts.append("--mlcheck")
        parts.append("--mlcheck-update")
        return " ".join(parts)

    def _lookup(self, key: tuple[str, str, str]) -> tuple[dict[str, Any] | None, str]:
        """Return the entry and, when only other environment variants exist, a failure."""
        entry = self.file.entry(key)
        if entry is not None:
            return entry, ""
        others = [v for v in self.file.variants(key[0], key[1]) if v != key[2]]
        if not others:
            return None, ""
        want = repr(key[2]) if key[2] else "without env= facets"
        return None, (
            f"no baseline recorded for {self.nodeid} in the environment variant {want}; "
            f"this entry has variants: {', '.join(map(repr, others))}. Lookup is exact: "
            f"record this variant on this machine with {self._accept_command()}, or change "
            f"env= (ini mlcheck_baseline_env) to the facets the baselines were keyed by."
        )

    def _values(self, key: tuple[str, str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {"file": self.file.rel, "entry": entry_label(key)}
        if key[2]:
            values["variant"] = key[2]
        return values

    # ---- scalar checks ---------------------------------------------------------------

    def _scalars(self, metrics: Any, what: str) -> dict[str, float | int]:
        if not isinstance(metrics, Mapping):
            raise TypeError(f"{what} must be a mapping of metric name to number, "
                            f"got {type(metrics).__name__}")
        if not metrics:
            raise ValueError(f"{what} is empty: give at least one metric")
        out: dict[str, float | int] = {}
        for name, value in metrics.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"metric names must be non-empty strings, got {name!r}")
            kind = type(value)
            # Plain floats and ints (bool is its own type) are what as_scalar returns.
            if kind is float or kind is int:
                out[name] = value
            else:
                from .arrays import as_scalar

                out[name] = as_scalar(value, f"metric {name!r}")
        return out

    def check(self, metrics: Mapping[str, Any], *values: Any, name: str | None = None,
              higher_is_better: Iterable[str] = (), lower_is_better: Iterable[str] = (),
              atol: float | Mapping[str, float] | None = None,
              rtol: float | Mapping[str, float] | None = None,
              env: Iterable[str] | None = None) -> None:
        """Compare a closed set of metrics with their baselines.

        Each metric passes when ``|current - baseline| <= atol + rtol * |baseline|``.
        A metric matched by ``higher_is_better``/``lower_is_better`` (names or globs,
        plus the ini defaults) fails only in its bad direction and is reported as
        ``improved`` past the band in the good one. A metric added to or dropped from
        the set fails, and so does a NaN or infinite current value.

        Args:
            metrics: Metric name to number (int, float, numpy scalar, 0-d array, tensor).
            *values: Refused: ``check("acc", 0.9)`` raises a TypeError that shows the
                mapping form, ``check({"acc": 0.9})``.
            name: Keeps several independent checks apart in one test.
            higher_is_better: Names or glob patterns of metrics where higher is better.
            lower_is_better: Names or glob patterns of metrics where lower is better.
            atol: Absolute tolerance: a number, or per metric (names or globs);
                default ini ``mlcheck_atol`` (1e-6).
            rtol: Relative tolerance, like ``atol``; default ini ``mlcheck_rtol`` (1e-5).
            env: Environment facets that key the baseline (``("device",)``); default
                ini ``mlcheck_baseline_env``.

        Raises:
            AssertionError: A metric regressed, is new, missing or non-finite.
            TypeError: A metric value is not a number (the message names it).
        """
        __tracebackhide__ = True
        if values:  # check("acc", 0.9): the peers' one-value form
            raise TypeError(f"metric_regression.check takes one mapping of metric names to values, "
                            f"not separate arguments: write check({{{metrics!r}: {values[0]!r}}})")
        current = self._scalars(metrics, "metrics")
        self._compare(current, None, name=name, higher=higher_is_better, lower=lower_is_better,
                      atol=atol, rtol=rtol, env=env, method="check", sigmas=None)

    def check_repeated(self, fn: Callable[[int], Mapping[str, Any]], *,
                       seeds: Iterable[int] = range(5), sigmas: float = 3.0,
                       name: str | None = None, higher_is_better: Iterable[str] = (),
                       lower_is_better: Iterable[str] = (),
                       atol: float | Mapping[str, float] | None = None,
                       rtol: float | Mapping[str, float] | None = None,
                       env: Iterable[str] | None = None) -> None:
        """Run ``fn(seed)`` once per seed and compare the mean of each metric, noise-aware.

        Before each call Python's ``random``, numpy's global RNG and torch (when it is
        imported) are seeded with the seed, and restored afterwards. The baseline keeps
        mean, std, n, min and max per metric. A metric passes when
        ``|mean - baseline_mean| <= max(atol + rtol*|baseline_mean|,
        sigmas * sqrt(std²/n + baseline_std²/baseline_n))``, one-sided for metrics
        with a direction.

        Args:
            fn: Called with each seed; returns metric name to number.
            seeds: At least two seeds.
            sigmas: How many standard errors of the difference of means are noise.
            name: Keeps several independent checks apart in one test.
            higher_is_better: Names or glob patterns of metrics where higher is better.
            lower_is_better: Names or glob patterns of metrics where lower is better.
            atol: Absolute tolerance (number or per metric); default ini ``mlcheck_atol``.
            rtol: Relative tolerance (number or per metric); default ini ``mlcheck_rtol``.
            env: Environment facets that key the baseline.

        Raises:
            AssertionError: A metric's mean regressed, is new, missing or non-finite.
            ValueError: Fewer than two seeds, or runs that report different metrics.
        """
        __tracebackhide__ = True
        from .seeding import seeded

        check = "metric_regression.check_repeated"
        validation.function(fn, check=check, signature="(seed) -> {metric name: number}")
        seeds = validation.seeds(seeds, check=check)
        sigmas = validation.number(sigmas, "sigmas", low=0, low_open=True, check=check)
        runs: list[dict[str, float | int]] = []
        for seed in seeds:
            with seeded(int(seed)):
                out = fn(int(seed))
            got = self._scalars(out, f"fn({seed}) returned a value that")
            if runs and set(got) != set(runs[0]):
                raise ValueError(
                    f"fn({seed}) reported metrics {sorted(got)} but fn({seeds[0]}) reported "
                    f"{sorted(runs[0])}; every seed must report the same metrics")
            runs.append(got)
        samples = {m: [float(r[m]) for r in runs] for m in runs[0]}
        self._compare(samples, seeds, name=name, higher=higher_is_better,
                      lower=lower_is_better, atol=atol, rtol=rtol, env=env,
                      method="check_repeated", sigmas=sigmas)

    def _compare(self, current: dict[str, Any], seeds: list[int] | None, *, name: Any,
                 higher: Any, lower: Any, atol: Any, rtol: Any, env: Any, method: str,
                 sigmas: float | None) -> None:
        __tracebackhide__ = True
        repeated = seeds is not None
        group = self._group(name)
        key, _facets = self._key(group, env)
        self._claim(key, method)
        entry, variant_failure = self._lookup(key)
        base: dict[str, Any] = dict(entry["metrics"]) if entry and "metrics" in entry else {}
        kind_mismatch = ""
        if entry is not None and "metrics" not in entry:
            kind_mismatch = "an array snapshot (check_array)"
        elif base and any(isinstance(v, dict) for v in base.values()) != repeated:
            kind_mismatch = "check_repeated" if not repeated else "check (single values)"
        if kind_mismatch:
            if not self.state.update:
                raise BaselineEntryError(
                    f"baseline entry {entry_label(key)} in {self.file.rel} was recorded by "
                    f"{kind_mismatch}, but the test now calls metric_regression.{method}; "
                    f"re-record it with {self._accept_command()}")
            base = {}
        names = list(current) + sorted(n for n in base if n not in current)
        given: set[str] = set()
        atols = self._tolerances(atol, "atol", names, given)
        rtols = self._tolerances(rtol, "rtol", names, given)
        directions = self._directions(names, higher, lower)

        rows: list[dict[str, Any]] = []
        for metric in names:
            direction = directions[metric]
            row: dict[str, Any] = {"metric": metric, "direction": direction}
            b = base.get(metric)
            if repeated:
                if metric in current:
                    vals = current[metric]
                    finite = all(math.isfinite(v) for v in vals)
                    try:
                        row["stats"] = seed_statistics(vals, metric)
                    except ValueError as exc:
                        raise ValueError(f"metric_regression.{method}: {exc}") from None
                    row["current"] = row["stats"]["mean"]
                    row["per_seed"] = vals
                    if not finite:
                        row["bad_seeds"] = [s for s, v in zip(seeds, vals) if not math.isfinite(v)]
                bm = b["mean"] if isinstance(b, dict) else None
            else:
                if metric in current:
                    row["current"] = current[metric]
                bm = b
            row["baseline"] = bm
            cur = row.get("current")
            if cur is None:
                row["verdict"] = MISSING
            elif not math.isfinite(cur):
                row["verdict"] = NON_FINITE
            elif bm is None:
                row["verdict"] = NEW
            else:
                band = atols[metric] + rtols[metric] * abs(bm)
                if type(cur) is int and type(bm) is int and metric not in given:
                    # Counts compare exactly unless a tolerance is given for them: the
                    # default band would let 120000 pass for 120001.
                    band = 0.0
                if repeated:
                    st = row["stats"]
                    noise = noise_band(st, b, sigmas)
                    if not math.isfinite(noise):
                        raise ValueError(
                            f"metric_regression.{method}: metric {metric!r}: the noise band "
                            f"{sigmas:g} * sqrt(std²/n + baseline_std²/baseline_n) overflows "
                            f"a float (std {st['std']!r}, baseline std {b['std']!r}); lower "
                            f"sigmas or report the metric in larger units")
                    row["noise_band"] = noise
                    row["baseline_std"], row["baseline_n"] = b["std"], b["n"]
                    band = max(band, noise)
                row["band"] = band
                row["delta"] = cur - bm
                row["delta_pct"] = _percent_change(cur, bm)
                row["verdict"] = verdict(cur, bm, band, direction)
            rows.append(row)

        changed = bool(kind_mismatch) or any(r["verdict"] != OK for r in rows)
        non_finite = any(r["verdict"] == NON_FINITE for r in rows)
        will_write = self.state.update and changed and not non_finite
        if will_write:
            if repeated:
                stored = {r["metric"]: r["stats"] for r in rows if "stats" in r}
            else:
                stored = {r["metric"]: r["current"] for r in rows if "current" in r}
            self.file.stage(key, {"recorded_in": recording_environment(), "metrics": stored})

        common = self._values(key)
        get = dict.get
        for r in rows:
            values = dict(common)
            values["baseline"] = get(r, "baseline")
            values["current"] = get(r, "current")
            values["delta"] = get(r, "delta")
            values["delta_pct"] = get(r, "delta_pct")
            values["band"] = get(r, "band")
            values["direction"] = r["direction"] or "two-sided"
            if repeated:
                for k in ("noise_band", "baseline_std", "baseline_n", "per_seed"):
                    if k in r:
                        values[k] = r[k]
                if "stats" in r:
                    values["std"], values["n"] = r["stats"]["std"], r["stats"]["n"]
                values["seeds"] = seeds
            verdict_now = r["verdict"]
            if will_write:
                values["previous_verdict"] = verdict_now
                verdict_now = WRITTEN
            report.emit("metric", r["metric"], verdict_now, values,
                        "" if verdict_now in (OK, IMPROVED, WRITTEN) else
                        f"{r['metric']}: {verdict_now}", group="" if name is None else group)

        failing = [r for r in rows if r["verdict"] in (REGRESSED, NEW, MISSING, NON_FINITE)]
        if variant_failure and not will_write:
            raise AssertionError(variant_failure)
        if failing and not will_write:
            raise AssertionError(self._message(key, rows, failing, entry, method))

    def _message(self, key: tuple[str, str, str], rows: list[dict[str, Any]],
                 failing: list[dict[str, Any]], entry: dict[str, Any] | None,
                 method: str) -> str:
        lines: list[str] = []
        for r in rows:
            if r["verdict"] == NEW:
                lines.append(f"no baseline recorded for {self.nodeid} {r['metric']}; "
                             f"run pytest --mlcheck-update to record it")
        group = f' (name="{key[1]}")' if key[1] != DEFAULT_GROUP else ""
        variant = f" [env {key[2]}]" if key[2] else ""
        lines.append(f"metric_regression.{method}: {len(failing)} of {len(rows)} metric(s) "
                     f"of {self.nodeid}{group}{variant} failed against the baseline")
        header = ["metric", "baseline", "current", "Δ", "Δ%", "band (±)", "direction", "verdict"]
        table_rows = []
        for r in rows:
            base, cur = r.get("baseline"), r.get("current")
            if "stats" in r:
                cur_s = f"{_fmt(cur)} ± {_fmt_short(r['stats']['std'])} (n={r['stats']['n']})"
            else:
                cur_s = _fmt(cur)
            if "baseline_std" in r:
                base_s = f"{_fmt(base)} ± {_fmt_short(r['baseline_std'])} (n={r['baseline_n']})"
            else:
                base_s = _fmt(base)
            pct = r.get("delta_pct")
            table_rows.append([
                r["metric"], base_s, cur_s, _fmt_short(r.get("delta")),
                "-" if pct is None else f"{pct:+.3g}%", _fmt_short(r.get("band")),
                {"higher": "higher is better", "lower": "lower is better"}.get(
                    r["direction"], "two-sided"), r["verdict"]])
        lines += _table(header, table_rows)
        for r in failing:
            if r.get("bad_seeds"):
                lines.append(f"  {r['metric']} is non-finite for seed(s) {r['bad_seeds']}: "
                             f"{r['per_seed']}")
            elif r["verdict"] == NON_FINITE:
                lines.append(f"  {r['metric']} is {r['current']!r}")
        lines.append(f"baseline: {self.file.rel} {entry_label(key)}")
        lines += environment_note((entry or {}).get("recorded_in"))
        lines.append("likely causes:")
        for verdict_name in (NON_FINITE, REGRESSED, MISSING, NEW):
            if any(r["verdict"] == verdict_name for r in failing):
                lines.append("  - " + _CAUSES[verdict_name])
        if any(r["verdict"] == NON_FINITE for r in failing):
            lines.append("fix the non-finite value first: --mlcheck-update does not record it.")
        if not all(r["verdict"] == NON_FINITE for r in failing):
            lines.append(f"to accept the current values as the new baseline (then review the "
                         f"diff of {self.file.rel}), run from {self.state.rootdir}:")
            lines.append(f"  {self._accept_command()}")
        return "\n".join(lines)

    # ---- arrays ----------------------------------------------------------------------

    def check_array(self, name: str, array: Any, *, atol: float | None = None,
                    rtol: float | None = None, env: Iterable[str] | None = None) -> None:
        """Compare an array or tensor (e.g. predictions on a fixed batch) with its snapshot.

        The snapshot is a compressed ``.npz`` file beside the baseline TOML file, always
        loaded with ``allow_pickle=False``; its shape, dtype and summary statistics go in
        the TOML file. Elements match when ``|current - baseline| <= atol + rtol*|baseline|``
        (NaN matches NaN and inf matches the same inf at the same place).

        Args:
            name: The array's name, unique within the test.
            array: A numpy array or torch tensor of numbers.
            atol: Absolute tolerance; default ini ``mlcheck_atol``.
            rtol: Relative tolerance; default ini ``mlcheck_rtol``.
            env: Environment facets that key the baseline.

        Raises:
            AssertionError: Shape, dtype or values changed, or no snapshot exists.
            TypeError: ``array`` is not an array of numbers.
            BaselineEntryError: The baseline entry holds metrics, not an array (the
                test switched from ``check`` to ``check_array``); re-record it.
        """
        __tracebackhide__ = True
        import numpy as np

        from .arrays import to_numpy

        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        if isinstance(array, (list, tuple)) or np.isscalar(array):
            array = np.asarray(array)
        arr = np.array(to_numpy(array, f"array {name!r}"), copy=True)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"array {name!r}: expected numbers (bool, int or float), "
                            f"got dtype {arr.dtype}")
        tol_a = self._tolerances(atol, "atol", [name])[name]
        tol_r = self._tolerances(rtol, "rtol", [name])[name]
        key, _facets = self._key(name, env)
        self._claim(key, "check_array")
        entry, variant_failure = self._lookup(key)
        values = self._values(key)
        values.update({"shape": list(arr.shape), "dtype": str(arr.dtype),
                       "current": f"{arr.dtype}{list(arr.shape)}",
                       "band": f"atol {tol_a:g} + rtol {tol_r:g}·|baseline|"})
        problems: list[str] = []
        result = NEW
        base_arr = None
        if entry is not None and "array" not in entry:
            if not self.state.update:
                raise BaselineEntryError(
                    f"baseline entry {entry_label(key)} in {self.file.rel} holds metrics, but "
                    f"the test now calls metric_regression.check_array; re-record it with "
                    f"{self._accept_command()}")
            entry = None
        if entry is not None:
            info = entry["array"]
            values["baseline"] = f"{info['dtype']}{list(info['shape'])}"
            try:
                base_arr = self.file.load_array(info["file"])  # never unpickles
            except FileNotFoundError:
                if not self.state.update:
                    raise BaselineEntryError(
                        f"baseline entry {entry_label(key)} in {self.file.rel} refers to "
                        f"{info['file']}, which does not exist; restore it from version "
                        f"control or re-record with {self._accept_command()}") from None
            except (BaselineEntryError, OSError) as exc:  # ArrayFileError says why
                if not self.state.update:  # --mlcheck-update re-records it as new
                    raise BaselineEntryError(
                        f"array file {info['file']} of baseline entry {entry_label(key)} in "
                        f"{self.file.rel} cannot be read: {exc}; re-record it with "
                        f"{self._accept_command()}") from None
        if base_arr is not None:
            problems = self._array_differences(base_arr, arr, tol_a, tol_r, values,
                                               integer_tolerance=atol is not None or rtol is not None)
            result = REGRESSED if problems else OK
        will_write = self.state.update and result != OK
        if will_write:
            file_name = array_file_name(self.file.stem, key)
            info = {"file": file_name, "shape": list(arr.shape), "dtype": str(arr.dtype)}
            info.update(array_statistics(arr))
            self.file.stage(key, {"recorded_in": recording_environment(), "array": info},
                            {file_name: arr})
            values["previous_verdict"] = result
        message = ""
        if result != OK and not will_write:
            message = self._array_message(key, name, result, problems, entry)
        report.emit("array", name, WRITTEN if will_write else result, values,
                    message.splitlines()[0] if message else "")
        if variant_failure and not will_write:
            raise AssertionError(variant_failure)
        if message:
            raise AssertionError(message)

    @staticmethod
    def _array_differences(base: np.ndarray, cur: np.ndarray, atol: float, rtol: float,
                           values: dict[str, Any], integer_tolerance: bool) -> list[str]:
        """Return the problem lines of a snapshot comparison; add its numbers to ``values``."""
        import numpy as np

        from .compare import diff_trees

        # Integer and bool snapshots (token ids, masks) compare exactly unless the
        # test gave a tolerance: the default rtol would let 120000 pass for 120001.
        found = diff_trees(base, cur, root="array", labels=("baseline", "current"),
                           atol=atol, rtol=rtol, integer_tolerance=integer_tolerance)
        values["size"] = int(base.size)
        if not found:
            values["mismatches"] = 0
            with np.errstate(all="ignore"):
                gaps = np.abs(cur.astype(np.float64) - base.astype(np.float64))
            finite = gaps[np.isfinite(gaps)]
            values["delta"] = float(finite.max()) if finite.size else 0.0
            return []
        diff = found[0]
        if diff.what != "values":
            return [diff.text.split(": ", 1)[1]]
        v = diff.values
        values.update(mismatches=v["n_diff"], delta=v["max_abs_diff"],
                      max_abs_error=v["max_abs_diff"], max_rel_error=v["max_rel_diff"],
                      first_mismatches=v["mismatches"])
        return diff.text.splitlines()[1:]

    def _array_message(self, key: tuple[str, str, str], name: str, result: str,
                       problems: list[str], entry: dict[str, Any] | None) -> str:
        lines: list[str] = []
        if result == NEW:
            lines.append(f"no baseline recorded for {self.nodeid} {name}; run pytest "
                         f"--mlcheck-update to record it")
        else:
            lines.append(f"metric_regression.check_array: array {name!r} of {self.nodeid} "
                         f"differs from its snapshot")
            lines += [f"  {p.strip()}" for p in problems]
            lines.append(f"baseline: {self.file.rel} {entry_label(key)}")
            lines += environment_note((entry or {}).get("recorded_in"))
            lines.append(
                "likely causes: a change to the model, its weights or initialisation, the "
                "preprocessing of the fixed batch, the dtype (float32 vs float64) or the "
                "device; a shape change usually means a changed output layer or batch "
                "handling. If it is run-to-run noise, widen atol/rtol.")
        lines.append(f"to accept the current array as the new snapshot, run from "
                     f"{self.state.rootdir}:")
        lines.append(f"  {self._accept_command()}")
        return "\n".join(lines)
