"""What does batch_independence cost, and how does it scale with the batch size?

Models: a 1.05M-parameter MLP (512 -> 1024 -> 512) and a small pre-norm transformer
block (width 128, 4 heads, T=32; 198k parameters).

Every time is reported as a ratio to one plain forward pass of the same model on the
same batch, measured in the same run (the peer), so the numbers survive noisy machines.
Compared:

* autograd path (the default for float inputs): 1 forward + 1 backward per checked row;
* perturbation path (``method="perturbation"``, the path for token ids and numpy):
  2 baseline forwards + 1 forward per checked row;
* the naive full Jacobian (``torch.autograd.functional.jacobian``, vectorised), the
  O(B^2) way to prove the same property, at small batches only.

Usage:
    .venv/bin/python benchmarks/bench_batch_independence.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from pytest_mlcheck import assert_batch_independent
from pytest_mlcheck.report import activate, deactivate


class Block(nn.Module):
    """A pre-norm transformer block with causal attention."""

    def __init__(self, width: int = 128, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x):
        """Return the block's output for ``x`` of shape (B, T, C).

        Args:
            x: The input sequence.

        Returns:
            A tensor of the same shape.
        """
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(c, dim=-1)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        att = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.norm2(x))


def mlp() -> nn.Module:
    """Return the 1.05M-parameter MLP (512 -> 1024 -> 512).

    Returns:
        The model.
    """
    return nn.Sequential(nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 512))


def best_of(fn, repeat: int) -> float:
    """Return the fastest of ``repeat`` runs after one warm-up (the least disturbed by noise).

    Args:
        fn: What to time.
        repeat: How many timed runs.

    Returns:
        Seconds.
    """
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def forward_time(model: nn.Module, shape: tuple, repeat: int) -> float:
    """Return the time of one no-grad forward pass, the unit of every ratio.

    Args:
        model: The model.
        shape: The input shape.
        repeat: How many timed runs.

    Returns:
        Seconds.
    """
    x = torch.randn(shape)

    def run():
        with torch.no_grad():
            model(x)

    return best_of(run, repeat)


def check_time(model, spec, dims, repeat, **kwargs) -> tuple[float, int]:
    """Return the check's time and its passes (backward, or forward when perturbing).

    Args:
        model: The model.
        spec: The input spec.
        dims: Fixed sizes.
        repeat: How many timed runs.
        **kwargs: More arguments of ``assert_batch_independent``.

    Returns:
        Seconds and the number of passes.
    """
    sink: list = []
    activate("bench", sink)
    try:
        seconds = best_of(lambda: assert_batch_independent(model, spec, dims=dims, **kwargs),
                          repeat)
    finally:
        deactivate()
    values = sink[-1].values
    return seconds, values["backward_passes"] or values["forward_passes"]


def jacobian_time(model, shape, repeat) -> float:
    """Return the time of the naive proof: the full Jacobian and its off-diagonal blocks.

    Args:
        model: The model.
        shape: The input shape.
        repeat: How many timed runs.

    Returns:
        Seconds.
    """
    x = torch.randn(shape)
    b = shape[0]

    def run():
        jac = torch.autograd.functional.jacobian(model, x, vectorize=True)
        # The property: every off-diagonal (output row i, input row j) block is zero.
        blocks = jac.reshape(b, -1, b, x[0].numel()).abs().amax(dim=(1, 3))
        return bool((blocks - torch.diag(torch.diagonal(blocks))).eq(0).all())

    return best_of(run, repeat)


def main() -> None:
    """Print the cost table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer batch sizes and repeats")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)  # one thread: shared CI-like machines are less noisy
    repeat = 3 if args.quick else 5
    models = {
        "MLP 1.05M": (mlp().eval(), "B C", {"C": 512}, lambda b: (b, 512)),
        "transformer block": (Block().eval(), "B T C", {"T": 32, "C": 128},
                              lambda b: (b, 32, 128)),
    }
    for name, (model, *_rest) in models.items():
        params = sum(p.numel() for p in model.parameters())
        print(f"{name}: {params:,} parameters")
    print()
    print("cost as a ratio to one forward pass of the same batch (passes in brackets)")
    print("autograd = default path, checks 8 rows: 1 forward + 8 backward passes at any B;")
    print("perturb = method='perturbation', 8 rows: 2 + 8 forward passes;")
    print("all rows = autograd with rows=B (B backward passes: O(B^2) work);")
    print("jacobian = torch.autograd.functional.jacobian(vectorize=True), the naive peer.")
    header = f"{'model':<18} {'B':>4} {'forward ms':>10} {'autograd':>14} " \
             f"{'perturb':>14} {'all rows':>15} {'jacobian':>9}"
    print(header)
    print("-" * len(header))
    batches = (8, 32, 128) if args.quick else (8, 32, 128, 512)

    def cell(result, fwd):
        seconds, passes = result
        return f"{seconds / fwd:7.1f} ({passes:>3})"

    for name, (model, spec, dims, shape_of) in models.items():
        for b in batches:
            shape = shape_of(b)
            fwd = forward_time(model, shape, 4 * repeat)
            d = {**dims, "B": b}
            auto = check_time(model, spec, d, repeat)
            pert = check_time(model, spec, d, repeat, method="perturbation")
            every = check_time(model, spec, d, 1, rows=b) if b <= 128 else None
            # The full Jacobian holds (B * 512)^2 floats: only the smallest batch fits.
            jac = jacobian_time(model, shape, 1) if (b == 8 and name.startswith("MLP")) \
                else float("nan")
            print(f"{name:<18} {b:>4} {fwd * 1e3:>10.2f} {cell(auto, fwd):>14} "
                  f"{cell(pert, fwd):>14} {cell(every, fwd) if every else '-':>15} "
                  f"{jac / fwd:>9.1f}")


if __name__ == "__main__":
    main()
