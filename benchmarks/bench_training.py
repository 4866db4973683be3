"""What does each train_invariants check cost, compared with the plain training it wraps?

Peer: the same work written by hand without any check, measured in the same run with
the same thread setting: plain SGD steps for ``check_step``, the same ``step_fn`` over
the same batches for ``check_training_loop``, 200 plain Adam steps for
``check_overfit`` (the check stops early once the target is reached), and two plain
calls of the evaluation for ``check_eval``. Each time is the median of ``--repeats``
runs after one warm-up run.

Usage::

    .venv/bin/python benchmarks/bench_training.py [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from pytest_mlcheck.training import (
    assert_eval_clean,
    assert_overfits,
    assert_training_loop,
    assert_trains,
)


class SmallConvNet(nn.Module):
    """Conv/BatchNorm feature extractor, dropout, linear head (as in the example)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits.

        Args:
            x: Images of shape (B, 1, 8, 8).

        Returns:
            Logits of shape (B, 4).
        """
        return self.head(self.dropout(self.features(x).flatten(1)))


def mlp() -> nn.Module:
    """Return a 32-64-64-10 ReLU MLP.

    Returns:
        The model.
    """
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                         nn.Linear(64, 10))


def loss_fn(model: nn.Module, batch) -> torch.Tensor:
    """Return the cross-entropy of the model on a batch.

    Args:
        model: The model.
        batch: ``(inputs, labels)``.

    Returns:
        The scalar loss.
    """
    return F.cross_entropy(model(batch[0]), batch[1])


def step_fn(model: nn.Module, optimizer, batch) -> torch.Tensor:
    """Take one plain training step.

    Args:
        model: The model.
        optimizer: Its optimizer.
        batch: ``(inputs, labels)``.

    Returns:
        The loss.
    """
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model, batch)
    loss.backward()
    optimizer.step()
    return loss


def median_time(fn, repeats: int) -> float:
    """Return the median wall time of ``fn()`` over ``repeats`` runs after a warm-up.

    Args:
        fn: What to time.
        repeats: How many timed runs.

    Returns:
        Seconds.
    """
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_steps(model, batch, steps, make_opt):
    """Train a copy of the model on one batch for some steps, without checks.

    Args:
        model: The model (copied).
        batch: The batch.
        steps: How many steps.
        make_opt: The optimizer factory.
    """
    plain_loop(model, [batch] * steps, make_opt)


def plain_loop(model, batches, make_opt):
    """Train a copy of the model one step per batch, without checks.

    Args:
        model: The model (copied).
        batches: The batches.
        make_opt: The optimizer factory.
    """
    clone = copy.deepcopy(model)
    opt = make_opt(clone.parameters())
    for batch in batches:
        step_fn(clone, opt, batch)


def evaluate(model, x):
    """Return the model's outputs in eval mode without autograd.

    Args:
        model: The model.
        x: The inputs.

    Returns:
        The outputs.
    """
    model.eval()
    with torch.no_grad():
        return model(x)


def bench(name: str, model: nn.Module, batch, batches, repeats: int) -> list[tuple]:
    """Time each check and its peer on one model.

    Args:
        name: The model's label in the table.
        model: The model.
        batch: One batch.
        batches: Batches for the training loop.
        repeats: Timed runs per measurement.

    Returns:
        Table rows.
    """
    sgd = lambda ps: torch.optim.SGD(ps, lr=0.1)  # noqa: E731
    adam = lambda ps: torch.optim.Adam(ps, lr=1e-2)  # noqa: E731
    rows = []
    overfit = assert_overfits(model, loss_fn, batch)
    cases = [
        ("check_step (1 step)", lambda: assert_trains(model, loss_fn, batch),
         "1 plain SGD step", lambda: plain_steps(model, batch, 1, sgd)),
        (f"check_training_loop ({len(batches)} batches)",
         lambda: assert_training_loop(step_fn, model, sgd, batches),
         f"{len(batches)} plain steps", lambda: plain_loop(model, batches, sgd)),
        (f"check_overfit ({overfit['steps_run']} steps to target)",
         lambda: assert_overfits(model, loss_fn, batch),
         f"{overfit['steps_run']} plain Adam steps",
         lambda: plain_steps(model, batch, overfit["steps_run"], adam)),
        ("check_eval", lambda: assert_eval_clean(model, evaluate, model, batch[0]),
         "2 plain eval calls", lambda: [evaluate(model, batch[0]) for _ in range(2)] and None),
    ]
    for check, fn, peer, peer_fn in cases:
        t_check = median_time(fn, repeats)
        t_peer = median_time(peer_fn, repeats)
        rows.append((name, check, t_check * 1e3, peer, t_peer * 1e3, t_check / t_peer))
    return rows


def main() -> None:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for the peer (the checks always use 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    mlp_batch = (torch.randn(32, 32, generator=g), torch.randint(0, 10, (32,), generator=g))
    mlp_batches = [(torch.randn(32, 32, generator=g), torch.randint(0, 10, (32,), generator=g))
                   for _ in range(8)]
    cnn_batch = (torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 4, (16,), generator=g))
    cnn_batches = [(torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 4, (16,), generator=g))
                   for _ in range(8)]
    rows = bench("MLP 32-64-64-10, batch 32", mlp(), mlp_batch, mlp_batches, args.repeats)
    rows += bench("CNN+BN 8x8, batch 16", SmallConvNet(), cnn_batch, cnn_batches, args.repeats)
    print(f"torch {torch.__version__}, peer threads {args.threads}, median of {args.repeats}")
    print("| model | check | check ms | peer | peer ms | ratio |")
    print("|---|---|---:|---|---:|---:|")
    for model, check, t_check, peer, t_peer, ratio in rows:
        print(f"| {model} | {check} | {t_check:.2f} | {peer} | {t_peer:.2f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
