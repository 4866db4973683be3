"""Where baselines live and how entries are named: file paths, entry keys, array file names.

Nothing here reads or writes a file. Test ids and metric names only ever reach a
file name through a hash, so no name can point outside the baseline directory.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import re
from pathlib import Path
from typing import Any

#: The group of a ``check`` call without ``name=``.
DEFAULT_GROUP = "default"

#: An array file name we write: ``<module stem>-<16 hex digits>.npz``.
NPZ_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*-[0-9a-f]{16}\.npz")

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def local_id(nodeid: str) -> str:
    """Return a test's id inside its module (``TestX::test_a[1]``), the key of its table.

    Args:
        nodeid: The pytest node id.

    Returns:
        The part after the module path, or the whole id when it has none.
    """
    return nodeid.split("::", 1)[1] if "::" in nodeid else nodeid


def module_of(nodeid: str, rootdir: str) -> Path:
    """Return the absolute path of the module a node id belongs to.

    Args:
        nodeid: The pytest node id (relative to the rootdir).
        rootdir: The session's rootdir.

    Returns:
        The module path, normalised.
    """
    return Path(os.path.normpath(os.path.join(rootdir, nodeid.split("::", 1)[0])))


def baseline_path(module: Path, rootdir: str, baseline_dir: str) -> Path:
    """Return the baseline file of a test module.

    Args:
        module: The test module's path.
        rootdir: The session's rootdir.
        baseline_dir: The ini value ``mlcheck_baseline_dir`` ("" for the default).

    Returns:
        ``<module dir>/mlcheck_baselines/<stem>.toml``, or with ``baseline_dir`` set,
        ``<rootdir>/<baseline_dir>/<module dir relative to rootdir>/<stem>.toml``.
    """
    module = Path(os.path.normpath(str(module)))
    if baseline_dir:
        rel = os.path.relpath(str(module.parent), rootdir)
        base = Path(os.path.normpath(os.path.join(rootdir, baseline_dir)))
        if rel == ".":
            return base / f"{module.stem}.toml"
        if not rel.startswith(".."):
            return base / rel / f"{module.stem}.toml"
    return module.parent / "mlcheck_baselines" / f"{module.stem}.toml"


def module_for_baseline(path: Path, rootdir: str, baseline_dir: str) -> Path:
    """Return the test module a baseline file belongs to (inverse of :func:`baseline_path`).

    Args:
        path: The baseline file.
        rootdir: The session's rootdir.
        baseline_dir: The ini value ``mlcheck_baseline_dir``.

    Returns:
        The path of the module, which may no longer exist.
    """
    if baseline_dir:
        base = Path(os.path.normpath(os.path.join(rootdir, baseline_dir)))
        try:
            rel = path.parent.relative_to(base)
            return Path(rootdir) / rel / f"{path.stem}.py"
        except ValueError:
            pass
    return path.parent.parent / f"{path.stem}.py"


def relative_to_root(path: Path | str, rootdir: str) -> str:
    """Return ``path`` relative to the rootdir when it is inside it, as shown to people.

    Args:
        path: Any path.
        rootdir: The session's rootdir.

    Returns:
        The relative path, or the path unchanged when it lies outside the rootdir.
    """
    try:
        rel = os.path.relpath(str(path), rootdir)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


def array_file_name(stem: str, key: tuple[str, str, str], content: bytes = b"") -> str:
    """Return the ``.npz`` file name of an array entry: the module stem and a hash.

    The hash covers the entry key and the array's content, so a re-recorded array
    gets a new name: the TOML file that names it is committed after the array is
    written, and the old array stays intact until then.

    Args:
        stem: The baseline file's stem (the test module's name).
        key: The entry key ``(test id, group, variant)``.
        content: The array's identity (dtype, shape and bytes); empty for a name
            that depends on the key only.

    Returns:
        A plain file name, never a path: ids and names only enter through the hash.
    """
    digest = hashlib.sha256("\0".join(key).encode("utf-8", "surrogatepass"))
    digest.update(content)
    return f"{stem}-{digest.hexdigest()[:16]}.npz"


def array_identity(array: Any) -> bytes:
    """Return the bytes that identify a numpy array's content: dtype, shape and data.

    Args:
        array: A numpy array.

    Returns:
        Bytes equal for equal arrays (same dtype, shape and elements).
    """
    import numpy as np

    arr = np.ascontiguousarray(array)
    head = f"{arr.dtype.str}|{list(arr.shape)}|".encode("ascii")
    return head + arr.tobytes()


def variant_key(facets: dict[str, str]) -> str:
    """Return the key of an environment variant, e.g. ``device=cpu, torch=2.13.0``.

    Args:
        facets: The chosen environment facets and their values.

    Returns:
        The key ("" when no facet is chosen).
    """
    return ", ".join(f"{k}={v}" for k, v in facets.items())


def parse_variant(key: str) -> dict[str, str]:
    """Return the facets of a variant key made by :func:`variant_key`.

    Args:
        key: The variant key.

    Returns:
        The facets as a dict.
    """
    out: dict[str, str] = {}
    for part in key.split(", ") if key else ():
        name, _, value = part.partition("=")
        out[name] = value
    return out


def toml_key(key: str) -> str:
    """Return a TOML key: bare when it can be, else a quoted basic string.

    Args:
        key: Any string.

    Returns:
        The key as TOML text.
    """
    return key if _BARE_KEY.fullmatch(key) else toml_string(key)


def toml_string(text: str) -> str:
    """Return a TOML basic string for ``text`` (JSON escaping, plus DEL).

    Args:
        text: Any string.

    Returns:
        The quoted string.
    """
    import json

    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


@functools.lru_cache(maxsize=4096)  # pure; each check shows its entry's label twice
def entry_label(key: tuple[str, str, str]) -> str:
    """Return how an entry is shown to people: its TOML table header.

    Args:
        key: The entry key ``(test id, group, variant)``.

    Returns:
        For example ``[test_acc.default]`` or ``["test_a[1]".eval.variants."device=cpu"]``.
    """
    test, group, variant = key
    parts = [toml_key(test), toml_key(group)]
    if variant:
        parts += ["variants", toml_key(variant)]
    return "[" + ".".join(parts) + "]"


def glob_match(name: str, patterns: Any) -> bool:
    """Return whether a metric name matches any of the names or glob patterns.

    Args:
        name: The metric name.
        patterns: Names or ``fnmatch`` globs.

    Returns:
        Whether one matches (case-sensitive).
    """
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)
