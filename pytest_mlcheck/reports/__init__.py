"""Reading JSON reports (``--mlcheck-report``), comparing two, and merging shards.

* :func:`load_report` reads and validates one report against the versioned JSON
  Schema shipped beside this module (``report-v1.schema.json``) and rejects a report
  of a newer major version with a message that says to upgrade;
* :mod:`.compare` answers "what did this change (an upgrade, another machine, another
  seed) do to my checks?";
* :mod:`.merge` joins the reports of a suite split across CI jobs into one.

The command line is ``python -m pytest_mlcheck {compare,merge,prune}``.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from ..report import SCHEMA_VERSION

#: The schema file of the version this package writes.
SCHEMA_FILE = f"report-v{SCHEMA_VERSION}.schema.json"


class ReportError(Exception):
    """A report that cannot be read, or is not one this version understands."""


@functools.lru_cache(maxsize=1)
def report_schema() -> dict[str, Any]:
    """Return the JSON Schema of the report version this package writes.

    Returns:
        The schema, as parsed JSON.
    """
    from importlib import resources

    text = resources.files(__name__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def _path_of(error: Any) -> str:
    parts = "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]"
                    for p in error.absolute_path)
    return parts or "the top level"


def validate_report(data: Any, source: str) -> dict[str, Any]:
    """Check a parsed report: its version first, then the schema.

    Args:
        data: The parsed JSON.
        source: Where it came from, as shown to people.

    Returns:
        The report, unchanged.

    Raises:
        ReportError: Not a pytest-mlcheck report, a newer major version, or a value that
            breaks the schema; the message names the file and the key.
    """
    if not isinstance(data, dict) or data.get("tool") != "pytest-mlcheck":
        raise ReportError(f"{source} is not a pytest-mlcheck report (no \"tool\": "
                          f"\"pytest-mlcheck\" at the top level)")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ReportError(f"{source}: schema_version is {version!r}, expected an integer >= 1")
    if version > SCHEMA_VERSION:
        raise ReportError(
            f"{source} was written by a newer pytest-mlcheck (report schema version "
            f"{version}); this version reads schema version {SCHEMA_VERSION} only. Upgrade "
            f"pytest-mlcheck (pip install -U pytest-mlcheck) to read it.")
    try:
        import jsonschema
    except ImportError:  # optional: the checks above and the readers' own checks still run
        for key, kind in (("records", list), ("environment", dict), ("summary", dict)):
            if not isinstance(data.get(key), kind):
                raise ReportError(f"{source}: {key!r} is missing or not a JSON "
                                  f"{'array' if kind is list else 'object'}")
        return data
    validator = jsonschema.Draft202012Validator(report_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        raise ReportError(f"{source} does not match the report schema (version "
                          f"{SCHEMA_VERSION}) at {_path_of(error)}: {error.message}")
    return data


def load_report(path: str | Path) -> dict[str, Any]:
    """Read and validate one JSON report.

    Args:
        path: The report file.

    Returns:
        The report.

    Raises:
        ReportError: The file is missing, not JSON, or not a valid report this version
            reads; the message names the file and why.
    """
    source = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ReportError(f"cannot read report {source}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ReportError(f"{source} is not UTF-8 text (byte offset {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ReportError(f"{source} is not JSON: {exc.msg} at line {exc.lineno}, column "
                          f"{exc.colno}") from None
    return validate_report(data, source)


__all__ = ["SCHEMA_FILE", "ReportError", "load_report", "report_schema", "validate_report"]
