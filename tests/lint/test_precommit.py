"""The pre-commit hook, through a real ``pre-commit try-repo`` in a temporary git repository.

``try-repo`` builds the hook's environment the way users get it (``language: python``
runs ``pip install`` of this repository). The repository is a committed snapshot of the
package sources at a path and commit derived from their content, so pre-commit reuses
the environment until the sources change; the first run needs the package index and
takes about a minute.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PRE_COMMIT = Path(sys.executable).parent / "pre-commit"
SOURCES = ("pyproject.toml", "README.md", "LICENSE", ".pre-commit-hooks.yaml", "pytest_mlcheck", "lint")
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z"}

DRIFTED = '''"""Training helpers."""


def scale(x, factor=2.0):
    """Scale a value.

    Args:
        x: The value.
        facter: How much to scale by.

    Returns:
        The scaled value.
    """
    return x * factor
'''
FIXED = DRIFTED.replace("facter:", "factor:")


def _files(root: Path):
    for name in SOURCES:
        path = root / name
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                              and ".mlcheck-lint-cache" not in p.parts and p.suffix != ".pyc")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, **GIT_ENV}, timeout=60)


def _hook_repo() -> Path:
    digest = hashlib.sha256()
    for path in _files(ROOT):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    repo = Path(tempfile.gettempdir()) / f"mlcheck-hook-src-{digest.hexdigest()[:16]}"
    if not (repo / ".git").is_dir():
        staging = Path(tempfile.mkdtemp(prefix="mlcheck-hook-staging-"))
        for path in _files(ROOT):
            target = staging / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        _git(staging, "init", "-q")
        _git(staging, "add", "-A")
        _git(staging, "commit", "-qm", "snapshot")
        try:
            staging.rename(repo)
        except OSError:  # another run made it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    return repo


def _try_repo(repo: Path, work: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PRE_COMMIT_HOME": str(Path(tempfile.gettempdir()) / "mlcheck-pre-commit-home")}
    return subprocess.run([str(PRE_COMMIT), "try-repo", str(repo), "mlcheck-lint", "--all-files"],
                          cwd=work, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.skipif(not PRE_COMMIT.exists() or shutil.which("git") is None,
                    reason="needs pre-commit and git")
def test_try_repo_fails_on_drift_then_passes_after_the_fix(tmp_path):
    repo = _hook_repo()
    work = tmp_path / "project"
    work.mkdir()
    (work / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    (work / "train.py").write_text(DRIFTED)
    _git(work, "init", "-q")
    _git(work, "add", "-A")
    failed = _try_repo(repo, work)
    output = failed.stdout + failed.stderr
    assert failed.returncode == 1, output
    assert "mlcheck-lint" in output and "Failed" in output
    assert "train.py:9:9: MLC110" in output, output
    (work / "train.py").write_text(FIXED)
    _git(work, "add", "-A")
    passed = _try_repo(repo, work)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Passed" in passed.stdout
