"""Test-only rules (codes MLC99x) and helpers for the engine tests.

They exercise every engine path (fixes, crashes, project facts, text files) without
depending on any real rule family.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import libcst as cst
import pytest

from mlcheck_lint import api
from mlcheck_lint.api import Fix, ProjectRule, Rule


class BadName(Rule):
    """Flags functions named ``bad_*``.

    What it does:
        Test rule. Safe fix renames to ``good_*``.
    """

    code = "MLC991"
    name = "bad-name"
    summary = "function named bad_*"
    fix_safety = "safe"
    requires_text = ("bad_",)
    needs = "cst"

    def check(self, ctx):
        """Yield one finding per ``bad_*`` function.

        Args:
            ctx: The file context.
        """
        for node in _functions(ctx.module):
            if node.name.value.startswith("bad_"):
                new = "good_" + node.name.value[4:]
                fix = Fix("safe", f"rename to {new}", (ctx.edit(node.name, new),))
                yield ctx.finding(self.code, node.name, f"function `{node.name.value}` is bad", fix)


class PrintCall(Rule):
    """Flags ``print(`` calls; unsafe fix turns them into ``log(``.

    What it does:
        Test rule.
    """

    code = "MLC992"
    name = "print-call"
    summary = "print call"
    fix_safety = "unsafe"

    def check(self, ctx):
        """Yield one finding per print call.

        Args:
            ctx: The file context.
        """
        found = []

        class Visitor(cst.CSTVisitor):
            def visit_Call(self, node):
                if isinstance(node.func, cst.Name) and node.func.value == "print":
                    found.append(node.func)

        ctx.module.visit(Visitor())
        for name in found:
            fix = Fix("unsafe", "call log", (ctx.edit(name, "log"),))
            yield ctx.finding(self.code, name, "print call", fix)


class Crashes(Rule):
    """Raises on files containing ``CRASH``.

    What it does:
        Test rule for internal errors.
    """

    code = "MLC993"
    name = "crashes"
    summary = "raises"
    requires_text = ("CRASH",)

    def check(self, ctx):
        """Raise.

        Args:
            ctx: The file context.
        """
        raise RuntimeError("boom")


class DuplicateFunction(ProjectRule):
    """Flags a top-level function name defined in two files.

    What it does:
        Test project rule.
    """

    code = "MLC994"
    name = "duplicate-function"
    summary = "function defined in two files"

    def collect(self, ctx):
        """Return the top-level function names and lines.

        Args:
            ctx: The file context.

        Returns:
            ``[[name, line], ...]``.
        """
        return [[s.name.value, ctx.position(s.name)[0]] for s in ctx.module.body
                if isinstance(s, cst.FunctionDef)]

    def check_project(self, project):
        """Report the second definition of each name.

        Args:
            project: The project context.
        """
        seen = {}
        for path in sorted(project.facts.get(self.code, {})):
            for name, line in project.facts[self.code][path]:
                if name in seen:
                    yield api.Finding(self.code, f"`{name}` is also defined in {seen[name]}",
                                      line, 0, path=path)
                else:
                    seen[name] = path


class UnpinnedRequirement(Rule):
    """Flags requirement lines without ``==``.

    What it does:
        Test text rule.
    """

    code = "MLC995"
    name = "unpinned"
    summary = "requirement not pinned"
    file_kinds = ("text",)
    text_files = ("requirements*.txt",)

    def check(self, ctx):
        """Yield one finding per unpinned requirement.

        Args:
            ctx: The file context.
        """
        for number, line in enumerate(ctx.source.splitlines(), start=1):
            body = line.split("#")[0].strip()
            if body and "==" not in body:
                yield api.Finding(self.code, f"`{body}` is not pinned", number, 0)


class BreaksCode(Rule):
    """Offers a fix whose output does not parse.

    What it does:
        Test rule for refused fixes.
    """

    code = "MLC996"
    name = "breaks-code"
    summary = "broken fix"
    fix_safety = "safe"
    requires_text = ("BREAK",)

    def check(self, ctx):
        """Yield a finding with a fix that deletes a colon.

        Args:
            ctx: The file context.
        """
        for node in _functions(ctx.module):
            yield ctx.finding(self.code, node.name, "will break",
                              Fix("safe", "break", (ctx.edit(node.name, "x("),)))


class PreviewRule(Rule):
    """Preview rule, enabled only by its exact code.

    What it does:
        Test rule.
    """

    code = "MLC997"
    name = "preview"
    summary = "preview"
    default = "preview"

    def check(self, ctx):
        """Flag the module.

        Args:
            ctx: The file context.
        """
        yield api.Finding(self.code, "preview finding", 1, 0)


class CallDepth(api.AstVisitorRule, ProjectRule):
    """Flags calls nested inside another call; collects top-level function names.

    What it does:
        Test ast visitor rule (one walk, ancestors, a project rule collecting after it).
    """

    code = "MLC981"
    name = "call-depth"
    summary = "nested call"
    requires_text = ("(",)

    def begin_file(self, ctx):
        """Reset the names.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.names = []

    def visit_Call(self, node):
        """Report a call inside a call.

        Args:
            node: The call.
        """
        if any(isinstance(a, ast.Call) for a in self.ctx.ancestors):
            self.report(node.func, f"nested call at depth {len(self.ctx.ancestors)}")

    def visit_FunctionDef(self, node):
        """Collect top-level names; hide nested functions.

        Args:
            node: The function.

        Returns:
            ``False`` for a nested function, so its calls are not visited.
        """
        if len(self.ctx.ancestors) == 1:
            self.names.append(node.name)
            return True
        return False

    def collect(self, ctx):
        """Return what the walk collected.

        Args:
            ctx: The file context.

        Returns:
            The top-level function names.
        """
        return self.names


class Segfaults(Rule):
    """Kills its process on files containing ``SEGFAULT`` (a native crash in a worker).

    What it does:
        Test rule for worker crashes.
    """

    code = "MLC982"
    name = "segfaults"
    summary = "kills the worker"
    default = "off"
    requires_text = ("SEGFAULT",)

    def check(self, ctx):
        """Die like a crash in native code would.

        Args:
            ctx: The file context.
        """
        import multiprocessing
        import signal

        if multiprocessing.parent_process() is not None:  # a pool worker, never the test process
            os.kill(os.getpid(), signal.SIGSEGV)
        return ()


class NamedCalls(api.CstVisitorRule):
    """Flags calls of ``danger`` with libcst handlers run in the batched pass.

    What it does:
        Test libcst visitor rule.
    """

    code = "MLC983"
    name = "named-calls"
    summary = "danger call"
    requires_text = ("danger",)

    def visit_Call(self, node):
        """Report ``danger(...)``.

        Args:
            node: The libcst call.
        """
        if isinstance(node.func, cst.Name) and node.func.value == "danger":
            self.report(node.func, "danger call")


TEST_RULES = (BadName, PrintCall, Crashes, DuplicateFunction, UnpinnedRequirement, BreaksCode,
              PreviewRule, CallDepth, Segfaults, NamedCalls)


def _functions(module):
    out = []

    def walk(body):
        for stmt in body:
            if isinstance(stmt, cst.FunctionDef):
                out.append(stmt)
                walk(stmt.body.body)
            elif isinstance(stmt, cst.ClassDef):
                walk(stmt.body.body)

    walk(module.body)
    return out


@pytest.fixture
def test_rules(monkeypatch):
    """Register the MLC99x rules for one test."""
    for rule in TEST_RULES:
        monkeypatch.setitem(api.REGISTRY, rule.code, rule)
    return TEST_RULES


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with a pyproject.toml, as the working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    return tmp_path


def write(root: Path, files: dict[str, str | bytes]) -> None:
    """Write files below a root."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run mlcheck-lint in process; return (exit code, stdout, stderr)."""
    from mlcheck_lint.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *args: str) -> tuple[int, dict]:
    """Run with --format json and parse the output."""
    code, out, err = run_cli(capsys, "--format", "json", *args)
    assert out, err
    return code, json.loads(out)


def notebook(*cells: tuple[str, str]) -> str:
    """Return a notebook's JSON with (cell_type, source) cells."""
    return json.dumps({"cells": [{"cell_type": kind, "metadata": {}, "source": src.splitlines(True),
                                  **({"outputs": [], "execution_count": None} if kind == "code" else {})}
                                 for kind, src in cells],
                       "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1)


__all__ = ["os"]
