"""pytest-mlcheck: catch silent ML bugs in tests.

The public plain-function API is importable from here, lazily: importing
``pytest_mlcheck`` (which pytest does at start-up through the plugin) never imports
torch, hypothesis or libcst, nor any check family, until a name is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# name -> submodule that defines it. Each check family owns its own lines.
_LAZY = {
    # seeding
    "seed_everything": "seeding",
    "seeded": "seeding",
    "derive_seed": "seeding",
    # report
    "CheckRecord": "report",
    # determinism
    "assert_deterministic": "determinism",
    "assert_seed_invariant": "determinism",
    "assert_seed_sensitive": "determinism",
    # shapes
    "assert_shape": "shapes",
    "Spec": "shapes",
    "check_shapes": "shapes",
    "assert_batch_independent": "shapes",
    "assert_batch_invariant": "shapes",
    "assert_causal": "shapes",
    # training
    "assert_trains": "training",
    "assert_training_loop": "training",
    "assert_overfits": "training",
    "assert_eval_clean": "training",
    # leakage
    "assert_no_leakage": "leakage",
    "assert_no_label_leakage": "leakage",
    "assert_no_duplicates": "leakage",
    # budgets
    "measure_resources": "budget",
    "assert_param_budget": "budget",
    # devices
    "assert_device_consistent": "devices",
    "assert_training_device_consistent": "devices",
    # comparison core (the module pytest_mlcheck.compare holds compare() itself)
    "diff_trees": "compare",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        if name == "strategies":
            return importlib.import_module("pytest_mlcheck.strategies")
        raise AttributeError(f"module 'pytest_mlcheck' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pytest_mlcheck.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
