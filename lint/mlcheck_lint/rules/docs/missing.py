"""MLC101-MLC103: public modules, classes and functions without a docstring."""

from __future__ import annotations

from typing import Any, Iterable

from ...api import Finding, ProjectRule, Rule, register
from .analysis import at_name, file_docs, finding, name_position


@register
class ModuleWithoutDocstring(Rule):
    """A public module has no docstring.

    What it does:
        Reports a public module (no path component starts with an underscore, not a
        test module) with code but no module docstring. Empty modules are ignored.

    Why is this bad?
        The module docstring is the first thing ``help()``, IDEs and API docs show; it
        says what the module is for and where its pieces fit in the model code.

    Example:
        ```python
        import torch

        def train_step(model, batch): ...
        ```

    Use instead:
        ```python
        \"\"\"Training loop pieces: one optimisation step and its metrics.\"\"\"
        import torch

        def train_step(model, batch): ...
        ```
    """

    code = "MLC101"
    name = "module-without-docstring"
    summary = "public module without a docstring"
    default = "off"

    def check(self, ctx: Any) -> Iterable[Finding]:
        """Yield a finding for a public module without a docstring.

        Args:
            ctx: The file's context.

        Returns:
            The findings.
        """
        fd = file_docs(ctx)
        if not fd.module_public or fd.module_doc is not None or not ctx.tree.body:
            return []
        return [finding(ctx, self.code, 1, 0, f"public module `{ctx.path}` has no docstring: "
                         "add one at the top saying what the module is for")]


@register
class ClassWithoutDocstring(Rule):
    """A public class has no docstring.

    What it does:
        Reports a public class without a docstring. Classes nested in functions,
        classes of private modules, names left out of a literal ``__all__``, and
        nested ``Meta``/``Config`` classes are not public API.

    Why is this bad?
        A model, dataset or transform class without a docstring leaves its users to
        guess what it computes, which shapes it expects and what its constructor
        arguments mean.

    Example:
        ```python
        class PatchEmbed(nn.Module):
            def __init__(self, patch_size=16): ...
        ```

    Use instead:
        ```python
        class PatchEmbed(nn.Module):
            \"\"\"Split an image into patches and embed each one.

            Args:
                patch_size: Side of a square patch, in pixels.
            \"\"\"
        ```
    """

    code = "MLC102"
    name = "class-without-docstring"
    summary = "public class without a docstring"
    default = "on"
    requires_text = ("class",)

    def check(self, ctx: Any) -> Iterable[Finding]:
        """Yield a finding per public class without a docstring.

        Args:
            ctx: The file's context.

        Returns:
            The findings.
        """
        fd = file_docs(ctx)
        return [at_name(ctx, d, self.code, f"public class `{d.qualname}` has no docstring: say what it "
                         "represents and document its constructor arguments")
                for d in fd.defs if d.kind == "class" and d.public and d.doc is None and not d.generated_doc]


def api_facts(ctx: Any) -> dict[str, Any]:
    """Return the facts MLC103 and MLC130 share, computed once per file.

    Args:
        ctx: The file's context.

    Returns:
        Undocumented public callables, class documentation and public-object counts.
    """
    return ctx.cache("docs.api-facts", lambda: _api_facts(ctx))


def _api_facts(ctx: Any) -> dict[str, Any]:
    fd = file_docs(ctx)
    classes = {}
    missing = []
    public = documented = 0
    if fd.module_public and ctx.tree.body:
        public += 1
        documented += fd.module_doc is not None
    for d in fd.defs:
        if d.kind == "class":
            classes[d.qualname] = {"name": d.name, "bases": d.bases,
                                   "documented": sorted(m.name for m in fd.defs
                                                        if m.owner is d and m.kind == "function"
                                                        and m.doc is not None)}
        if not d.public or d.generated_doc:
            continue
        if d.kind == "class":
            public += 1
            documented += d.doc is not None
            continue
        if d.overload or d.accessor:
            continue
        if d.scope == "class" and any(x.rsplit(".", 1)[-1] == "override" for x in d.decorators):
            continue  # PEP 698 @override: the documentation lives on the overridden method
        if d.name.startswith("pytest_") or any(x.rsplit(".", 1)[-1] == "hookimpl" for x in d.decorators):
            continue  # a pytest/pluggy hook implementation: its hookspec documents it
        if d.name.startswith("__") and d.name.endswith("__") and d.name != "__init__":
            continue
        if d.name == "__init__":
            # Constructor arguments may be documented in the class docstring, and a class
            # without one is already reported by MLC102, which asks for them.
            continue
        public += 1
        if d.doc is not None:
            documented += 1
            continue
        line, col, end_line, end_col = name_position(ctx, d.node)
        owner_q = d.owner.qualname if d.scope == "class" and d.owner is not None else None
        missing.append({"qualname": d.qualname, "name": d.name, "class": owner_q,
                        "kind": "method" if owner_q else "function",
                        "pos": [line, col, end_line, end_col], "cell": ctx.cell})
    return {"classes": classes, "missing": missing, "public": public, "documented": documented}


