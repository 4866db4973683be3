"""Documentation rules (MLC1xx): missing docstrings and docstrings that drifted from the code.

The family's options are declared here (:data:`OPTIONS`); the rules live in this
package's modules and register themselves on import:

* :mod:`.missing` MLC101-MLC103 (missing docstrings), :mod:`.coverage` MLC130;
* :mod:`.params` MLC110-MLC112, :mod:`.defaults` MLC113, :mod:`.types` MLC114;
* :mod:`.returns` MLC120, MLC121; :mod:`.shapes` MLC150;
* :mod:`.readme` MLC140, MLC141 (README and docs code blocks); :mod:`.raises` MLC160-MLC162.

Every per-file rule reads one shared analysis of the file (:mod:`.analysis`), built from
CPython's ``ast`` once per file through ``ctx.cache``; none needs a libcst tree, and
fixes are text edits computed from ``ast`` positions.
"""

from __future__ import annotations

import re

from ...api import Option


def _percentage(value: float) -> str | None:
    return None if 0 <= value <= 100 else f"{value!r} is not a percentage between 0 and 100"


def _package_names(names: tuple[str, ...]) -> str | None:
    bad = [n for n in names if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", n)]
    return f"{bad[0]!r} is not a package name" if bad else None


OPTIONS = (
    Option("docstring-convention", str, "auto", choices=("google", "numpy", "sphinx", "auto"),
           doc="The docstring convention: `google`, `numpy`, `sphinx`, or `auto` to detect it "
               "per docstring."),
    Option("docstring-coverage", float, 80.0, check=_percentage,
           doc="Minimum project docstring coverage in percent (MLC130), 0-100."),
    Option("public-api", str, "auto", choices=("auto", "underscore", "all"),
           doc="What counts as public: `auto` (`__all__` when a module defines it, else names "
               "without a leading underscore in modules whose path has none), `underscore` "
               "(ignore `__all__`) or `all` (every name)."),
    Option("packages", tuple, (), check=_package_names,
           doc="The project's own top-level packages, for the README rules (MLC140, MLC141); "
               "detected from pyproject.toml and the folders when not given."),
)

# The rules register themselves on import; one module per concern.
from . import coverage, defaults, missing, params, raises, readme, returns, shapes, types  # noqa: E402,F401
