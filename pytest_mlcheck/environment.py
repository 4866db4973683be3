"""The environment fingerprint: which Python, numpy, torch, CUDA, device and platform ran a check.

Baselines record it so a reviewer can tell whether a changed metric comes from the
code or from the machine, and `env=` keys baseline variants by some of its facets.
Reading it never imports torch unless torch is already imported or installed and asked for.
"""

from __future__ import annotations

import functools
import importlib.util
import platform
import sys

#: The facets a baseline can be keyed by (``env=("device",)``).
FACETS = ("python", "numpy", "torch", "cuda", "device", "platform")


def torch_installed() -> bool:
    """Return whether torch can be imported, without importing it."""
    if "torch" in sys.modules:
        return sys.modules["torch"] is not None
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


@functools.lru_cache(maxsize=1)
def fingerprint() -> dict[str, str]:
    """Return the environment facets as strings (``"none"`` where a library is absent).

    The result is cached: the environment does not change within a process.
    """
    import numpy

    info = {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": "none",
        "cuda": "none",
        "device": "cpu",
        "platform": f"{sys.platform}-{platform.machine()}",
    }
    if torch_installed():
        import torch

        info["torch"] = torch.__version__.split("+")[0]
        if torch.version.cuda:
            info["cuda"] = str(torch.version.cuda)
        try:
            if torch.cuda.is_available():
                info["device"] = "cuda:" + torch.cuda.get_device_name(0)
        except Exception:  # a broken driver must not break the test session
            pass
    return info


def describe(info: dict[str, str] | None = None) -> str:
    """Return a one-line human description of a fingerprint."""
    info = fingerprint() if info is None else info
    parts = [f"python {info.get('python', '?')}", f"numpy {info.get('numpy', '?')}"]
    torch_v = info.get("torch", "none")
    if torch_v != "none":
        cuda = info.get("cuda", "none")
        parts.append(f"torch {torch_v}" + (f" (CUDA {cuda})" if cuda != "none" else " (CPU)"))
    else:
        parts.append("torch not installed")
    parts.append(f"device {info.get('device', '?')}")
    parts.append(f"platform {info.get('platform', '?')}")
    return ", ".join(parts)


def select(facets: tuple[str, ...] | list[str], info: dict[str, str] | None = None) -> dict[str, str]:
    """Return the chosen facets of a fingerprint; raise ``ValueError`` naming an unknown facet."""
    info = fingerprint() if info is None else info
    unknown = [f for f in facets if f not in FACETS]
    if unknown:
        raise ValueError(
            f"unknown environment facet(s) {unknown}; choose from {list(FACETS)}"
        )
    return {f: info.get(f, "none") for f in facets}
