"""Comparing environment markers by what they mean, not how they are written.

uv writes ``python_full_version >= '3.11'`` where the project wrote
``python_version >= "3.11"``; both select the same interpreters. Two markers are taken
as equivalent when they agree on every environment of a grid of Python versions,
platforms, machines, implementations and extras: offline, no resolver.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable

_PYTHONS = [f"3.{minor}" for minor in range(6, 16)]
_PLATFORMS = [("linux", "Linux", "posix"), ("win32", "Windows", "nt"), ("darwin", "Darwin", "posix")]
_MACHINES = ["x86_64", "aarch64", "arm64", "AMD64"]
_IMPLEMENTATIONS = [("cpython", "CPython"), ("pypy", "PyPy")]


def environments(extras: Iterable[str] = (), groups: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Return the grid of environments markers are evaluated on.

    Args:
        extras: Extra names to try (each alone, and none).
        groups: Dependency group names to try (each alone, and none).

    Returns:
        Marker environments (``packaging.markers`` keys, plus ``extras`` and
        ``dependency_groups`` sets for PEP 751 markers).
    """
    out = []
    extra_choices = [""] + sorted(set(extras))
    group_choices = [""] + sorted(set(groups))
    for python, (platform, system, osname), machine, (impl, impl_name), extra, group in itertools.product(
            _PYTHONS, _PLATFORMS, _MACHINES, _IMPLEMENTATIONS, extra_choices, group_choices):
        out.append({
            "python_version": python, "python_full_version": python + ".1",
            "sys_platform": platform, "platform_system": system, "os_name": osname,
            "platform_machine": machine, "implementation_name": impl,
            "platform_python_implementation": impl_name, "implementation_version": python + ".1",
            "platform_release": "", "platform_version": "",
            "extra": extra, "extras": frozenset({extra} - {""}),
            "dependency_groups": frozenset({group} - {""}),
        })
    return out


def evaluate(marker: Any, env: dict[str, Any]) -> bool | None:
    """Evaluate a marker in one environment; ``None`` when packaging cannot.

    Args:
        marker: A ``packaging.markers.Marker`` or ``None`` (always true).
        env: One environment of :func:`environments`.

    Returns:
        The truth value, or ``None`` for a marker this packaging version cannot
        evaluate (``extras`` / ``dependency_groups`` need packaging 25+).
    """
    if marker is None:
        return True
    try:
        return bool(marker.evaluate(env))
    except Exception:
        try:
            plain = {k: v for k, v in env.items() if k not in ("extras", "dependency_groups")}
            return bool(marker.evaluate(plain))
        except Exception:
            return None


def differences(declared: Any, locked: Any, envs: list[dict[str, Any]]) -> tuple[int, int]:
    """Count environments where only one of two markers holds.

    Args:
        declared: The declared marker (``None`` = always).
        locked: The locked marker (``None`` = always).
        envs: The environments.

    Returns:
        ``(declared but not locked, locked but not declared)``; an environment that
        cannot be evaluated counts as agreement.
    """
    missing = extra = 0
    for env in envs:
        a, b = evaluate(declared, env), evaluate(locked, env)
        if a is None or b is None:
            continue
        if a and not b:
            missing += 1
        elif b and not a:
            extra += 1
    return missing, extra
