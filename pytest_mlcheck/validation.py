"""Argument checks shared by every public function, and the words their messages use.

Every check family validates its arguments here, so the same mistake gets the same
answer everywhere:

* a number is an ``int``, ``float`` or numpy scalar (``np.float32(1e-6)``,
  ``np.int64(3)``), never a ``bool`` (``True`` as a tolerance is a bug, not 1);
* a wrong type raises ``TypeError`` and a wrong value ``ValueError``, both in one shape:
  ``"<check>: <argument> must be <requirement>, got <type> (<value>)"`` with a hint
  where one helps;
* :func:`fn_name` names a function, model or partial the same way in every message,
  and :func:`format_value` shows a value the same way.

Nothing here imports torch (a tensor is recognised through ``sys.modules``).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .arrays import is_module, is_tensor

#: Seeds are what numpy's legacy global RNG accepts.
SEED_LIMIT = 2**32


def describe(value: Any) -> str:
    """Return ``"<type> (<repr>)"`` for a rejected value, the repr cut to 60 characters.

    Args:
        value: Any object.

    Returns:
        The text.
    """
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} ({text})"


def format_value(value: Any, digits: int = 9) -> str:
    """Return a value as messages show it: numpy scalars as Python numbers, long floats cut.

    Args:
        value: A number, numpy scalar or any object.
        digits: Significant digits of a float whose ``repr`` is longer than 12 characters.

    Returns:
        ``repr`` of the value, ``0.1`` for 0.1, ``0.333333333`` for 1/3, ``-`` for ``None``.
    """
    if value is None:
        return "-"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        text = repr(value)
        return text if math.isfinite(value) and len(text) <= 12 else f"{value:.{digits}g}"
    return repr(value)


def format_number(value: Any, digits: int = 3) -> str:
    """Return a number in ``digits`` significant digits (``-`` for ``None``), for tables.

    Args:
        value: A number or ``None``.
        digits: Significant digits of a float.

    Returns:
        The text.
    """
    if value is None:
        return "-"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}g}"
    return str(value)


def fn_name(fn: Any) -> str:
    """Return how messages name a function: a model's class, a function's local name.

    Args:
        fn: A function, bound method, ``functools.partial``, ``nn.Module`` or other callable.

    Returns:
        ``Classifier`` for a module, ``Model.predict`` for a bound method,
        ``partial(score)`` for a partial, the qualified name without ``<locals>``
        (a lambda keeps it: ``test_x.<locals>.<lambda>``).
    """
    if is_module(fn):
        return type(fn).__name__
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if not isinstance(name, str) and hasattr(fn, "func"):  # functools.partial
        return f"partial({fn_name(fn.func)})"
    if isinstance(name, str):
        # A lambda is only findable through the function it is written in.
        return name if name.endswith("<lambda>") else name.split("<locals>.")[-1]
    return type(fn).__name__


def _where(check: str) -> str:
    return f"{check}: " if check else ""


def is_number(value: Any) -> bool:
    """Return whether ``value`` is a real number: int, float or numpy scalar, not bool.

    Args:
        value: Any object.

    Returns:
        Whether it counts as a number for our arguments.
    """
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (numbers.Real, np.integer, np.floating))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _requirement(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{_num(low)}, {_num(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {_num(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {_num(high)}"
    return ""


@dataclasses.dataclass(frozen=True)
class _Range:
    """The allowed values of a numeric argument, and the words for them."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None
                    and (value > self.high or (self.high_open and value == self.high)))

    def raise_for(self, value: Any, name: str, what: str, check: str, hint: str,
                  typed: bool) -> None:
        """Raise TypeError (``typed`` False: wrong type) or ValueError for a rejected value."""
        want = f"{what} {_requirement(self.low, self.high, self.low_open, self.high_open)}"
        tail = f"; {hint}" if hint else ""
        if not typed:
            raise TypeError(f"{_where(check)}{name} must be {want.rstrip()}, got "
                            f"{describe(value)}{tail}")
        raise ValueError(f"{_where(check)}{name} must be {want.rstrip()}, got {value!r}{tail}")


