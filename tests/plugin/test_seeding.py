"""Seeding API and the --mlcheck per-test seeding guard (order, selection, leaks, pytest-randomly)."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from pytest_mlcheck.seeding import DEFAULT_BASE_SEED, derive_seed, seed_everything, seeded

try:  # imported before pytester snapshots sys.modules (see test_guards.py)
    import torch
    import torch._dynamo  # noqa: F401
except ImportError:  # pragma: no cover - numpy-only environments
    torch = None

RUN = ("-p", "no:cacheprovider", "--mlcheck", "-s")

# Each test prints what it draws from every global RNG (and, with torch, from torch).
DRAWS = """
import random
import numpy as np
import pytest

try:
    import torch
except ImportError:
    torch = None


def draw(name):
    t = int(torch.randint(2**31, ())) if torch is not None else -1
    print(f"DRAW {name} {random.getrandbits(31)} {np.random.randint(2**31)} {t}")


def test_a():
    draw("a")


def test_b():
    draw("b")
    np.random.seed(42)  # a test that reseeds or drains the RNGs must not affect the others
    random.seed(42)
    np.random.rand(1000)
    if torch is not None:
        torch.manual_seed(42)


def test_c():
    draw("c")


@pytest.mark.parametrize("k", [1, 2])
def test_p(k):
    draw(f"p{k}")
"""

REVERSE = """
def pytest_collection_modifyitems(items):
    items.reverse()
"""


def _draws(result) -> dict[str, tuple[int, int, int]]:
    out = {}
    for line in result.stdout.lines:
        m = re.search(r"DRAW (\w+) (\d+) (\d+) (-?\d+)", line)
        if m:
            out[m.group(1)] = tuple(int(g) for g in m.groups()[1:])
    return out


def _expected(base: int, nodeid: str) -> tuple[int, int, int]:
    seed = derive_seed(base, nodeid)
    t = -1
    if torch is not None:
        g = torch.Generator().manual_seed(seed)
        t = int(torch.randint(2**31, (), generator=g))
    return random.Random(seed).getrandbits(31), np.random.RandomState(seed).randint(2**31), t


# ---- plain functions ---------------------------------------------------------------------


def test_seed_everything_seeds_every_global_rng():
    seed_everything(123)
    a = (random.random(), np.random.rand(), float(torch.rand(())) if torch is not None else 0.0)
    seed_everything(123)
    b = (random.random(), np.random.rand(), float(torch.rand(())) if torch is not None else 0.0)
    assert a == b
    assert a[1] == np.random.RandomState(123).rand()


def test_seeded_restores_the_previous_states():
    np.random.seed(5)
    random.seed(5)
    expected = (np.random.RandomState(5).rand(), random.Random(5).random())
    np.random.seed(5)
    random.seed(5)
    with seeded(0) as seed:
        assert seed == 0
        inside = np.random.rand()
    assert inside == np.random.RandomState(0).rand()
    assert (np.random.rand(), random.random()) == expected


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (2**32, ValueError), (1.5, TypeError),
                                         (True, TypeError), ("3", TypeError)])
def test_seed_everything_rejects_bad_seeds(seed, error):
    with pytest.raises(error, match="seed must"):
        seed_everything(seed)


def test_derive_seed_depends_only_on_base_and_nodeid():
    assert derive_seed(1, "t.py::a") == derive_seed(1, "t.py::a")
    assert derive_seed(1, "t.py::a") != derive_seed(1, "t.py::b")
    assert derive_seed(1, "t.py::a") != derive_seed(2, "t.py::a")
    assert 0 <= derive_seed(DEFAULT_BASE_SEED, "x") < 2**32


# ---- per-test seeding in sessions --------------------------------------------------------


def test_seeds_do_not_depend_on_order_or_selection_and_do_not_leak(pytester):
    pytester.makepyfile(test_draws=DRAWS)
    full = _draws(pytester.runpytest(*RUN))
    assert sorted(full) == ["a", "b", "c", "p1", "p2"]
    assert full["a"] == _expected(DEFAULT_BASE_SEED, "test_draws.py::test_a")
    assert full["p2"] == _expected(DEFAULT_BASE_SEED, "test_draws.py::test_p[2]")
    assert len(set(full.values())) == 5  # every test gets its own seed

    subset = _draws(pytester.runpytest(*RUN, "test_draws.py::test_c", "test_draws.py::test_p[2]"))
    assert subset == {"c": full["c"], "p2": full["p2"]}  # test_b (which reseeds) did not run

    pytester.makeconftest(REVERSE)
    reversed_run = pytester.runpytest(*RUN, "-v")
    reversed_run.stdout.fnmatch_lines(["*test_p?2?*", "*test_p?1?*", "*test_c*", "*test_b*", "*test_a*"])
    assert _draws(reversed_run) == full

    other_base = _draws(pytester.runpytest(*RUN, "--mlcheck-seed=7", "-k", "test_a"))
    assert other_base == {"a": _expected(7, "test_draws.py::test_a")}


def test_session_leaves_the_callers_rng_state_alone(pytester):
    pytester.makepyfile(test_draws=DRAWS)
    np.random.seed(11)
    random.seed(11)
    expected = (np.random.RandomState(11).rand(), random.Random(11).random())
    np.random.seed(11)
    random.seed(11)
    pytester.runpytest(*RUN).assert_outcomes(passed=5)
    assert (np.random.rand(), random.random()) == expected


def test_failing_test_shows_its_seed_and_a_command_that_reproduces_it(pytester):
    pytester.makepyfile(test_fail="""
        import numpy as np

        def test_unlucky():
            value = np.random.rand()
            print(f"VALUE={value!r}")
            assert value < 0
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "--mlcheck", "--mlcheck-seed=99")
    result.assert_outcomes(failed=1)
    seed = derive_seed(99, "test_fail.py::test_unlucky")
    result.stdout.fnmatch_lines([
        "*mlcheck: *; base seed 99",
        "*- mlcheck -*",
        f"seed {seed} (base seed 99, from --mlcheck-seed); reproduce with:",
        "  pytest 'test_fail.py::test_unlucky' --mlcheck --mlcheck-seed=99",
    ])
    first = re.search(r"VALUE=([0-9.e-]+)", result.stdout.str()).group(1)
    again = pytester.runpytest("test_fail.py::test_unlucky", "-p", "no:cacheprovider", "--mlcheck",
                               "--mlcheck-seed=99")
    assert re.search(r"VALUE=([0-9.e-]+)", again.stdout.str()).group(1) == first
    assert float(first) == np.random.RandomState(seed).rand()


