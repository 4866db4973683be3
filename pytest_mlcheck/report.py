"""The one report-record type, and the session report built from it.

Every check (metrics, determinism, shapes, training, leakage, budgets, guards) emits
:class:`CheckRecord` objects through :func:`emit`. The plugin attaches a test's
records to its pytest report, so pytest-xdist ships them from workers to the
controller unchanged; the controller feeds the same records to the terminal summary
and to the JSON report (``--mlcheck-report``).

:func:`emit` works outside pytest too: with no active test it does nothing, so the
plain-function API stays usable in notebooks and scripts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Iterable

from .atomic import atomic_write_bytes

#: Bump when the JSON report changes incompatibly.
SCHEMA_VERSION = 1

#: Verdicts that mean the check failed.
FAILING_VERDICTS = frozenset({"REGRESSED", "NEW", "MISSING", "NON-FINITE", "FAILED", "ERROR"})


@dataclasses.dataclass
class CheckRecord:
    """One result of one check.

    Attributes:
        kind: The check family: ``metric``, ``array``, ``determinism``, ``shape``,
            ``train``, ``leakage``, ``budget`` or ``guard``.
        nodeid: The pytest node id of the test that ran it ("" outside pytest).
        name: What was checked: a metric name, a check name such as ``batch_independence``.
        verdict: ``ok``, ``improved``, ``written`` or one of :data:`FAILING_VERDICTS`.
        values: JSON-serialisable details (baseline, current, delta, band, counts...).
        message: A human explanation; set for failures.
        group: The ``name=`` of a metric check, or "" for the default group.
    """

    kind: str
    nodeid: str
    name: str
    verdict: str
    values: dict[str, Any] = dataclasses.field(default_factory=dict)
    message: str = ""
    group: str = ""

    @property
    def failed(self) -> bool:
        """Whether the verdict is a failing one."""
        return self.verdict in FAILING_VERDICTS

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (non-finite floats become strings)."""
        return {
            "kind": self.kind,
            "nodeid": self.nodeid,
            "name": self.name,
            "group": self.group,
            "verdict": self.verdict,
            "values": _jsonable(self.values),
            "message": self.message,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "CheckRecord":
        """Rebuild a record from :meth:`to_json` output."""
        return cls(
            kind=data["kind"],
            nodeid=data["nodeid"],
            name=data["name"],
            verdict=data["verdict"],
            values=dict(data.get("values") or {}),
            message=data.get("message", ""),
            group=data.get("group", ""),
        )


def _jsonable(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value  # the common case first: this runs for every value of every record
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if kind is dict:
        return _jsonable_dict(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    try:  # numpy scalars
        return _jsonable(value.item())
    except AttributeError:
        return repr(value)


def _jsonable_dict(value: dict) -> dict[str, Any]:
    # Every record's values pass through here (10,000 records for 1,000 tests of 10
    # metrics), so the flat str/int/float values of a record skip the recursive call.
    out = {}
    for k, v in value.items():
        if type(k) is not str:
            k = str(k)
        kind = type(v)
        if kind is str or kind is int or kind is bool or v is None:
            out[k] = v
        elif kind is float:
            out[k] = v if v - v == 0.0 else repr(v)  # v - v is NaN for NaN and inf
        else:
            out[k] = _jsonable(v)
    return out


class _Collector:
    """Where :func:`emit` sends records: the running test's list, or nowhere."""

    def __init__(self) -> None:
        self.nodeid: str = ""
        self.sink: list[CheckRecord] | None = None


_active = _Collector()


def activate(nodeid: str, sink: list[CheckRecord]) -> None:
    """Route records emitted from now on to ``sink``, attributed to ``nodeid`` (plugin use)."""
    _active.nodeid = nodeid
    _active.sink = sink


def deactivate() -> None:
    """Stop routing records (plugin use)."""
    _active.nodeid = ""
    _active.sink = None


def current_nodeid() -> str:
    """Return the node id of the running test, or "" outside a pytest test."""
    return _active.nodeid


def emit(
    kind: str,
    name: str,
    verdict: str,
    values: dict[str, Any] | None = None,
    message: str = "",
    group: str = "",
) -> CheckRecord:
    """Create a record for the running test and add it to the session report.

    Outside a pytest test the record is returned but goes nowhere.

    Raises:
        ValueError: ``name`` or ``group`` is not valid Unicode text (a lone surrogate):
            neither the JSON report nor pytest-xdist's transport can carry it, so the
            check fails here, naming it, instead of crashing the session later.
    """
    for text, what in ((name, "name"), (group, "name=")):
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(
                    f"{kind} check {what} {text!r} is not valid Unicode text: it holds the "
                    f"lone surrogate {text[exc.start]!r} (often a byte mis-decoded with "
                    f"errors='surrogateescape'); rename it") from None
    record = CheckRecord(
        kind=kind,
        nodeid=_active.nodeid,
        name=name,
        verdict=verdict,
        values=dict(values or {}),
        message=message,
        group=group,
    )
    if _active.sink is not None:
        _active.sink.append(record)
    return record


def suite_hash(nodeids: Iterable[str]) -> str:
    """Return the SHA-256 of a set of test node ids (sorted, one per line).

    The report records it for the suite as collected, so merged shard reports can
    tell whether together they ran every collected test.

    Args:
        nodeids: Test node ids.

    Returns:
        The hex digest; equal for equal sets whatever their order.
    """
    import hashlib

    text = "\n".join(sorted(set(nodeids)))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def summarize(records: Iterable[CheckRecord]) -> dict[str, int]:
    """Count records by verdict, lower-cased (``ok``, ``improved``, ``regressed``...)."""
    counts: dict[str, int] = {}
    for r in records:
        key = r.verdict.lower()
        counts[key] = counts.get(key, 0) + 1
    return counts


def write_json_report(path: str, records: list[CheckRecord], environment: dict[str, str],
                      extra: dict[str, Any] | None = None) -> None:
    """Write the JSON report atomically (temp file, then ``os.replace``).

    Schema (version :data:`SCHEMA_VERSION`)::

        {"schema_version": 1, "tool": "pytest-mlcheck", "environment": {...},
         "summary": {"total": N, "<verdict>": n, ...},
         "records": [{"kind", "nodeid", "name", "group", "verdict", "values", "message"}],
         ...extra}
    """
    payload: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": "pytest-mlcheck",
        "environment": dict(environment),
        "summary": {"total": len(records), **summarize(records)},
        "records": [r.to_json() for r in records],
    }
    if extra:
        payload.update(_jsonable(extra))
    text = json.dumps(payload, indent=2, sort_keys=False) + "\n"
    atomic_write_bytes(os.path.abspath(path), text.encode("utf-8"))