def inherits_doc(project: Any, code: str, path: str, item: dict[str, Any]) -> bool:
    """Say whether a method overrides a documented method of a base class in the project.

    Args:
        project: The project's context.
        code: The rule whose facts to read (MLC103 or MLC130).
        path: The file of the method.
        item: The method's entry in that file's ``missing`` facts.

    Returns:
        Whether it inherits documentation.
    """
    facts = project.facts.get(code, {})

    def index() -> dict[str, list[tuple[str, dict[str, Any]]]]:
        by_name: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for p, f in facts.items():
            if not f:
                continue
            for cls in f["classes"].values():
                by_name.setdefault(cls["name"], []).append((p, cls))
        return by_name

    by_name = project.cache(("docs.class-index", code), index)
    own = facts.get(path, {}).get("classes", {}).get(item["class"])
    if own is None:
        return False
    seen: set[int] = set()
    stack = [b.rsplit(".", 1)[-1] for b in own["bases"]]
    while stack:
        base = stack.pop()
        for _, cls in by_name.get(base, ()):
            if id(cls) in seen:
                continue
            seen.add(id(cls))
            if item["name"] in cls["documented"]:
                return True
            stack.extend(b.rsplit(".", 1)[-1] for b in cls["bases"])
    return False


@register
class FunctionWithoutDocstring(ProjectRule):
    """A public function or method has no docstring.

    What it does:
        Reports a public function or method without a docstring. Exempt: nested
        functions, ``@typing.overload`` stubs, property setters and deleters, magic
        methods, ``__init__`` (its arguments may be documented in the class docstring,
        and a class without one is reported by MLC102), and a method overriding a
        documented method of a base class defined in the project, which inherits that
        documentation (resolved across files), and a method marked ``@override``
        (PEP 698), which declares that its documentation lives on the base class.
        pytest and pluggy hook implementations (``pytest_*`` functions, ``@hookimpl``)
        are documented by their hook specification and are exempt too.

    Why is this bad?
        Callers of an undocumented ``forward``, ``collate`` or ``load_checkpoint`` learn
        its contract (shapes, units, side effects) only by reading its body.

    Example:
        ```python
        def accuracy(logits, labels):
            return (logits.argmax(-1) == labels).float().mean()
        ```

    Use instead:
        ```python
        def accuracy(logits, labels):
            \"\"\"Top-1 accuracy of ``logits`` (N, C) against integer ``labels`` (N,).\"\"\"
            return (logits.argmax(-1) == labels).float().mean()
        ```
    """

    code = "MLC103"
    name = "function-without-docstring"
    summary = "public function or method without a docstring"
    default = "on"
    requires_text = ("def",)

    def collect(self, ctx: Any) -> Any:
        """Return the file's undocumented public callables and its classes' documented methods.

        Args:
            ctx: The file's context.

        Returns:
            JSON-serialisable facts.
        """
        facts = api_facts(ctx)
        return {"classes": facts["classes"], "missing": facts["missing"]}

    def check_project(self, project: Any) -> Iterable[Finding]:
        """Yield one finding per undocumented public callable that inherits no documentation.

        Args:
            project: The project's context.

        Returns:
            The findings.
        """
        out = []
        for path in sorted(project.facts.get(self.code, {})):
            facts = project.facts[self.code][path]
            if not facts:
                continue
            for item in facts["missing"]:
                if item["class"] and inherits_doc(project, self.code, path, item):
                    continue
                line, col, end_line, end_col = item["pos"]
                what = "method" if item["class"] else "function"
                out.append(Finding(self.code, f"public {what} `{item['qualname']}` has no docstring: say what "
                                   "it does, its arguments and what it returns", line, col, end_line, end_col,
                                   path=path, cell=item.get("cell")))
        return out
