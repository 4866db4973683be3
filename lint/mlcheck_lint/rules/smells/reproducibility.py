"""Reproducibility and portability smells: unseeded entry points, determinism never
enabled, hard-coded CUDA devices."""

from __future__ import annotations

import ast
from typing import Any

from ...api import register
from ._base import ML_IMPORTS, SmellRule, dotted_name, notebook_state, qualified_names

_SEEDS = {"random.seed", "numpy.random.seed", "torch.manual_seed", "torch.cuda.manual_seed",
          "torch.cuda.manual_seed_all", "torch.random.manual_seed", "tensorflow.random.set_seed",
          "tensorflow.set_random_seed", "lightning.seed_everything", "pytorch_lightning.seed_everything",
          "lightning.pytorch.seed_everything", "lightning.fabric.seed_everything", "transformers.set_seed",
          "accelerate.utils.set_seed", "keras.utils.set_random_seed", "tensorflow.keras.utils.set_random_seed"}
_SEED_NAMES = frozenset({"seed_everything", "set_seed", "set_random_seed", "fix_seed", "seed_all", "set_seeds"})
_RANDOM_PREFIXES = ("random.", "numpy.random.", "torch.rand", "torch.randn", "torch.randint", "torch.randperm",
                    "torch.normal", "torch.bernoulli", "torch.multinomial", "torch.nn.init.",
                    "tensorflow.random.", "sklearn.model_selection.train_test_split")
_NOT_RANDOM = {"numpy.random.default_rng", "numpy.random.RandomState", "numpy.random.Generator",
               "random.Random", "numpy.random.seed", "random.seed", "torch.random.manual_seed"}
_DETERMINISM = {"torch.use_deterministic_algorithms", "torch.backends.cudnn.deterministic",
                "lightning.seed_everything", "pytorch_lightning.seed_everything"}


class _Randomness:
    def __init__(self) -> None:
        self.seeded = False
        self.deterministic = False
        self.first_random: tuple[ast.AST, str] | None = None
        self.first_seed: ast.AST | None = None


class _EntryPointFacts(SmellRule):
    """What MLC316 and MLC325 share: where the file draws randomness, seeds, and runs."""

    requires_text = ("random", "rand", "seed", "shuffle", "init.") + ML_IMPORTS

    def begin_file(self, ctx: Any) -> None:
        """Start a file.

        Args:
            ctx: The file context.
        """
        super().begin_file(ctx)
        self.facts: _Randomness = notebook_state(ctx, "randomness", _Randomness)
        self.entry = False

    def visit_If(self, node: ast.If) -> None:
        """A ``__main__`` guard makes the file an entry point.

        Args:
            node: The statement.
        """
        test = node.test
        if type(test) is ast.Compare and dotted_name(test.left) == "__name__":
            self.entry = True

    def visit_For(self, node: ast.AST) -> None:
        """A loop at module level (a script's training loop) makes the file an entry point.

        Args:
            node: The loop.
        """
        if len(self.ctx.ancestors) == 1:
            self.entry = True

    visit_While = visit_For

    def visit_Assign(self, node: ast.Assign) -> None:
        """``torch.backends.cudnn.deterministic = True`` enables determinism.

        Args:
            node: The assignment.
        """
        names = qualified_names(self.ctx)
        for target in node.targets:
            if names.resolve(target) == "torch.backends.cudnn.deterministic":
                self.facts.deterministic = True

    def visit_Call(self, node: ast.Call) -> None:
        """Record seeding, randomness and determinism calls.

        Args:
            node: The call.
        """
        names = qualified_names(self.ctx)
        qual = names.resolve(node.func)
        last = dotted_name(node.func)
        last = last.rsplit(".", 1)[-1] if last else ""
        if qual in _DETERMINISM or last == "use_deterministic_algorithms":
            if qual in ("lightning.seed_everything", "pytorch_lightning.seed_everything"):
                self.facts.deterministic = self.facts.deterministic or any(
                    kw.arg == "workers" for kw in node.keywords)
            else:
                self.facts.deterministic = True
        if any(kw.arg == "deterministic" and isinstance(kw.value, ast.Constant) and kw.value.value is True
               for kw in node.keywords):
            self.facts.deterministic = True  # Trainer(deterministic=True)
        if qual in _SEEDS or last in _SEED_NAMES or (qual in ("numpy.random.default_rng", "numpy.random.RandomState",
                                                              "random.Random") and node.args):
            self.facts.seeded = True
            if self.facts.first_seed is None and self.ctx.cell is None:
                self.facts.first_seed = node
            return
        if qual is None or qual in _NOT_RANDOM:
            if qual is None and any(kw.arg == "shuffle" and isinstance(kw.value, ast.Constant) and kw.value.value
                                    is True for kw in node.keywords) and last == "DataLoader":
                qual = "DataLoader(shuffle=True)"
            else:
                return
        if qual.startswith(_RANDOM_PREFIXES) or qual.endswith("DataLoader") and any(
                kw.arg == "shuffle" for kw in node.keywords) or qual == "DataLoader(shuffle=True)":
            if self.facts.first_random is None and self.ctx.cell is None:
                self.facts.first_random = (node, qual)


