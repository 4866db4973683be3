"""Dependency rules (MLC2xx): per-code fixture projects, fixes, real pip-compile and uv.

Each folder ``fixtures/deps/MLC2nn/<case>/`` is a small project linted with only that
code selected. Expectations live in the files themselves:

* ``# expect: MLC2nn`` at the end of a line: that line must get that finding;
  ``# expect+N:`` / ``# expect-N:`` put it N lines below / above (for a line that
  cannot carry a comment, such as one ending in a continuation backslash);
* ``case.toml``: ``[options]`` sets rule options; ``[expect]`` lists ``"path:line"``
  (or ``"path:cell:line"`` for notebooks) per code, for files that cannot hold
  comments.

Every finding not expected, and every expectation not met, fails, so each case is both
the must-flag and the must-not-flag fixture; the ``clean`` cases are the fixed twins.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mlcheck_lint import api, engine, manifests
from mlcheck_lint.config import LintConfig
from mlcheck_lint.manifests.pyproject import load_toml_text

FIXTURES = Path(__file__).parent / "fixtures" / "deps"
_EXPECT = re.compile(r"#\s*expect([+-]\d+)?:\s*((?:MLC\d{3}[\s,]*)+)")
VENV_BIN = Path(sys.executable).parent


def case_dirs() -> list[Path]:
    return sorted(p for p in FIXTURES.glob("MLC2*/*") if p.is_dir())


def expectations(case: Path, code: str) -> set[tuple]:
    """Return the ``(path, cell, line)`` triples a case expects for ``code``."""
    out = set()
    for path in sorted(case.rglob("*")):
        if not path.is_file() or path.name == "case.toml" or path.suffix == ".ipynb":
            continue
        rel = path.relative_to(case).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for m in _EXPECT.finditer(line):
                if code in m.group(2):
                    out.add((rel, None, number + (int(m.group(1)) if m.group(1) else 0)))
    meta = case / "case.toml"
    if meta.exists():
        data, _ = load_toml_text(meta.read_text(encoding="utf-8"))
        for spec in data.get("expect", {}).get(code, []):
            parts = spec.split(":")
            out.add((parts[0], int(parts[1]), int(parts[2])) if len(parts) == 3 else (parts[0], None, int(parts[1])))
    return out


def case_options(case: Path) -> dict:
    meta = case / "case.toml"
    if not meta.exists():
        return {}
    data, _ = load_toml_text(meta.read_text(encoding="utf-8"))
    return {k.replace("-", "_"): v for k, v in data.get("options", {}).items()}


def deps_codes() -> list[str]:
    """Return every MLC2xx code (importing the rules first: a test run alone must see them)."""
    import mlcheck_lint.rules.deps  # noqa: F401

    return sorted(c for c in api.REGISTRY if c.startswith("MLC2"))


def lint_dir(root: Path, codes: list[str], **options) -> engine.Report:
    """Lint a folder with only ``codes`` selected, no cache, one process."""
    config = LintConfig(root=root.resolve(), select=tuple(codes), settings=api.Settings(**options),
                        cache_dir=None)
    return engine.run([root], config, jobs=1, use_cache=False)


@pytest.mark.parametrize("case", case_dirs(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_case(case: Path, tmp_path: Path) -> None:
    code = case.parent.name
    work = tmp_path / case.name
    shutil.copytree(case, work)
    report = lint_dir(work, [code], **case_options(case))
    assert not report.errors, report.errors
    found = {(f.path, f.cell, f.line) for f in report.findings if f.code == code}
    expected = expectations(case, code)
    messages = "\n".join(f"{f.path}:{f.line}: {f.message}" for f in report.findings)
    assert found - expected == set(), f"unexpected {code} findings:\n{messages}"
    assert expected - found == set(), f"missing {code} findings at {sorted(expected - found)}:\n{messages}"


def test_every_rule_has_positive_and_negative_cases() -> None:
    import mlcheck_lint.rules.deps  # noqa: F401

    codes = sorted(c for c in api.REGISTRY if c.startswith("MLC2"))
    assert codes == [f"MLC2{n:02d}" for n in range(10)]
    for code in codes:
        cases = [p for p in (FIXTURES / code).iterdir() if p.is_dir()]
        assert any(expectations(p, code) for p in cases), f"{code} has no case that must be flagged"
        assert any(not expectations(p, code) for p in cases) or code in ("MLC205", "MLC206", "MLC208"), \
            f"{code} has no clean twin"


# --------------------------------------------------------------------------- data files


def test_torch_family_table_parses_and_is_consistent() -> None:
    from packaging.version import Version

    from mlcheck_lint.rules.deps.torch_family import release_table

    rows = release_table()
    assert len(rows) >= 20
    torch_minors = [Version(r["torch"]) for r in rows]
    assert torch_minors == sorted(torch_minors) and len(set(torch_minors)) == len(torch_minors)
    for row in rows:
        t, v = Version(row["torch"]), Version(row["torchvision"])
        if t.major == 2:  # the published pattern since 2.0: torchvision 0.(minor + 15)
            assert (v.major, v.minor) == (0, t.minor + 15), row
            if "torchaudio" in row:
                assert row["torchaudio"] == row["torch"], row
    # The corpus wheel is the ground truth for the newest row.
    meta = Path("/work/corpora/torchvision/torchvision-0.29.1.dist-info/METADATA")
    if meta.exists():
        wanted = re.search(r"Requires-Dist: torch \(?>=(\d+\.\d+)", meta.read_text()).group(1)
        assert {"torch": wanted, "torchvision": "0.29"}.items() <= next(r for r in rows if r["torchvision"] == "0.29").items()


def test_module_map_parses_and_names_the_usual_mismatches() -> None:
    from mlcheck_lint.rules.deps.imports import distributions_for, module_map, shipped_map

    shipped = shipped_map()
    for module, dist in [("sklearn", "scikit-learn"), ("cv2", "opencv-python-headless"), ("PIL", "pillow"),
                         ("yaml", "pyyaml"), ("skimage", "scikit-image"), ("bs4", "beautifulsoup4"),
                         ("google.protobuf", "protobuf")]:
        assert dist in shipped[module]
    mapping = module_map(["mylib=My_Lib-Dist"])
    assert distributions_for("google.protobuf.message", mapping)[0] == "protobuf"
    assert distributions_for("mylib.sub", mapping)[0] == "my-lib-dist"
    assert distributions_for("requests", {}) == ("requests",)


# --------------------------------------------------------------------------- the parser


def test_declared_requirements_reads_our_own_pyproject() -> None:
    root = Path(__file__).resolve().parents[2]
    reqs = manifests.declared_requirements(root)
    groups = {r.group for r in reqs}
    assert {"dependencies", "build-system"} <= groups
    torch = [r for r in reqs if r.requirement is not None and r.requirement.name == "torch"]
    assert torch and torch[0].path == "pyproject.toml" and torch[0].group.startswith("optional:")
    line = (root / "pyproject.toml").read_text().splitlines()[torch[0].line - 1]
    assert "torch" in line[torch[0].col:]


def test_requirements_parser_keeps_positions_and_pip_syntax() -> None:
    text = ("-r base.txt\n-c constraints.txt\n-e ./pkg\n--index-url https://idx/simple\n"
            "foo[bar]==1.0 ; python_version < \"3.12\" \\\n    --hash=sha256:" + "a" * 64 + "\n"
            "    # via\n    #   baz\n    #   -r requirements.in\n"
            "vcs @ git+https://h/o/r@" + "b" * 40 + "\n"
            "url-thing#egg=x\n"
            "plain>=1  # comment #with hash\n")
    m = manifests.read_manifest("requirements.txt", text)
    assert [(i.kind, i.target, i.line) for i in m.includes] == [("-r", "base.txt", 1), ("-c", "constraints.txt", 2)]
    assert [o.option for o in m.index_options] == ["--index-url"]
    foo = next(r for r in m.requirements if r.name == "foo")
    assert (foo.line, foo.col, foo.hashes, foo.via) == (5, 0, ("sha256:" + "a" * 64,), ("baz", "-r requirements.in"))
    assert str(foo.requirement.marker) == 'python_version < "3.12"'
    assert next(r for r in m.requirements if r.editable).local == "./pkg"
    plain = next(r for r in m.requirements if r.name == "plain")
    assert plain.text == "plain>=1" and plain.line == 12
    assert len(m.problems) == 1 and m.problems[0].line == 11  # `url-thing#egg=x` is not a requirement


def test_poetry_constraints_translate_to_pep440() -> None:
    from mlcheck_lint.manifests.pyproject import poetry_specifier

    assert poetry_specifier("^1.2.3") == ">=1.2.3,<2"
    assert poetry_specifier("^0.2.3") == ">=0.2.3,<0.3"
    assert poetry_specifier("~1.2") == ">=1.2,<1.3"
    assert poetry_specifier("1.2.3") == "==1.2.3"
    assert poetry_specifier(">=1,<2") == ">=1,<2"
    assert poetry_specifier("*") == ""


# --------------------------------------------------------------------------- bad input


def test_bom_crlf_and_a_bad_line_in_the_middle(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_bytes(b"\xef\xbb\xbfnumpy>=1\r\nbad line!\r\nscipy>=1\r\n")
    report = lint_dir(tmp_path, ["MLC200", "MLC201"])
    assert not report.errors
    got = sorted((f.code, f.line) for f in report.findings)
    assert got == [("MLC200", 2), ("MLC201", 1), ("MLC201", 3)]


def test_unreadable_include_and_symlink_out_of_the_project(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    outside = tmp_path / "secret.txt"
    outside.write_text("evil==1.0\n")
    (project / "requirements-link.txt").symlink_to(outside)
    (project / "requirements-dir.txt").mkdir()
    (project / "requirements.txt").write_text("-r requirements-link.txt\n-r requirements-dir.txt\n"
                                              "-r ../secret.txt\nnumpy==1.26.4\n")
    report = lint_dir(project, ["MLC200"])
    by_line = {f.line: f.message for f in report.findings if f.path == "requirements.txt"}
    assert "outside the project" in by_line[1]
    assert "cannot read" in by_line[2] or "Is a directory" in by_line[2]
    assert "outside the project" in by_line[3]
    assert not [r for r in manifests.declared_requirements(project) if r.name == "evil"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads a mode-000 file")
def test_unreadable_file_is_a_finding(tmp_path: Path) -> None:
    (tmp_path / "requirements-base.txt").write_text("numpy==1.26.4\n")
    (tmp_path / "requirements-base.txt").chmod(0)
    (tmp_path / "requirements.txt").write_text("-r requirements-base.txt\n")
    try:
        report = lint_dir(tmp_path, ["MLC200"])
    finally:
        (tmp_path / "requirements-base.txt").chmod(0o644)
    assert any("cannot read" in f.message for f in report.findings)


def test_unreadable_file_as_root_via_a_dangling_include(tmp_path: Path) -> None:
    (tmp_path / "requirements-base.txt").symlink_to(tmp_path / "nowhere.txt")
    (tmp_path / "requirements.txt").write_text("-r requirements-base.txt\n")
    report = lint_dir(tmp_path, ["MLC200"])
    assert [f.line for f in report.findings if f.path == "requirements.txt"] == [1]


def test_enormous_requirements_file_is_linear(tmp_path: Path) -> None:
    import time

    lines = [f"package-{i}=={i % 97}.0.{i % 13}" for i in range(100_000)] + ["unpinned>=1"]
    (tmp_path / "requirements.txt").write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    report = lint_dir(tmp_path, ["MLC200", "MLC201", "MLC204", "MLC207"])
    elapsed = time.perf_counter() - start
    assert [(f.code, f.line) for f in report.findings] == [("MLC201", 100_001)]
    assert elapsed < 60, f"100k lines took {elapsed:.1f} s"


def test_an_environment_variable_is_named_not_called_invalid(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("numpy==1.26.4\n${PRIVATE_PKG}==1.0\n")
    report = lint_dir(tmp_path, ["MLC200", "MLC201"])
    assert [(f.code, f.line) for f in report.findings] == [("MLC200", 2)]
    message = report.findings[0].message
    assert "${PRIVATE_PKG}" in message and "not checked" in message and "not a valid requirement" not in message


def test_yaml_that_is_not_a_mapping_and_malformed_yaml(tmp_path: Path) -> None:
    (tmp_path / "environment.yml").write_text("name: [unclosed\n")
    report = lint_dir(tmp_path, ["MLC200"])
    assert [f.code for f in report.findings] == ["MLC200"] and "YAML" in report.findings[0].message


@pytest.mark.parametrize("text, reason", [
    ("a = " + "[" * 20000 + "]" * 20000 + "\n", "nested"),  # 3.10: tomlkit words it otherwise
    ("[project]\noptional-dependencies = 3\n", "must be a table"),
    ("[project]\ndependencies = \"numpy\"\n", "expected an array"),
    ("[project]\ndependencies = [3]\n", "expected a requirement string"),
    ("[project\n", "not valid TOML"),
])
def test_hostile_pyproject_is_one_finding_not_a_crash(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / "pyproject.toml").write_text(text)
    report = lint_dir(tmp_path, deps_codes())
    assert not report.errors, report.errors
    assert [f.code for f in report.findings] == ["MLC200"] and reason in report.findings[0].message


_PROJECT = '[project]\nname = "d"\nversion = "1"\ndependencies = ["numpy>=1"]\n'


@pytest.mark.parametrize("name, text, codes", [
    # each of these once raised inside a rule (TypeError / AttributeError)
    ("environment.yml", "dependencies: 3\n", ["MLC200"]),
    ("environment.yml", "dependencies:\n  - pip: [3, null, {a: 1}]\n  - 5\n", ["MLC200"]),
    ("pyproject.toml", "[tool]\nuv = 3\npoetry = [1]\n" + _PROJECT, []),
    ("uv.lock", "[[package]]\nname = 'numpy'\nversion = '1.0'\n[[package]]\nname = 'd'\nversion = '1'\n"
                "source = {editable = '.'}\n[package.metadata]\n"
                "requires-dist = [3, {name = 3}, {name = 'numpy', specifier = 3, marker = 4, extra = [5]}]\n"
                "requires-dev = {dev = 3, test = [3, {name = 'pytest', specifier = ['>=8']}]}\n", []),
    ("pylock.toml", "lock-version = '1.0'\n[[packages]]\nname = 'numpy'\nversion = [1]\nmarker = 3\n", ["MLC200"]),
])
def test_wrongly_typed_values_are_findings_not_crashes(tmp_path: Path, name: str, text: str, codes: list) -> None:
    (tmp_path / name).write_text(text)
    if name != "pyproject.toml":
        (tmp_path / "pyproject.toml").write_text(_PROJECT)
    report = lint_dir(tmp_path, deps_codes())
    assert not report.errors, report.errors
    assert [f.code for f in report.findings if f.path == name and f.code == "MLC200"] == codes


def test_parsers_never_raise_on_arbitrary_text() -> None:
    from hypothesis import given, settings, strategies as st

    alphabet = st.sampled_from(list("abcXYZ019 \t\\#@;=<>!~[],.-+/:'\"\n\r{}$%") + ["-r ", "-e ", "--hash=", "git+"])

    @settings(max_examples=300, deadline=None)
    @given(st.lists(alphabet, max_size=60).map("".join))
    def run(text: str) -> None:
        for name in ("requirements.txt", "pyproject.toml", "setup.cfg", "uv.lock", "pylock.toml"):
            manifests.read_manifest(name, text)

    run()


def test_corpus_of_real_world_style_files_lints_without_crashing(tmp_path: Path) -> None:
    work = tmp_path / "corpus"
    shutil.copytree(FIXTURES / "corpus", work)
    codes = deps_codes()
    report = lint_dir(work, codes)
    assert not report.errors, report.errors
    problems = [f for f in report.findings if f.code == "MLC200"]
    assert problems == [], "\n".join(f"{f.path}:{f.line}: {f.message}" for f in problems)
    parsed = sum(len(manifests.read_manifest(p.name if p.parent == FIXTURES / "corpus" else f"requirements/{p.name}",
                                             p.read_text()).requirements)
                 for p in (FIXTURES / "corpus").rglob("*.txt"))
    assert parsed >= 45


# --------------------------------------------------------------------------- fixes


def _fix(root: Path, *extra: str) -> int:
    from mlcheck_lint import cli

    cwd = os.getcwd()
    os.chdir(root)
    try:
        return cli.main([".", "--fix", "--no-cache", "--select", "MLC201,MLC202", "-j", "1", *extra])
    finally:
        os.chdir(cwd)


def test_fix_pins_requirements_to_installed_versions_and_round_trips(tmp_path: Path) -> None:
    packaging_v = importlib.metadata.version("packaging")
    tomlkit_v = importlib.metadata.version("tomlkit")
    (tmp_path / "requirements.txt").write_text(
        "# pinned by --fix\npackaging>=20  # keep this comment\ntomlkit[extra] ; python_version >= \"3.8\"\n"
        "not-installed-anywhere-xyz>=1\n")
    _fix(tmp_path)
    text = (tmp_path / "requirements.txt").read_text()
    assert text == (f"# pinned by --fix\npackaging=={packaging_v}  # keep this comment\n"
                    f"tomlkit[extra]=={tomlkit_v}; python_version >= \"3.8\"\nnot-installed-anywhere-xyz>=1\n")
    report = lint_dir(tmp_path, ["MLC201"])
    assert [f.line for f in report.findings] == [4]
    assert "not installed" in report.findings[0].message and report.findings[0].fix is None
    _fix(tmp_path)
    assert (tmp_path / "requirements.txt").read_text() == text


def test_fix_edits_pyproject_with_tomlkit_and_keeps_everything_else(tmp_path: Path) -> None:
    packaging_v = importlib.metadata.version("packaging")
    original = (
        "[build-system]\nrequires = [\"setuptools>=77\"]\n\n"
        "[project]\nname = \"demo\"\nversion = \"0.1\"\n"
        "dependencies = [\n"
        "    # the parser we rely on\n"
        "    'packaging',   # no bound yet\n"
        "    \"tomlkit==0.12.0\",\n"
        "    \"numpy>=1.26\" ,\n"
        "]\n\n[tool.other]\nkeep   =   'exactly'  # as is\n")
    (tmp_path / "pyproject.toml").write_text(original)
    _fix(tmp_path)
    safe = original.replace("'packaging'", f"'packaging>={packaging_v}'")
    assert (tmp_path / "pyproject.toml").read_text() == safe
    _fix(tmp_path, "--unsafe-fixes")
    final = safe.replace('"tomlkit==0.12.0"', '"tomlkit>=0.12.0"')
    assert (tmp_path / "pyproject.toml").read_text() == final
    assert lint_dir(tmp_path, ["MLC202"]).findings == []
    _fix(tmp_path, "--unsafe-fixes")
    assert (tmp_path / "pyproject.toml").read_text() == final


# --------------------------------------------------------------------------- real pip-compile


def make_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """Write a minimal, valid pure-Python wheel (what an index would serve)."""
    dist = f"{name.replace('-', '_')}-{version}"
    path = folder / f"{dist}-py3-none-any.whl"
    files = {f"{name.replace('-', '_')}/__init__.py": "",
             f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                           + "".join(f"Requires-Dist: {r}\n" for r in requires),
             f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    with zipfile.ZipFile(path, "w") as zf:
        for member, content in files.items():
            zf.writestr(member, content)
            digest = base64.urlsafe_b64encode(hashlib.sha256(content.encode()).digest()).rstrip(b"=").decode()
            record.append(f"{member},sha256={digest},{len(content)}")
        record.append(f"{dist}.dist-info/RECORD,,")
        zf.writestr(f"{dist}.dist-info/RECORD", "\n".join(record) + "\n")
    return path


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "alpha", "1.0", ("beta>=1",))
    make_wheel(wheels, "alpha", "2.0", ("beta>=1",))
    make_wheel(wheels, "beta", "1.5")
    make_wheel(wheels, "gamma", "0.3")
    make_wheel(wheels, "delta", "4.0")
    return wheels


def pip_compile(project: Path, wheels: Path, *extra: str) -> None:
    exe = VENV_BIN / "pip-compile"
    if not exe.exists():
        pytest.skip("pip-compile is not installed (pip-tools is in the test extra)")
    done = subprocess.run([str(exe), "--no-index", f"--find-links={wheels}", "--quiet", *extra,
                           "--output-file=requirements.txt", "requirements.in"],
                          cwd=project, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_mlc203_against_real_pip_compile(tmp_path: Path, wheelhouse: Path, capsys: pytest.CaptureFixture) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.in").write_text('alpha>=1\ngamma; sys_platform != "win32"\n')
    pip_compile(project, wheelhouse, "--generate-hashes")
    lock = (project / "requirements.txt").read_text()
    assert "alpha==2.0" in lock and "beta==1.5" in lock and "--hash=sha256:" in lock
    assert lint_dir(project, ["MLC203", "MLC201"]).findings == []

    # add, remove, tighten: each edit of the .in is one exact finding
    (project / "requirements.in").write_text("alpha<2\ndelta\n")
    findings = sorted((f.path, f.line, f.message.split(" ", 1)[0], "orphan" in f.message)
                      for f in lint_dir(project, ["MLC203"]).findings)
    gamma_line = next(i for i, l in enumerate(lock.splitlines(), 1) if l.startswith("gamma=="))
    assert findings == [("requirements.in", 1, "alpha", False), ("requirements.in", 2, "delta", False),
                        ("requirements.txt", gamma_line, "gamma", True)]
    messages = " ".join(f.message for f in lint_dir(project, ["MLC203"]).findings)
    assert "requirements.txt" in messages and "requirements.in" in messages

    # --fix --lock: the real pip-compile with the header's options, atomically
    from mlcheck_lint.rules.deps.relock import relock_stale

    code, out, err = _fix_lock(project, capsys)
    assert code == 0, out + err
    assert "Regenerated requirements.txt with: " in err and "All checks passed!" in out
    new_lock = (project / "requirements.txt").read_text()
    assert "alpha==1.0" in new_lock and "delta==4.0" in new_lock and "gamma" not in new_lock
    assert "--generate-hashes" in new_lock and ".tmp" not in new_lock  # the header is the lock's own
    assert "--hash=sha256:" in new_lock.split("delta==4.0", 1)[1].split("\n", 2)[1]
    assert [p.name for p in project.iterdir() if p.name.endswith(".tmp")] == []
    assert lint_dir(project, ["MLC203", "MLC201"]).findings == []
    assert relock_stale(project) == []  # nothing stale: nothing runs
    # a second --fix --lock changes nothing and runs nothing
    code, out, err = _fix_lock(project, capsys)
    assert (code, "Regenerated" in err) == (0, False)
    assert (project / "requirements.txt").read_text() == new_lock


def _fix_lock(project: Path, capsys: pytest.CaptureFixture, *extra: str) -> tuple[int, str, str]:
    """Run ``mlcheck-lint --fix --lock`` in ``project``; return the exit code, stdout, stderr."""
    from mlcheck_lint import cli

    capsys.readouterr()
    cwd = os.getcwd()
    os.chdir(project)
    try:
        code = cli.main([".", "--fix", "--lock", "--no-cache", "--select", "MLC201,MLC203", "-j", "1", *extra])
    finally:
        os.chdir(cwd)
    out, err = capsys.readouterr()
    return code, out, err


def test_lock_without_fix_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from mlcheck_lint import cli

    (tmp_path / "requirements.in").write_text("alpha\n")
    (tmp_path / "requirements.txt").write_text("beta==1.0\n")
    for argv in ([str(tmp_path), "--lock"], [str(tmp_path), "--diff", "--lock"]):
        assert cli.main(argv + ["--no-cache"]) == 2
        err = capsys.readouterr().err
        assert "--lock: only works with --fix" in err
    assert (tmp_path / "requirements.txt").read_text() == "beta==1.0\n"


def test_lock_needs_mlc203_selected(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "requirements.in").write_text("alpha\n")
    (tmp_path / "requirements.txt").write_text("beta==1.0\n")  # stale: alpha is missing
    from mlcheck_lint import cli

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code = cli.main([".", "--fix", "--lock", "--no-cache", "--select", "MLC201", "-j", "1"])
    finally:
        os.chdir(cwd)
    assert code == 0
    assert "MLC203 is not selected; no lock was checked or regenerated" in capsys.readouterr().err
    assert (tmp_path / "requirements.txt").read_text() == "beta==1.0\n"


def test_relock_failure_leaves_the_old_lock_and_shows_pip_compile_verbatim(tmp_path: Path, wheelhouse: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.in").write_text("alpha\n")
    pip_compile(project, wheelhouse)
    before = (project / "requirements.txt").read_bytes()
    (project / "requirements.in").write_text("alpha\nno-such-package-anywhere>=1\n")
    from mlcheck_lint.rules.deps.relock import relock_stale

    (result,) = relock_stale(project)
    assert not result.ok
    assert "no-such-package-anywhere" in result.output
    assert (project / "requirements.txt").read_bytes() == before
    assert [p.name for p in project.iterdir() if p.name.endswith(".tmp")] == []

    # what --fix --lock prints: pip-compile's own words, and the lock unchanged
    import io

    from mlcheck_lint.rules.deps.relock import run_for_cli

    err = io.StringIO()
    assert run_for_cli(project, ["requirements.in", "requirements.txt"], err) == (0, 1)
    assert "could not regenerate requirements.txt; it is unchanged" in err.getvalue()
    assert result.output.strip() in err.getvalue()
    assert (project / "requirements.txt").read_bytes() == before

    # the command line: exit 2, pip-compile's words on stderr, the finding still shown
    code, out, err_text = _fix_lock(project, capsys)
    assert code == 2
    assert result.output.strip() in err_text and "no-such-package-anywhere" in out
    assert (project / "requirements.txt").read_bytes() == before
    assert [p.name for p in project.iterdir() if p.name.endswith(".tmp")] == []


# --------------------------------------------------------------------------- real uv lock


def test_mlc209_against_real_uv_lock(tmp_path: Path, wheelhouse: Path) -> None:
    uv = shutil.which("uv", path=str(VENV_BIN)) or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed; the MLC209 fixtures hold uv output made offline")
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "0.1"\nrequires-python = ">=3.10"\n'
        'dependencies = ["alpha>=1", \'gamma; python_version < "3.12"\']\n'
        '[project.optional-dependencies]\nx = ["beta>=1"]\n[dependency-groups]\ndev = ["delta"]\n')
    done = subprocess.run([uv, "lock", "--offline", "--no-index", "--find-links", str(wheelhouse), "-q"],
                          cwd=project, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert lint_dir(project, ["MLC209"]).findings == []
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(
        text.replace('"alpha>=1"', '"alpha>=3"').replace('x = ["beta>=1"]', 'x = ["beta>=1", "zeta"]')
            .replace('dev = ["delta"]', 'dev = ["delta>=5"]'))
    findings = lint_dir(project, ["MLC209"]).findings
    assert sorted(f.message.split(" ", 1)[0] for f in findings) == ["alpha", "delta", "zeta"]
    assert all("uv.lock" in f.message and "pyproject.toml" in f.message for f in findings)


# --------------------------------------------------------------------------- dogfood


def test_our_own_project_passes_the_dependency_rules() -> None:
    from mlcheck_lint.config import load_config

    root = Path(__file__).resolve().parents[2]
    codes = [c for c in api.REGISTRY if c.startswith("MLC2") and api.REGISTRY[c].default == "on"]
    config = load_config(root, list(api.REGISTRY))
    config = LintConfig(root=config.root, select=tuple(codes), exclude=config.exclude,
                        extend_exclude=config.extend_exclude, settings=config.settings, cache_dir=None)
    report = engine.run([root / "pyproject.toml", root / "lint", root / "tests" / "lint", root / "benchmarks" / "bench_deps.py"],
                        config, jobs=1, use_cache=False)
    assert not report.errors
    assert report.findings == [], "\n".join(f"{f.path}:{f.line}: {f.code} {f.message}" for f in report.findings)


@pytest.mark.parametrize("python, expected", [("3.12", []), ("3.11", ["MLC203"])])
def test_mlc203_reads_markers_in_the_python_the_lock_was_compiled_with(tmp_path: Path, python: str,
                                                                       expected: list[str]) -> None:
    """pip-compile leaves out a requirement whose marker is false where it runs: a lock
    compiled on 3.12 rightly has no `gamma; python_version < "3.12"`; one compiled on
    3.11 has lost it. The verdict must not depend on the Python that runs the linter."""
    (tmp_path / "requirements.in").write_text('alpha>=1\ngamma; python_version < "3.12"\n')
    (tmp_path / "requirements.txt").write_text(
        "#\n"
        f"# This file is autogenerated by pip-compile with Python {python}\n"
        "# by the following command:\n#\n#    pip-compile requirements.in\n#\n"
        "alpha==2.0\n    # via -r requirements.in\n")
    findings = lint_dir(tmp_path, ["MLC203"]).findings
    assert [f.code for f in findings] == expected
    assert all("gamma" in f.message for f in findings)
