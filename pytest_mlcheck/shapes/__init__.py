"""Shape invariants: symbolic shape specs, batch independence, batch invariance, causality.

Plain functions that work without pytest, plus the :class:`ShapeInvariants` fixture class:

* :func:`assert_shape` checks one array or tensor against a spec such as ``"B T C"``
  and returns the bindings (``{"B": 4, "T": 3, "C": 32}``).
* :func:`check_shapes` generates inputs from specs over many sizes, calls ``fn`` and
  checks every output against its spec, with names shared between inputs and outputs.
* :func:`assert_batch_independent` proves output row ``i`` depends only on input row ``i``.
* :func:`assert_batch_invariant` proves a sample's output does not depend on the batch
  it is computed in.
* :func:`assert_causal` proves output step ``t`` depends on no input step after ``t``.

The package is split by concern:

* :mod:`.spec`: the grammar, :class:`Spec`, :func:`assert_shape` (see its docstring);
* :mod:`.generation`: generated inputs, the backend inferred from what ``fn`` reaches;
* :mod:`.checks`: :func:`check_shapes`;
* :mod:`.dependence`: batch independence, batch invariance and causality;
* :mod:`.fixture`: the ``shape_invariants`` fixture class.
"""

from __future__ import annotations

from .checks import check_shapes
from .dependence import assert_batch_independent, assert_batch_invariant, assert_causal
from .fixture import ShapeInvariants
from .spec import Spec, assert_shape

__all__ = ["Spec", "ShapeInvariants", "assert_batch_independent", "assert_batch_invariant",
           "assert_causal", "assert_shape", "check_shapes"]
