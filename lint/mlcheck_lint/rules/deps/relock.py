"""``--fix --lock``: regenerate stale pip-tools locks with the real ``pip-compile``.

The only part of the dependency rules that runs a program (and may use the network,
as pip-compile does unless the header says ``--no-index``). For each lock MLC203 finds
stale, pip-compile runs on the lock's sources with the options of the lock's own
header, into a temporary file next to the lock that starts as a copy of the lock (so
pip-compile keeps the existing pins it can). Only when pip-compile succeeds is the
temporary file moved over the lock (``os.replace``: atomic); on failure the old lock
is untouched and pip-compile's output is returned verbatim.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterable

from . import common, lock_sync


@dataclasses.dataclass(frozen=True)
class RelockResult:
    """What happened to one lock.

    Attributes:
        lock: The lock's project-relative path.
        ok: Whether it was regenerated.
        command: The command that ran, as one shell line.
        output: pip-compile's stdout and stderr, verbatim (empty on success unless it
            printed warnings).
    """

    lock: str
    ok: bool
    command: str
    output: str


def pip_compile_command() -> list[str]:
    """Return how to run pip-compile: next to this Python, else on ``PATH``.

    Returns:
        The command's first words.

    Raises:
        FileNotFoundError: pip-compile is not installed (pip install pip-tools).
    """
    near = Path(sys.executable).with_name("pip-compile")
    if near.is_file():
        return [str(near)]
    found = shutil.which("pip-compile")
    if found:
        return [found]
    raise FileNotFoundError("pip-compile is not installed in this environment; `pip install pip-tools` "
                            "to use --fix --lock")


def _strip_output_option(options: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for word in options:
        if skip:
            skip = False
            continue
        if word in ("-o", "--output-file"):
            skip = True
            continue
        if word.startswith("--output-file="):
            continue
        out.append(word)
    return out


def relock(root: Path, lock: str, sources: list[str], options: list[str], timeout: float = 600) -> RelockResult:
    """Regenerate one pip-tools lock; atomic, and the old lock survives any failure.

    Args:
        root: The project root (pip-compile runs there).
        lock: The lock's project-relative path.
        sources: Its sources, project-relative.
        options: The options of its header (``--output-file`` is replaced).
        timeout: Seconds before pip-compile is stopped.

    Returns:
        The result.
    """
    target = root / lock
    options = _strip_output_option(options)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        shutil.copyfile(target, tmp)
        tmp_rel = os.path.relpath(tmp, root)
        try:
            command = pip_compile_command() + options + [f"--output-file={tmp_rel}"] + sources
        except FileNotFoundError as exc:
            return RelockResult(lock, False, "pip-compile", str(exc))
        original = " ".join(["pip-compile"] + [shlex.quote(w) for w in options]
                            + [f"--output-file={lock}"] + [shlex.quote(s) for s in sources])
        header = _header_command(root, lock) or original
        env = dict(os.environ, CUSTOM_COMPILE_COMMAND=header)
        shown = " ".join(shlex.quote(w) for w in command)
        try:
            done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            return RelockResult(lock, False, shown, f"pip-compile did not finish in {timeout:.0f} s\n"
                                                    f"{exc.stdout or ''}{exc.stderr or ''}")
        output = (done.stdout or "") + (done.stderr or "")
        if done.returncode != 0:
            return RelockResult(lock, False, shown, output)
        os.replace(tmp, target)
        return RelockResult(lock, True, shown, output)
    finally:
        if tmp.exists():
            tmp.unlink()


def _header_command(root: Path, lock: str) -> str | None:
    manifest = common.load(root, lock)
    if manifest is None or manifest.header is None:
        return None
    text, _ = common.read_cached(root, lock)
    for line in (text or "").splitlines()[:20]:
        stripped = line.lstrip("#").strip()
        if stripped.startswith(("pip-compile", "uv pip compile")):
            return stripped
    return None


def relock_stale(root: Path, paths: Iterable[str] | None = None) -> list[RelockResult]:
    """Regenerate every stale pip-tools lock of a project.

    Args:
        root: The project root.
        paths: Manifest paths to consider (default: the root's and ``requirements/``).

    Returns:
        One result per stale lock (locks in sync are left alone).
    """
    from ... import manifests

    root = Path(root)
    paths = list(paths) if paths is not None else manifests.project_manifest_paths(root)
    results = []
    for lock, sources, options in lock_sync.find_pip_tools_locks(root, paths):
        if not list(lock_sync.stale_findings("MLC203", root, lock, sources, options)):
            continue
        results.append(relock(root, lock, sources, options))
        common._READ.clear()  # the lock changed on disk
    return results


def run_for_cli(root: Path, files: Iterable[str], err: object = None, quiet: bool = False) -> tuple[int, int]:
    """Do ``--fix --lock`` for the command line: relock, report each lock, count both outcomes.

    Args:
        root: The project root.
        files: The run's files (project-relative); their manifests join the root's.
        err: Where to write the report (default: ``sys.stderr``).
        quiet: Leave out the notes on regenerated locks (failures are always reported).

    Returns:
        ``(regenerated, failed)``: the locks pip-compile regenerated, and those it could
        not (their old content kept).
    """
    from ... import manifests

    err = err or sys.stderr
    paths = sorted(set(manifests.project_manifest_paths(Path(root))) | {f for f in files if manifests.is_manifest(f)})
    regenerated = failures = 0
    for result in relock_stale(Path(root), paths):
        if result.ok:
            regenerated += 1
            if not quiet:
                print(f"Regenerated {result.lock} with: {result.command}", file=err)
        else:
            failures += 1
            print(f"mlcheck-lint: error: could not regenerate {result.lock}; it is unchanged. "
                  f"pip-compile said:\n{result.output.rstrip()}", file=err)
    return regenerated, failures
