"""Packaging: declared dependencies and extras, the floors `py310-min` tests, the pip-tools
locks, the sdist and wheel contents, and the optional-dependency ImportError."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def _load_script(name: str):
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(ROOT / "scripts" / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_core_dependencies_are_what_every_run_needs() -> None:
    assert _names(PROJECT["dependencies"]) == {"pytest", "numpy", "tomlkit", "packaging",
                                               "filelock", "libcst", "tomli"}
    tomli = next(Requirement(r) for r in PROJECT["dependencies"] if r.startswith("tomli"))
    assert tomli.marker is not None and not tomli.marker.evaluate({"python_version": "3.11"})
    pytest_req = next(Requirement(r) for r in PROJECT["dependencies"] if r.startswith("pytest"))
    assert "7.4" not in pytest_req.specifier and pytest_req.specifier.contains("8.0")


def test_extras_are_ranges_never_pins() -> None:
    extras = PROJECT["optional-dependencies"]
    assert {"hypothesis", "torch", "all", "test"} <= set(extras)
    for name, reqs in extras.items():
        for text in reqs:
            req = Requirement(text)
            assert not any(s.operator in ("==", "===") for s in req.specifier), (name, text)
    torch = Requirement(extras["torch"][0])
    assert torch.specifier.contains("2.5.1") and torch.specifier.contains("2.13.0")
    assert _names(extras["all"]) == {"pytest-mlcheck"}
    assert Requirement(extras["all"][0]).extras == {"hypothesis", "torch"}
    assert "pandas" in _names(extras["test"])


def test_project_urls_and_version() -> None:
    urls = PROJECT["urls"]
    assert {"Homepage", "Documentation", "Source", "Issues", "Changelog"} <= set(urls)
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{PROJECT['version']}] - " in changelog and "## [Unreleased]" in changelog


def test_versions_agree() -> None:
    from mlcheck_lint import __version__ as lint_version

    import pytest_mlcheck

    assert pytest_mlcheck.__version__ == lint_version == PROJECT["version"]


def test_min_constraints_pin_every_declared_floor(tmp_path: Path) -> None:
    script = _load_script("min-constraints")
    pins = script.floor_pins(PROJECT, ["test"])
    declared = PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"] \
        + PROJECT["optional-dependencies"]["hypothesis"]
    for text in declared:
        req = Requirement(text)
        if canonicalize_name(req.name) == "pytest-mlcheck":
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": "test"}):
            assert canonicalize_name(req.name) not in pins, text  # not for this Python
            continue
        floor = next(s.version for s in req.specifier if s.operator == ">=")
        assert pins[canonicalize_name(req.name)] == floor, text
    assert "torch" not in pins  # not asked for: py310-min runs numpy only
    out = tmp_path / "c.txt"
    assert script.main(["--extra", "test", "-o", str(out)]) == 0
    assert "pytest==8.0\n" in out.read_text()


def test_min_constraints_refuse_a_requirement_without_floor(tmp_path: Path) -> None:
    script = _load_script("min-constraints")
    bad = tmp_path / "pyproject.toml"
    bad.write_text('[project]\nname = "x"\ndependencies = ["numpy<3"]\n')
    with pytest.raises(SystemExit, match="numpy<3.*declares no lower bound"):
        script.main(["--pyproject", str(bad)])


def test_test_lock_covers_the_test_requirements() -> None:
    wanted = (_names(PROJECT["dependencies"]) | _names(PROJECT["optional-dependencies"]["hypothesis"])
              | _names(PROJECT["optional-dependencies"]["test"])) - {"pytest-mlcheck"}
    lines = (ROOT / "requirements" / "test.in").read_text(encoding="utf-8").splitlines()
    listed = {canonicalize_name(Requirement(x).name) for x in lines
              if x.strip() and not x.startswith("#")}
    assert listed == wanted
    pins = {}
    for line in (ROOT / "requirements" / "test.txt").read_text(encoding="utf-8").splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = spec.version
    assert wanted <= set(pins)
    assert "torch" not in pins


def test_strategies_import_error_names_the_extra() -> None:
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "try:\n    import pytest_mlcheck.strategies\n"
            "except ImportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "pip install 'pytest-mlcheck[hypothesis]'" in out.stdout, out.stderr


def test_plugin_runs_without_hypothesis(pytester: pytest.Pytester) -> None:
    # hypothesis made unimportable: the plugin, its fixtures and the summary still work.
    pytester.makepyfile(block_hypothesis="import sys\nsys.modules['hypothesis'] = None\n")
    pytester.makepyfile(test_model="""
        def test_metric(metric_regression):
            metric_regression.check({"accuracy": 0.9})
    """)
    result = pytester.runpytest_subprocess("-p", "block_hypothesis", "-p", "no:hypothesispytest",
                                           "-p", "no:cacheprovider", "--mlcheck-update")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["1 metric: 1 written"])


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("build")
    # setuptools stages the sdist in `<source>/pytest_mlcheck-<version>/` and writes
    # `build/` and `*.egg-info` there, so concurrent builds from one tree (the tox envs of
    # `tox -p`, xdist workers) delete each other's staging. Build from a private copy.
    source = tmp_path_factory.mktemp("source") / "tree"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".tox", ".venv", ".venv-*", "build", "dist", "site", "*.egg-info", "__pycache__", "*.pyc",
        ".pytest_cache", ".hypothesis", ".mlcheck_cache", ".mlcheck-lint-cache", "_work", ".corpora",
        "pytest_mlcheck-*"))
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--no-isolation",
                           "--outdir", str(out), str(source)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"sdist": next(out.glob("*.tar.gz")), "wheel": next(out.glob("*.whl"))}


def test_sdist_holds_what_the_suite_needs(dists: dict[str, Path]) -> None:
    with tarfile.open(dists["sdist"]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for required in ("CHANGELOG.md", "LICENSE", "tox.ini", "README.md", "mkdocs.yml",
                     "pyproject.toml", "MANIFEST.in", "tests/conftest.py", "tests/test_packaging.py",
                     "tests/plugin/test_summary.py", "tests/lint/lint_engine_testkit.py",
                     "examples/tinyml.py", "requirements/test.txt", "scripts/min-constraints",
                     "docs/index.md", ".ci/run", "pytest_mlcheck/py.typed", "lint/mlcheck_lint/py.typed"):
        assert required in names, required
    assert any(n.startswith("tests/lint/fixtures/") for n in names)
    assert any(n.startswith("examples/mlcheck_baselines/") for n in names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_wheel_ships_both_packages_typed_with_their_data(dists: dict[str, Path]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as whl:
        names = set(whl.namelist())
        metadata = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert {"pytest_mlcheck/py.typed", "mlcheck_lint/py.typed"} <= names
    # Every data file the packages keep in the source tree is in the wheel.
    for package, source in (("pytest_mlcheck", ROOT / "pytest_mlcheck"),
                            ("mlcheck_lint", ROOT / "lint" / "mlcheck_lint")):
        for data in list(source.rglob("*.toml")) + list(source.rglob("*.json")):
            assert f"{package}/{data.relative_to(source).as_posix()}" in names, data
    assert not any(n.startswith("tests/") for n in names)
    assert "Project-URL: Documentation, " in metadata
    assert "Requires-Dist: hypothesis>=6.84.1; extra == \"hypothesis\"" in metadata
    assert "Requires-Dist: torch>=2.1; extra == \"torch\"" in metadata
    assert not any(line.startswith("Requires-Dist: hypothesis") and "extra" not in line
                   for line in metadata.splitlines())
