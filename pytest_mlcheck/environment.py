"""The environment: which Python, numpy, torch, CUDA, GPU and platform ran a check.

This is the one place that describes an environment. Baselines record it
(:func:`recording_environment`) so a reviewer can tell whether a changed metric comes
from the code or from the machine; a failure says how the recording environment
differs from this one (:func:`environment_note`); the report header and the JSON report
show it (:func:`describe`, :func:`fingerprint`); ``env=`` keys baseline variants by
some of its :data:`FACETS`.

Cost: importing this module imports nothing heavy. :func:`fingerprint` imports torch
only when it is installed and the fingerprint is asked for (the ``--mlcheck`` header,
the end of the session), and :func:`recording_environment` never imports it: when no
test imported torch, the values come from torch's package files.

On a machine with a visible CUDA device the fingerprint adds the CUDA driver, cuDNN,
the GPU name and compute capability, and whether TF32 and deterministic algorithms
are on: the settings behind most CPU/GPU and GPU/GPU drift. These keys are absent
elsewhere, so CPU baselines never change because a GPU machine exists.
"""

from __future__ import annotations

import functools
import importlib.util
import platform
import sys
from typing import Any

#: The facets a baseline can be keyed by (``env=("device",)``).
FACETS = ("python", "numpy", "torch", "cuda", "device", "platform")

#: Keys the fingerprint adds when a CUDA device is visible (see :func:`cuda_facts`).
CUDA_KEYS = ("cuda_driver", "cudnn", "gpu", "compute_capability", "tf32", "deterministic")


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
        info.update(cuda_facts(torch))
    return info


def cuda_facts(torch: Any) -> dict[str, str]:
    """Return the CUDA facts of the current machine, or ``{}`` without a visible CUDA device.

    Args:
        torch: The imported torch module (or a stand-in with the same attributes).

    Returns:
        ``device`` (``cuda:<GPU name>``) and the :data:`CUDA_KEYS` that could be read:
        ``cuda_driver`` (``12.4``), ``cudnn`` (``9.1.0``), ``gpu``,
        ``compute_capability`` (``9.0``), ``tf32`` (``matmul on, cudnn on``) and
        ``deterministic`` (``off``, ``on`` or ``warn-only``).
    """
    try:
        if not torch.cuda.is_available():
            return {}
        name = str(torch.cuda.get_device_name(0))
    except Exception:  # a broken driver must not break the test session
        return {}
    facts = {"device": "cuda:" + name, "gpu": name}
    readers = {
        "compute_capability": lambda: ".".join(map(str, torch.cuda.get_device_capability(0))),
        "cuda_driver": lambda: _driver_text(torch._C._cuda_getDriverVersion()),
        "cudnn": lambda: _cudnn_text(torch.backends.cudnn.version()),
        "tf32": lambda: (f"matmul {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}, "
                         f"cudnn {'on' if torch.backends.cudnn.allow_tf32 else 'off'}"),
        "deterministic": lambda: ("off" if not torch.are_deterministic_algorithms_enabled() else
                                  "warn-only" if torch.is_deterministic_algorithms_warn_only_enabled()
                                  else "on"),
    }
    for key, read in readers.items():
        try:
            value = read()
        except Exception:  # an older or odd build lacks one reader: leave that key out
            continue
        if value is not None and value != "None":
            facts[key] = str(value)
    return facts


def _driver_text(number: Any) -> str:
    # The driver API reports 12040 for CUDA 12.4.
    n = int(number)
    return f"{n // 1000}.{n % 1000 // 10}"


def _cudnn_text(number: Any) -> str | None:
    # cuDNN 9 reports 90100 for 9.1.0; cuDNN 8 reported 8902 for 8.9.2.
    if number is None:
        return None
    n = int(number)
    major, rest = divmod(n, 10000) if n >= 10000 else divmod(n, 1000)
    minor, patch = divmod(rest, 100)
    return f"{major}.{minor}.{patch}"