def number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, check: str = "",
           hint: str = "") -> float:
    """Return a finite real number argument as a float, or raise naming the argument.

    Args:
        value: The argument.
        name: Its name in the message.
        low: The smallest allowed value, if any.
        high: The largest allowed value, if any.
        low_open: Whether ``low`` itself is excluded.
        high_open: Whether ``high`` itself is excluded.
        check: The public function or fixture method, as the message's prefix.
        hint: A sentence appended to the message.

    Returns:
        The value as a float.

    Raises:
        TypeError: Not a number (a bool is not one).
        ValueError: Not finite, or outside the range.
    """
    allowed = _Range(low, high, low_open, high_open)
    if not is_number(value):
        allowed.raise_for(value, name, "a finite number", check, hint, typed=False)
    out = float(value)
    if not math.isfinite(out) or not allowed.holds(out):
        allowed.raise_for(value, name, "a finite number", check, hint, typed=True)
    return out


def integer(value: Any, name: str, *, low: int | None = None, high: int | None = None,
            high_open: bool = False, check: str = "", hint: str = "") -> int:
    """Return an integer argument (a Python or numpy int, not a bool), or raise naming it.

    Args:
        value: The argument.
        name: Its name in the message.
        low: The smallest allowed value, if any.
        high: The largest allowed value, if any.
        high_open: Whether ``high`` itself is excluded.
        check: The public function or fixture method, as the message's prefix.
        hint: A sentence appended to the message.

    Returns:
        The value as an int.

    Raises:
        TypeError: Not an int (``2.0`` and ``True`` are not).
        ValueError: Outside the range.
    """
    allowed = _Range(low, high, False, high_open)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        allowed.raise_for(value, name, "an int", check, hint, typed=False)
    out = int(value)
    if not allowed.holds(out):
        allowed.raise_for(out, name, "an int", check, hint, typed=True)
    return out


