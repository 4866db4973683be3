"""The ``shape_invariants`` fixture class: the shape checks, recorded for one test."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .checks import check_shapes
from .dependence import assert_batch_independent, assert_batch_invariant, assert_causal


class ShapeInvariants:
    """The ``shape_invariants`` fixture: shape, batch and causality checks for one test.

    Each method is also a plain function (:func:`check_shapes`,
    :func:`assert_batch_independent`, :func:`assert_batch_invariant`,
    :func:`assert_causal`); every call adds a ``shape`` record to the session report.

    Args:
        request: The pytest fixture request of the test.
    """

    def __init__(self, request: Any) -> None:
        self.request = request

    def check(self, fn: Any, inputs: Any, output: Any, *, dims: Mapping[str, Any] | None = None,
              vary: Mapping[str, Sequence[Any]] | None = None,
              backend: str | None = None) -> None:
        """Check ``fn``'s output shapes over many generated input sizes (see :func:`check_shapes`).

        Args:
            fn: A function or ``nn.Module``.
            inputs: Input specs (a spec, or a sequence or mapping of them).
            output: The output spec, or a tuple/list/dict of them with None to skip.
            dims: Fixed sizes by name.
            vary: Per name, the sizes to try.
            backend: ``"numpy"`` or ``"torch"``; by default inferred from what ``fn`` reaches.
        """
        check_shapes(fn, inputs, output, dims=dims, vary=vary, backend=backend)

    def batch_independence(self, fn: Any, input: Any, *, dims: Mapping[str, Any] | None = None,
                           batch_dim: int = 0, atol: float = 0.0, backend: str | None = None,
                           rows: int | None = None, method: str = "auto") -> None:
        """Check output row ``i`` depends only on input row ``i`` (:func:`assert_batch_independent`).

        Args:
            fn: A function or ``nn.Module``.
            input: Input specs.
            dims: Fixed sizes by name.
            batch_dim: The batch axis.
            atol: The largest tolerated cross-row gradient or change.
            backend: ``"numpy"`` or ``"torch"``; by default inferred from what ``fn`` reaches.
            rows: How many rows to check; default all up to 8.
            method: ``"auto"``, ``"autograd"`` or ``"perturbation"``.
        """
        assert_batch_independent(fn, input, dims=dims, batch_dim=batch_dim, atol=atol,
                                 backend=backend, rows=rows, method=method)

    def batch_invariance(self, fn: Any, input: Any, *, dims: Mapping[str, Any] | None = None,
                         batch_sizes: Sequence[int] = (1, 4), atol: float = 1e-6,
                         rtol: float = 1e-5, batch_dim: int = 0,
                         backend: str | None = None) -> None:
        """Check outputs do not depend on the batch size (see :func:`assert_batch_invariant`).

        Args:
            fn: A function or ``nn.Module``.
            input: Input specs.
            dims: Fixed sizes by name.
            batch_sizes: At least two batch sizes to compare.
            atol: Absolute tolerance.
            rtol: Relative tolerance.
            batch_dim: The batch axis.
            backend: ``"numpy"`` or ``"torch"``; by default inferred from what ``fn`` reaches.
        """
        assert_batch_invariant(fn, input, dims=dims, batch_sizes=batch_sizes, atol=atol,
                               rtol=rtol, batch_dim=batch_dim, backend=backend)

    def causality(self, fn: Any, input: Any, *, dims: Mapping[str, Any] | None = None,
                  time_dim: int = 1, atol: float = 0.0, backend: str | None = None,
                  method: str = "auto") -> None:
        """Check output step ``t`` sees no input after ``t`` (see :func:`assert_causal`).

        Args:
            fn: A function or ``nn.Module``.
            input: Input specs.
            dims: Fixed sizes by name.
            time_dim: The time axis.
            atol: The largest tolerated dependence on the future.
            backend: ``"numpy"`` or ``"torch"``; by default inferred from what ``fn`` reaches.
            method: ``"auto"``, ``"autograd"`` or ``"perturbation"``.
        """
        assert_causal(fn, input, dims=dims, time_dim=time_dim, atol=atol, backend=backend,
                      method=method)