def tf32_enabled() -> bool:
    """Return whether torch may use TF32 for float32 matmuls or convolutions right now.

    Read fresh on every call (a test may switch it); ``False`` without torch or CUDA.

    Returns:
        Whether TF32 is on for matmul or cuDNN.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    try:
        if not torch.cuda.is_available():
            return False
        return bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)
    except Exception:
        return False


#: The ``device`` of :func:`header_environment` when nothing has imported torch yet.
NOT_PROBED = "not probed"


def header_environment() -> dict[str, str]:
    """Return the environment the session header shows, never importing torch for it.

    ``import torch`` costs about a second of CPU. The header is printed before any test
    module is imported, and the pytest-xdist controller never imports one, so the full
    :func:`fingerprint` is shown only when something (a conftest) already imported torch,
    or when torch is not installed. Otherwise torch's version and CUDA build come from
    its package files and ``device`` is :data:`NOT_PROBED`; the end-of-run summary then
    names the device the tests ran on.

    Returns:
        The facets of :func:`fingerprint`.
    """
    if sys.modules.get("torch") is not None or not torch_installed():
        return dict(fingerprint())
    return dict(recording_environment(), device=NOT_PROBED)


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
    device = info.get("device", "?")
    parts.append("device not probed yet (torch not imported)" if device == NOT_PROBED
                 else f"device {device}")
    if "compute_capability" in info:
        parts[-1] += f" (sm {info['compute_capability']})"
    for key, label in (("cuda_driver", "driver"), ("cudnn", "cuDNN"), ("tf32", "TF32"),
                       ("deterministic", "deterministic algorithms")):
        if key in info:
            parts.append(f"{label} {info[key]}")
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


def recording_environment() -> dict[str, str]:
    """Return the environment a baseline entry records, without importing torch for it.

    When the test process has imported torch (or torch is not installed) this is the
    full fingerprint. When torch is installed but nothing imported it, the values came
    from numpy on the CPU: torch's version and CUDA build are read from its package
    files, the device is ``cpu``, and the seconds of ``import torch`` are saved.

    Returns:
        The facets ``python, numpy, torch, cuda, device, platform``, plus the CUDA
        keys on a GPU machine.
    """
    if sys.modules.get("torch") is not None or not torch_installed():
        return dict(fingerprint())
    if _PACKAGE_ENV:
        return dict(_PACKAGE_ENV[0])
    import importlib.metadata
    import re

    import numpy as np

    info = {"python": platform.python_version(), "numpy": np.__version__, "torch": "none",
            "cuda": "none", "device": "cpu", "platform": f"{sys.platform}-{platform.machine()}"}
    try:
        info["torch"] = importlib.metadata.version("torch").split("+")[0]
        spec = importlib.util.find_spec("torch")
        folder = (spec.submodule_search_locations or [None])[0] if spec else None
        if folder:
            with open(f"{folder}/version.py", encoding="utf-8") as fh:
                match = re.search(r"^cuda(?:: [^=]+)? = '([^']+)'", fh.read(), re.M)
            if match:
                info["cuda"] = match.group(1)
    except Exception:  # an odd install: the full fingerprint is always right
        return dict(fingerprint())
    _PACKAGE_ENV.append(info)
    return dict(info)


#: recording_environment's reading of torch's package files (it does not change).
_PACKAGE_ENV: list[dict[str, str]] = []


def environment_note(recorded: Any) -> list[str]:
    """Return a line saying how a baseline's recording environment differs from this one.

    Args:
        recorded: The entry's ``recorded_in`` table (facet to value), or ``None``.

    Returns:
        One line naming each differing facet with both values, or ``[]`` when the
        environments agree (or nothing was recorded).
    """
    if not isinstance(recorded, dict) or not recorded:
        return []
    now = recording_environment()
    diffs = [f"{k} {recorded[k]} (now {now.get(k, 'none')})"
             for k in recorded if str(recorded[k]) != now.get(k, "none")]
    if not diffs:
        return []
    return ["the baseline was recorded in a different environment: " + ", ".join(diffs)
            + "; the difference may come from there rather than from the code."]