def integers(value: Any, name: str, *, low: int | None = None, check: str = "") -> list[int]:
    """Return a sequence of ints (each checked like :func:`integer`), or raise naming it.

    Args:
        value: A sequence or range of ints.
        name: Its name in the message; an element is named ``name[i]``.
        low: The smallest allowed element, if any.
        check: The public function or fixture method, as the message's prefix.

    Returns:
        The ints, in order.

    Raises:
        TypeError: Not a sequence of ints.
        ValueError: An element below ``low``.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{_where(check)}{name} must be a sequence of ints, got {describe(value)}")
    return [integer(v, f"{name}[{i}]", low=low, check=check) for i, v in enumerate(value)]


def tolerance(value: Any, name: str = "atol", *, check: str = "") -> float:
    """Return a tolerance (a finite number >= 0), or raise naming the argument.

    Args:
        value: The argument.
        name: ``atol``, ``rtol`` or a more specific name.
        check: The public function or fixture method, as the message's prefix.

    Returns:
        The tolerance as a float.

    Raises:
        TypeError: Not a number.
        ValueError: Negative, NaN or infinite.
    """
    return number(value, name, low=0, check=check)


def seed(value: Any, name: str = "seed", *, check: str = "") -> int:
    """Return a seed (an int in ``[0, 2**32)``), or raise naming the argument.

    Args:
        value: The argument.
        name: Its name in the message.
        check: The public function or fixture method, as the message's prefix.

    Returns:
        The seed as an int.

    Raises:
        TypeError: Not an int.
        ValueError: Negative or too large for numpy's global RNG.
    """
    out = integer(value, name, check=check, hint="seeds are ints in [0, 2**32)")
    if not 0 <= out < SEED_LIMIT:  # numpy's legacy global RNG takes no other seed
        raise ValueError(f"{_where(check)}{name} must be in [0, 2**32), got {out}")
    return out


def seeds(value: Any, name: str = "seeds", *, minimum: int = 2, check: str = "") -> list[int]:
    """Return distinct seeds, at least ``minimum`` of them, or raise naming the argument.

    Args:
        value: A sequence (or range) of ints.
        name: Its name in the message.
        minimum: How many different seeds the check needs.
        check: The public function or fixture method, as the message's prefix.

    Returns:
        The seeds as a list of ints.

    Raises:
        TypeError: Not a sequence of ints.
        ValueError: Empty, too few, repeated or out-of-range seeds.
    """
    where = _where(check)
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{where}{name} must be a sequence of ints such as (0, 1), "
                        f"got {describe(value)}")
    out = [seed(s, f"{name}[{i}]", check=check) for i, s in enumerate(value)]
    if not out:
        raise ValueError(f"{where}{name} is empty: pass at least {minimum} different seeds, "
                         f"e.g. {name}={tuple(range(max(minimum, 2)))}")
    if len(set(out)) != len(out):
        raise ValueError(f"{where}{name} must all differ, got {tuple(out)}")
    if len(out) < minimum:
        raise ValueError(f"{where}{name} needs at least {minimum} different seeds to compare, "
                         f"got {tuple(out)}")
    return out


def names(value: Any, name: str, *, what: str = "names", allow_empty: bool = True,
          check: str = "") -> tuple[str, ...]:
    """Return one string or a sequence of non-empty strings as a tuple, or raise naming it.

    Args:
        value: ``None`` (no names), a string (one name) or an iterable of strings.
        name: The argument's name in the message.
        what: What the strings are (``metric names or glob patterns``, ``facets``).
        allow_empty: Whether no names at all is allowed.
        check: The public function or fixture method, as the message's prefix.

    Returns:
        The names.

    Raises:
        TypeError: Not strings.
        ValueError: An empty string, or no names where some are needed.
    """
    where = _where(check)
    if value is None:
        out: tuple = ()
    elif isinstance(value, str):
        out = (value,)
    elif isinstance(value, Iterable) and not isinstance(value, (bytes, dict)):
        out = tuple(value)
    else:
        raise TypeError(f"{where}{name} must be {what} (a str or a sequence of str), "
                        f"got {describe(value)}")
    for item in out:
        if not isinstance(item, str):
            raise TypeError(f"{where}{name} must hold {what} (str), got {describe(item)}")
        if not item:
            raise ValueError(f"{where}{name} holds an empty string; give {what}")
    if not out and not allow_empty:
        raise ValueError(f"{where}{name} is empty: give at least one of the {what}")
    return out


def function(value: Any, name: str = "fn", *, check: str = "", signature: str = "") -> Callable:
    """Return a callable argument, or raise a ``TypeError`` that says what to pass.

    Args:
        value: The argument.
        name: Its name in the message.
        check: The public function or fixture method, as the message's prefix.
        signature: The expected call, e.g. ``(model, batch) -> loss``.

    Returns:
        The callable.

    Raises:
        TypeError: Not callable; the message suggests passing the function, not its result.
    """
    if callable(value):
        return value
    sig = f" {signature}" if signature else ""
    result = " (a tensor: did you pass the function's result instead of the function?)" \
        if is_tensor(value) else ""
    raise TypeError(f"{_where(check)}{name} must be a callable{sig}, got "
                    f"{describe(value)}{result}; pass the function itself, not its result")


def choice(value: Any, name: str, options: Sequence[Any], *, check: str = "") -> Any:
    """Return ``value`` when it is one of ``options``, else raise ``ValueError`` listing them.

    Args:
        value: The argument.
        name: Its name in the message.
        options: The allowed values.
        check: The public function or fixture method, as the message's prefix.

    Returns:
        The value.

    Raises:
        ValueError: Not one of the options.
    """
    # Type and value both: True is not 1 and 1 is not True here.
    if any(value is o or (type(value) is type(o) and value == o) for o in options):
        return value
    listed = ", ".join(repr(o) for o in options)
    raise ValueError(f"{_where(check)}{name} must be one of {listed}, got {value!r}")
