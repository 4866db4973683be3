"""The ``shape_invariants`` fixture class: the shape checks, recorded for one test."""

from __future__ import annotations

from typing import Any

from .checks import check_shapes
from .dependence import assert_batch_independent, assert_batch_invariant, assert_causal


class ShapeInvariants:
    """The ``shape_invariants`` fixture: shape, batch and causality checks for one test.

    Its methods are the plain functions: ``check`` is :func:`check_shapes`,
    ``batch_independence`` is :func:`assert_batch_independent`, ``batch_invariance``
    is :func:`assert_batch_invariant` and ``causality`` is :func:`assert_causal`;
    every call adds a ``shape`` record to the session report.

    Args:
        request: The pytest fixture request of the test.
    """

    check = staticmethod(check_shapes)
    batch_independence = staticmethod(assert_batch_independent)
    batch_invariance = staticmethod(assert_batch_invariant)
    causality = staticmethod(assert_causal)

    def __init__(self, request: Any) -> None:
        self.request = request
