"""MLC204: torch, torchvision and torchaudio that do not belong together; CUDA builds.

The release table is data (``data/torch_family.toml``), so a new release is one row.
Versions are compared per minor release: torchvision 0.16.* goes with torch 2.1.*.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Iterable

from ... import manifests
from ...api import Finding, register
from ...manifests import DeclaredRequirement
from . import common

FAMILY = ("torch", "torchvision", "torchaudio")
TABLE_PATH = Path(__file__).parent / "data" / "torch_family.toml"
_LOCAL = re.compile(r"^(cu\d+|cpu|rocm[\d.]+|xpu)$")
_PUBLIC = ("pypi.org", "pythonhosted.org")


@functools.lru_cache(maxsize=1)
def release_table() -> list[dict[str, str]]:
    """Return the torch family release table (one dict per torch minor release).

    Returns:
        Rows with ``torch``, ``torchvision`` and, where known, ``torchaudio`` minors.

    Raises:
        ValueError: The data file is malformed (a row without ``torch``).
    """
    from ...manifests.pyproject import load_toml_text

    data, error = load_toml_text(TABLE_PATH.read_text(encoding="utf-8"))
    if data is None:
        raise ValueError(f"{TABLE_PATH}: not valid TOML: {error}")
    rows = data.get("release", [])
    for row in rows:
        if "torch" not in row or "torchvision" not in row:
            raise ValueError(f"{TABLE_PATH}: a [[release]] row needs torch and torchvision: {row}")
    return rows


def minor(version: str) -> str:
    """Return ``major.minor`` of a version, local label and patch dropped.

    Args:
        version: A version such as ``2.1.2+cu121``.

    Returns:
        ``2.1``.
    """
    from packaging.version import Version

    v = Version(version)
    return f"{v.major}.{v.minor}"


def _admits_minor(entry: DeclaredRequirement, target_minor: str) -> bool:
    pin = entry.pinned_version
    if pin is not None:  # compare the release itself: a local label (+cu121) is no matter here
        return minor(pin) == target_minor
    specifier = entry.requirement.specifier
    return any(specifier.contains(f"{target_minor}.{patch}", prereleases=True) for patch in range(0, 12)) or \
        specifier.contains(target_minor, prereleases=True)


def _row_for(name: str, version_minor: str) -> dict[str, str] | None:
    for row in release_table():
        if row.get(name) == version_minor:
            return row
    return None


def mismatch(torch: DeclaredRequirement, other: DeclaredRequirement) -> str | None:
    """Say why two requirements of the torch family cannot be installed together.

    Args:
        torch: The torch requirement.
        other: The torchvision or torchaudio requirement.

    Returns:
        The reason, or ``None`` when they fit or the table cannot judge them.
    """
    name = other.name
    tpin, opin = torch.pinned_version, other.pinned_version
    if tpin is not None:
        row = _row_for("torch", minor(tpin))
        if row is not None and name in row and not _admits_minor(other, row[name]):
            return (f"{other.text} does not fit {torch.text}: torch {row['torch']} goes with "
                    f"{name} {row[name]}.*")
    if opin is not None:
        row = _row_for(name, minor(opin))
        if row is not None and not _admits_minor(torch, row["torch"]):
            return (f"{other.text} belongs to torch {row['torch']}, but {torch.text} is required "
                    f"with it; pin torch {row['torch']}.* or the {name} release of your torch")
    return None


def _table(data: Any, key: str) -> dict:
    """Return ``data[key]`` when both are tables, else an empty one (hostile input is MLC200's)."""
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _environments(root: Path, paths: list[str]) -> Iterable[tuple[str, list[DeclaredRequirement], bool]]:
    """Yield ``(where, requirements, has serving index)`` per installable set."""
    for rel in paths:
        kind = manifests.manifest_kind(rel)
        if kind == "requirements":
            expanded = common.expand(root, rel)
            served = any(o.option in ("--index-url", "--extra-index-url", "--find-links")
                         and not any(p in o.value for p in _PUBLIC) for o in expanded.index_options)
            top = common.load(root, rel)
            header = (top.header or []) if top is not None else []
            if not served and ("--no-emit-index-url" in header or "--no-emit-find-links" in header):
                # pip-compile left out the index it resolved against: whoever installs
                # the lock must know it (PIP_INDEX_URL, pip.conf). Say so in the finding.
                yield f"{rel} (compiled with --no-emit-index-url: the index it used is not recorded)", \
                    expanded.requirements, served
                continue
            yield rel, expanded.requirements, served
        elif kind in ("pyproject", "setup.cfg", "conda"):
            manifest = common.load(root, rel)
            if manifest is None:
                continue
            served = False
            if kind == "pyproject" and isinstance(manifest.data, dict):
                tool = _table(manifest.data, "tool")
                uv = _table(tool, "uv")
                served = bool(uv.get("index") or uv.get("sources") or uv.get("find-links")
                              or _table(tool, "poetry").get("source") or _table(tool, "pdm").get("source"))
            if kind == "conda" and isinstance(manifest.data, dict):
                deps = manifest.data.get("dependencies")
                for dep in deps if isinstance(deps, list) else []:
                    if isinstance(dep, dict) and isinstance(dep.get("pip"), list):
                        served = any(str(s).startswith(("--index-url", "--extra-index-url", "--find-links", "-f", "-i"))
                                     and not any(p in str(s) for p in _PUBLIC) for s in dep["pip"])
            groups: dict[str, list[DeclaredRequirement]] = {}
            for entry in manifest.requirements:
                groups.setdefault(entry.group, []).append(entry)
            base = groups.pop("dependencies", []) + groups.pop("setup.cfg:install_requires", [])
            if base or not groups:
                yield f"{rel} (dependencies)", base, served
            for group, entries in groups.items():
                if group == "build-system":
                    continue
                yield f"{rel} ({group})", base + entries, served


@register
class TorchFamilyMismatch(common.ManifestRule):
    """torch, torchvision and torchaudio pinned to releases that do not belong together.

    What it does:
        In each installable set (a requirements file with its includes; a
        ``pyproject.toml``'s dependencies plus one extra or group), checks:

        * torch, torchvision and torchaudio against the release table shipped in
          ``mlcheck_lint/rules/deps/data/torch_family.toml``;
        * CUDA local versions that differ (``+cu121`` next to ``+cu118``);
        * a CUDA local version (``torch==2.3.1+cu121``) with no ``--index-url`` /
          ``--find-links`` (or uv / Poetry / PDM index) that serves it: PyPI has none.

    Why is this bad?
        torchvision's compiled operators are built against one torch release. A
        mismatch fails at import (``undefined symbol``), or worse, pip silently
        replaces your torch with the one torchvision wants, a different CUDA build.

    Example:
        ```text
        torch==2.1.2
        torchvision==0.17.0
        ```

    Use instead:
        ```text
        torch==2.1.2
        torchvision==0.16.2
        ```
    """

    code = "MLC204"
    name = "torch-family-mismatch"
    summary = "torch / torchvision / torchaudio releases or CUDA builds that do not belong together"
    text_files = manifests.REQUIREMENTS_PATTERNS + ("pyproject.toml", "setup.cfg", "environment.yml",
                                                    "environment.yaml")

    def _manifest_findings(self, project: Any, root: Path, paths: list[str]) -> Iterable[Finding]:
        """Yield the torch family findings of every installable set, each location once."""
        seen: set[tuple[str, int, int, str]] = set()
        for where, entries, served in _environments(root, paths):
            for finding in self._check_set(where, entries, served):
                key = (finding.path, finding.line, finding.col, finding.message.split(":", 1)[0])
                if key not in seen:
                    seen.add(key)
                    yield finding

    def _check_set(self, where: str, entries: list[DeclaredRequirement], served: bool) -> Iterable[Finding]:
        family = [e for e in entries if e.requirement is not None and not e.requirement.url
                  and (e.name in FAMILY or (e.name or "").startswith("torch"))]
        torches = [e for e in family if e.name == "torch"]
        for torch in torches:
            for other in family:
                if other.name in ("torchvision", "torchaudio"):
                    reason = mismatch(torch, other)
                    if reason:
                        yield common.finding(self.code, other, f"{other.name} release mismatch: {reason} "
                                                               f"(in {where}; release table: {TABLE_PATH.name})")
        flavours: dict[str, DeclaredRequirement] = {}
        for entry in family:
            pin = entry.pinned_version
            if pin is None or "+" not in pin:
                continue
            label = pin.split("+", 1)[1]
            flavour = label if _LOCAL.match(label) else re.sub(r"^.*?(cu\d+|cpu|rocm[\d.]+)$", r"\1", label)
            if flavours and flavour not in flavours:
                first = next(iter(flavours.values()))
                yield common.finding(self.code, entry, (
                    f"mixed CUDA builds: {entry.text} is +{flavour} but {first.text} (line {first.line}) is "
                    f"+{first.pinned_version.split('+', 1)[1]}; one process loads one CUDA runtime, so pick one "
                    f"build for the whole family (in {where})"))
            flavours.setdefault(flavour, entry)
            if flavour.startswith(("cu", "rocm", "xpu")) or flavour == "cpu":
                if not served:
                    yield common.finding(self.code, entry, (
                        f"unservable CUDA build: {entry.text} is a local version (+{label}) that PyPI does "
                        f"not host, and no --index-url / --find-links (or uv/Poetry/PDM index) in {where} "
                        f"serves it; add e.g. `--index-url https://download.pytorch.org/whl/{flavour}`"))