@register
class UnseededEntryPoint(_EntryPointFacts):
    """Flags a training entry point that draws random numbers and never seeds them.

    What it does:
        Finds a script (an ``if __name__ == "__main__":`` guard or a loop at module
        level) that uses ``random``, ``numpy.random``, torch's random functions,
        ``nn.init`` or a shuffling ``DataLoader``, and never calls a seeding function
        (``random.seed``, ``np.random.seed``, ``torch.manual_seed``, ``seed_everything``,
        ``set_seed``, a seeded ``default_rng``).

    Why is this bad?
        Each run draws different initial weights, splits and batch orders, so two runs
        of the same code disagree and a regression cannot be told from noise.

    Example:
        ```python
        if __name__ == "__main__":
            weights = torch.randn(10, 10)
            train(weights)
        ```

    Use instead:
        ```python
        if __name__ == "__main__":
            torch.manual_seed(0)
            weights = torch.randn(10, 10)
            train(weights)
        ```
    """

    code = "MLC316"
    name = "unseeded-entry-point"
    summary = "entry-point script uses randomness and never seeds it"
    default = "preview"

    def end_file(self) -> list:
        """Report an unseeded entry point.

        Returns:
            The findings.
        """
        if self.entry and not self.facts.seeded and self.facts.first_random is not None:
            node, qual = self.facts.first_random
            self.report(node, f"this script draws random numbers (`{qual}`) but never seeds them, so runs "
                              f"are not repeatable; call `torch.manual_seed(...)` / `np.random.seed(...)` / "
                              f"`random.seed(...)` (or `seed_everything`) at start-up")
        return super().end_file()


@register
class DeterminismNotEnabled(_EntryPointFacts):
    """Flags a seeded training entry point that never enables deterministic algorithms.

    What it does:
        Finds a script that seeds its random generators but never calls
        ``torch.use_deterministic_algorithms(True)``, sets
        ``torch.backends.cudnn.deterministic = True``, or asks its framework for
        determinism (``Trainer(deterministic=True)``).

    Why is this bad?
        Seeding alone does not make GPU training repeatable: cuDNN autotuning and
        non-deterministic kernels (atomics in scatter, index_add, some convolutions)
        change results from run to run, so the seed gives a false sense of
        reproducibility.

    Example:
        ```python
        torch.manual_seed(0)
        train()
        ```

    Use instead:
        ```python
        torch.manual_seed(0)
        torch.use_deterministic_algorithms(True)
        train()
        ```
    """

    code = "MLC325"
    name = "determinism-not-enabled"
    summary = "seeded training script never enables deterministic algorithms"
    default = "off"

    def end_file(self) -> list:
        """Report a seeded entry point without determinism.

        Returns:
            The findings.
        """
        names = qualified_names(self.ctx)
        if self.entry and self.facts.first_seed is not None and not self.facts.deterministic \
                and names.imports("torch"):
            self.report(self.facts.first_seed, "the script seeds its generators but never enables "
                                               "deterministic algorithms, so GPU runs still differ; call "
                                               "`torch.use_deterministic_algorithms(True)`")
        return super().end_file()


def _cuda_literal(node: ast.AST) -> bool:
    return type(node) is ast.Constant and isinstance(node.value, str) and \
        (node.value == "cuda" or node.value.startswith("cuda:"))  # type: ignore[attr-defined]


@register
class HardcodedCuda(SmellRule):
    """Flags hard-coded CUDA devices.

    What it does:
        Finds ``.cuda()`` calls and ``"cuda"`` device strings (``.to("cuda")``,
        ``device="cuda"``, ``torch.device("cuda:0")``) that are not chosen by a
        ``torch.cuda.is_available()`` test.

    Why is this bad?
        The code fails on machines without a GPU (CI runners, laptops, Apple silicon)
        and cannot be pointed at another device without editing it.

    Example:
        ```python
        model = model.cuda()
        ```

    Use instead:
        ```python
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model = model.to(device)
        ```
    """

    code = "MLC318"
    name = "hardcoded-cuda"
    summary = "hard-coded .cuda() or device='cuda'"
    default = "off"
    requires_text = ("cuda",)

    def _guarded(self) -> bool:
        for a in self.ctx.ancestors:
            if type(a) in (ast.If, ast.IfExp) and "is_available" in ast.dump(a.test):  # type: ignore[attr-defined]
                return True
        return False

    def visit_Call(self, node: ast.Call) -> None:
        """Check a call.

        Args:
            node: The call.
        """
        func = node.func
        if type(func) is ast.Attribute and func.attr == "cuda" and not node.args and not node.keywords:
            if not self._guarded() and qualified_names(self.ctx).imports("torch"):
                self.report(node, "`.cuda()` hard-codes the GPU; move with `.to(device)` where `device` is "
                                  "chosen once (`cuda` if available, else `cpu`)")
            return
        literals = [a for a in node.args if _cuda_literal(a)] if (
            (type(func) is ast.Attribute and func.attr == "to")
            or qualified_names(self.ctx).resolve(func) == "torch.device") else []
        literals += [kw.value for kw in node.keywords if kw.arg == "device" and _cuda_literal(kw.value)]
        if literals and not self._guarded():
            self.report(literals[0], f"device `{literals[0].value}` is hard-coded; pass a `device` chosen "  # type: ignore[attr-defined]
                                     f"once (`cuda` if available, else `cpu`)")