def test_no_seeding_without_the_flag(pytester):
    pytester.makepyfile(test_draws=DRAWS)
    result = pytester.runpytest("-p", "no:cacheprovider", "-s", "-k", "test_a or test_c")
    draws = _draws(result)
    assert draws["a"] != _expected(DEFAULT_BASE_SEED, "test_draws.py::test_a")
    assert "base seed" not in result.stdout.str()


# ---- pytest-randomly -----------------------------------------------------------------------

# A stand-in for pytest-randomly, registered under the same plugin name ("randomly"), with
# the same options and reseeding points (random and numpy before setup, call and teardown,
# from --randomly-seed), and a shuffled (here: reversed) order.
FAKE_RANDOMLY = """
import random
import numpy as np


def pytest_addoption(parser):
    group = parser.getgroup("randomly")
    group.addoption("--randomly-seed", dest="randomly_seed", type=int, default=4242)
    group.addoption("--randomly-dont-reset-seed", dest="randomly_reset_seed",
                    action="store_false", default=True)


def _reseed(config, offset):
    if config.getoption("randomly_reset_seed"):
        seed = config.getoption("randomly_seed") + offset
        random.seed(seed)
        np.random.seed(seed)


def pytest_collection_modifyitems(items):
    items.reverse()


def pytest_runtest_setup(item):
    _reseed(item.config, -1)


def pytest_runtest_call(item):
    _reseed(item.config, 0)


def pytest_runtest_teardown(item):
    _reseed(item.config, 1)
"""


def test_with_pytest_randomly_it_owns_random_and_numpy_and_its_seed_is_the_base(pytester):
    pytester.makepyfile(randomly=FAKE_RANDOMLY, test_draws=DRAWS)
    pytester.syspathinsert()
    result = pytester.runpytest(*RUN, "-p", "randomly", "--randomly-seed=7", "-k", "test_a or test_c")
    result.stdout.fnmatch_lines(["*base seed 7 (from pytest-randomly's --randomly-seed)"])
    draws = _draws(result)
    for name in ("a", "c"):
        ours = _expected(7, f"test_draws.py::test_{name}")
        assert draws[name][:2] == (random.Random(7).getrandbits(31), np.random.RandomState(7).randint(2**31))
        assert draws[name][2] == ours[2]  # torch: pytest-randomly does not seed it, we do

    pinned = _draws(pytester.runpytest(*RUN, "-p", "randomly", "--randomly-seed=7", "--mlcheck-seed=5",
                                       "-k", "test_a"))
    assert pinned["a"][2] == _expected(5, "test_draws.py::test_a")[2]

    dont_reset = _draws(pytester.runpytest(*RUN, "-p", "randomly", "--randomly-dont-reset-seed",
                                           "-k", "test_a"))
    assert dont_reset["a"] == _expected(DEFAULT_BASE_SEED, "test_draws.py::test_a")


def test_with_pytest_randomly_the_failure_shows_both_seeds(pytester):
    pytester.makepyfile(randomly=FAKE_RANDOMLY, test_fail="""
        def test_fails():
            assert False
    """)
    pytester.syspathinsert()
    result = pytester.runpytest("-p", "no:cacheprovider", "--mlcheck", "-p", "randomly",
                                "--randomly-seed=31")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"seed {derive_seed(31, 'test_fail.py::test_fails')} (base seed 31, from --randomly-seed); "
        "reproduce with:",
        "  pytest 'test_fail.py::test_fails' --mlcheck -p randomly --randomly-seed=31",
        "*pytest-randomly is active: it seeds random and numpy itself, pytest-mlcheck seeds torch*",
    ])


def test_seeding_works_without_torch(pytester, numpy_only):
    pytester.makepyfile(test_draws=DRAWS)
    result = numpy_only(*RUN, "-k", "test_a or test_b")
    result.assert_outcomes(passed=2)
    draws = _draws(result)
    seed = derive_seed(DEFAULT_BASE_SEED, "test_draws.py::test_a")
    assert draws["a"] == (random.Random(seed).getrandbits(31), np.random.RandomState(seed).randint(2**31), -1)


@pytest.mark.parametrize("seed", [0, 123, 2**32 - 1])
def test_guard_fast_seeding_matches_seed_everything(seed):
    """The per-test guard's faster torch seeding must draw exactly what seed_everything does."""
    torch = pytest.importorskip("torch")
    from pytest_mlcheck import guards

    def draws():
        return (random.random(), float(np.random.rand()), torch.rand(3).tolist(),
                torch.initial_seed())

    with seeded(0):
        seed_everything(seed)
        expected = draws()
        guards._seed_everything_fast(seed)
        got = draws()
    assert got == expected
    assert expected[3] == seed
