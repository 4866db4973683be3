"""Overhead of the ``--mlcheck`` session guards on a realistic torch test suite.

Question: how much slower does a suite of small torch tests get with ``--mlcheck``
(per-test seeding and RNG restore, the non-finite module hooks, the warnings guard)?
The peer is the same suite, same process setup, without ``--mlcheck``.

Method:

1. Generate a suite of ``--tests`` tests (default 240). Each builds a small MLP
   (Linear/LayerNorm/GELU/Dropout blocks, 11 module calls per forward), runs three
   training steps (forward, cross-entropy, backward, AdamW step) on a 32x64 batch, and
   one eval forward; some tests are classes of a parametrized family, like a real suite.
2. Run it ``--repeats`` times with and without ``--mlcheck``, alternating, each in a
   fresh ``python -m pytest`` process. A tiny plugin records the time of pytest's test
   loop (``pytest_runtestloop``), which excludes interpreter start-up and the torch
   import; the process wall time is reported too. Ratios of the minima (the least disturbed
   run on a shared machine) and of the medians.
3. Microbenchmark the non-finite hook: forwards of the same MLP (batch 32, one torch
   thread) with and without :class:`pytest_mlcheck.guards.NonFiniteGuard` installed,
   with autograd on, reported per forward and per module call.
4. Time a ``torch.compile``-d forward of that MLP with and without the guard, and count
   the compiled graphs before and after: the guard must not slow or recompile a graph.

Run: ``.venv/bin/python benchmarks/bench_guards.py [--tests 240] [--repeats 3]
[--no-compile] [--compile-backend inductor]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

SUITE = '''
import pytest
import torch
from torch import nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, width)
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        return x + self.drop(F.gelu(self.fc(self.norm(x))))


class MLP(nn.Module):
    def __init__(self, width=64, classes=10):
        super().__init__()
        self.inp = nn.Linear(64, width)
        self.blocks = nn.Sequential(Block(width), Block(width))
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        return self.head(self.blocks(self.inp(x)))


def train_steps(model, steps=3):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return loss.item()


@pytest.mark.parametrize("case", range({n}))
def test_train_and_eval(case):
    model = MLP()
    loss = train_steps(model)
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(16, 64))
    assert logits.shape == (16, 10) and loss == loss
'''

TIMER = '''
import json, os, time
import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session):
    start = time.perf_counter()
    try:
        return (yield)
    finally:
        with open(os.environ["BENCH_TIMER_OUT"], "w") as fh:
            json.dump({"loop_s": time.perf_counter() - start}, fh)
'''


def run_suite(directory: str, mlcheck: bool) -> tuple[float, float]:
    """Run the generated suite once in a fresh pytest process.

    Args:
        directory: Where the suite and the timer plugin were written.
        mlcheck: Whether to pass ``--mlcheck``.

    Returns:
        ``(test loop seconds, process wall seconds)``.
    """
    out = os.path.join(directory, "timer.json")
    env = dict(os.environ, BENCH_TIMER_OUT=out, PYTHONPATH=directory)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           "-p", "bench_timer", "-o", "addopts=", "test_suite.py"] + (["--mlcheck"] if mlcheck else [])
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=directory, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"suite failed ({'with' if mlcheck else 'without'} --mlcheck):\n"
                         + proc.stdout[-3000:] + proc.stderr[-3000:])
    with open(out) as fh:
        return json.load(fh)["loop_s"], wall


def hook_microbenchmark(forwards: int) -> dict[str, float]:
    """Time forwards of the suite's MLP with and without the non-finite guard's hooks.

    Args:
        forwards: Timed forwards per measurement (five measurements each, medians).

    Returns:
        Microseconds per forward with and without the hooks, and the cost per module call.
    """
    import torch

    from pytest_mlcheck.guards import NonFiniteGuard

    # One intra-op thread: on a shared 2-core machine, thread-pool contention otherwise
    # dominates the timing of a forward this small.
    torch.set_num_threads(1)
    namespace: dict = {}
    exec(SUITE.replace("{n}", "1"), namespace)
    model = namespace["MLP"]()
    x = torch.randn(32, 64)
    calls = sum(1 for _ in model.modules())  # every module runs once per forward here

    def timed() -> float:
        for _ in range(50):
            model(x)
        start = time.perf_counter()
        for _ in range(forwards):
            model(x)
        return (time.perf_counter() - start) / forwards

    plain, guarded = [], []
    for _ in range(5):
        plain.append(timed())
        guard = NonFiniteGuard(torch, seed=0)
        try:
            guarded.append(timed())
        finally:
            guard.remove()
    p, g = statistics.median(plain), statistics.median(guarded)
    return {"forward_plain_us": p * 1e6, "forward_guarded_us": g * 1e6,
            "hook_cost_per_forward_us": (g - p) * 1e6, "module_calls_per_forward": calls,
            "hook_cost_per_module_call_us": (g - p) * 1e6 / calls, "forward_ratio": g / p}


def compiled_microbenchmark(forwards: int, backend: str = "inductor") -> dict[str, float]:
    """Time a ``torch.compile``-d forward of the suite's MLP with and without the guard.

    The guard must neither slow a compiled graph nor make it recompile: the graph count
    after the guarded rounds is compared with the count after the first compilation.

    Args:
        forwards: Timed calls per measurement (five measurements each, medians).
        backend: The ``torch.compile`` backend (``inductor`` needs a C compiler).

    Returns:
        Microseconds per compiled call with and without the guard, and the graph counts.
    """
    import torch
    from torch._dynamo.utils import counters

    from pytest_mlcheck.guards import NonFiniteGuard

    torch.set_num_threads(1)
    namespace: dict = {}
    exec(SUITE.replace("{n}", "1"), namespace)
    model = namespace["MLP"]()
    x = torch.randn(32, 64)
    compiled = torch.compile(lambda t: model(t).softmax(-1), backend=backend)
    compiled(x)
    graphs = counters["stats"]["unique_graphs"]

    def timed() -> float:
        for _ in range(20):
            compiled(x)
        start = time.perf_counter()
        for _ in range(forwards):
            compiled(x)
        return (time.perf_counter() - start) / forwards

    plain, guarded = [], []
    for _ in range(5):
        plain.append(timed())
        guard = NonFiniteGuard(torch, seed=0)
        try:
            guarded.append(timed())
        finally:
            guard.remove()
    p, g = statistics.median(plain), statistics.median(guarded)
    return {"compiled_plain_us": p * 1e6, "compiled_guarded_us": g * 1e6, "ratio": g / p,
            "graphs_before": graphs, "graphs_after": counters["stats"]["unique_graphs"]}


def main() -> None:
    """Run the suite comparison and the hook microbenchmark, and print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=240)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--forwards", type=int, default=300)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile timing")
    parser.add_argument("--compile-backend", default="inductor")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, "test_suite.py"), "w") as fh:
            fh.write(textwrap.dedent(SUITE.replace("{n}", str(args.tests))))
        with open(os.path.join(directory, "bench_timer.py"), "w") as fh:
            fh.write(TIMER)
        run_suite(directory, False)  # warm the file system cache and bytecode
        loops = {False: [], True: []}
        walls = {False: [], True: []}
        for _ in range(args.repeats):
            for flag in (False, True):
                loop, wall = run_suite(directory, flag)
                loops[flag].append(loop)
                walls[flag].append(wall)
    print(f"suite: {args.tests} tests, {args.repeats} runs each")
    for stat in (min, statistics.median):  # min: the least disturbed run on a shared machine
        base_loop, ml_loop = stat(loops[False]), stat(loops[True])
        base_wall, ml_wall = stat(walls[False]), stat(walls[True])
        print(f" {stat.__name__}:")
        print(f"  test loop   without {base_loop:.2f}s  with --mlcheck {ml_loop:.2f}s  "
              f"ratio {ml_loop / base_loop:.3f}x")
        print(f"  process     without {base_wall:.2f}s  with --mlcheck {ml_wall:.2f}s  "
              f"ratio {ml_wall / base_wall:.3f}x")
        print(f"  per test    {1e3 * (ml_loop - base_loop) / args.tests:+.2f} ms")
    micro = hook_microbenchmark(args.forwards)
    print(f"non-finite hook: forward {micro['forward_plain_us']:.0f} us -> "
          f"{micro['forward_guarded_us']:.0f} us ({micro['forward_ratio']:.2f}x); "
          f"+{micro['hook_cost_per_forward_us']:.0f} us per forward of "
          f"{micro['module_calls_per_forward']} module calls = "
          f"{micro['hook_cost_per_module_call_us']:.1f} us per module call")
    if not args.no_compile:
        comp = compiled_microbenchmark(args.forwards, args.compile_backend)
        print(f"torch.compile ({args.compile_backend}): call {comp['compiled_plain_us']:.0f} us -> "
              f"{comp['compiled_guarded_us']:.0f} us with the guard ({comp['ratio']:.2f}x); graphs "
              f"{comp['graphs_before']} before, {comp['graphs_after']} after the guarded rounds")


if __name__ == "__main__":
    main()
