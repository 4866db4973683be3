"""ML smell rules through the real engine: notebooks, the project phase of MLC308, fixes
applied by ``--fix --unsafe-fixes``, and qualified-name resolution."""

from __future__ import annotations

import ast

import pytest
from lint_engine_testkit import notebook, project, run_cli, run_json, write  # noqa: F401

from mlcheck_lint.qualnames import QualifiedNames
from mlcheck_lint.rules.smells.checkpoints import admits_unsafe_default
from mlcheck_lint.rules.smells.estimators import is_held_out_name

TRAIN_NB = notebook(
    ("markdown", "# Training\n"),
    ("code", "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"),
    ("code", "class Net(nn.Module):\n    def forward(self, x):\n        return F.dropout(x, 0.5)\n"),
    ("code", "net = Net()\nout = net.forward(torch.ones(2))\n"),
    ("code", "import pandas as pd\ndf = pd.read_csv('train.csv')\n"),
    ("code", "df.dropna()\ndf.head()\n"),
)


def test_notebook_findings_carry_cell_numbers_and_earlier_imports(project, capsys):
    write(project, {"train.ipynb": TRAIN_NB})
    code, data = run_json(capsys, "--select", "MLC3", "--no-cache", ".")
    assert code == 1
    found = [(f["code"], f["cell"], f["line"]) for f in data["findings"]]
    # F, nn and pd are imported in earlier cells; `df.head()` is the cell's shown value.
    assert found == [("MLC303", 3, 3), ("MLC302", 4, 2), ("MLC314", 6, 1)], found


CROSS_CELL_NB = notebook(
    ("code", "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"),
    ("code", "def train_step(model, batch, opt):\n    model(batch).sum().backward()\n    opt.step()\n"),
    ("code", "class Net(nn.Module):\n    def forward(self, x):\n        return F.softmax(x, dim=1)\n"),
    ("code", "model = Net()\nlayer = nn.Dropout()\nopt = torch.optim.Adam(model.parameters())\n"),
    ("code", "for batch in []:\n    train_step(model, batch, opt)\n"),
    ("code", "loss = F.cross_entropy(model(torch.ones(2, 3)), torch.zeros(2).long())\n"),
    ("code", "layer.training = False\nmodel.training = False\n"),
    ("code", "print(1)\n"),
)


def test_notebook_state_crosses_cells_and_findings_stay_in_their_cell(project, capsys):
    write(project, {"cells.ipynb": CROSS_CELL_NB})
    code, data = run_json(capsys, "--select", "MLC301,MLC306,MLC330", "--no-cache", ".")
    assert code == 1
    found = [(f["code"], f["cell"], f["line"]) for f in data["findings"]]
    # the helper sits in cell 2 and its caller in cell 5: the finding points at the call;
    # Net (cell 3) feeds cross_entropy in cell 6; nn.Dropout() of cell 4 is a single layer
    assert found == [("MLC301", 5, 2), ("MLC306", 6, 1), ("MLC330", 7, 2)], found


def test_unsafe_fixes_apply_through_the_cli_and_the_result_parses(project, capsys):
    source = ("import torch\nimport numpy as np\nimport torch.nn.functional as F\n\n\n"
              "def f(logits, x, p):\n"
              "    p.require_grad = False\n"
              "    a = torch.log(torch.softmax(logits, -1))\n"
              "    return a, x == np.nan\n")
    write(project, {"m.py": source})
    code, out, _ = run_cli(capsys, "--select", "MLC3", "--no-cache", "--fix", ".")
    assert (project / "m.py").read_text() == source, "unsafe fixes must not apply without --unsafe-fixes"
    run_cli(capsys, "--select", "MLC3", "--no-cache", "--fix", "--unsafe-fixes", ".")
    fixed = (project / "m.py").read_text()
    ast.parse(fixed)
    assert "p.requires_grad = False" in fixed
    assert "torch.log_softmax(logits, -1)" in fixed
    assert "np.isnan(x)" in fixed
    code, data = run_json(capsys, "--select", "MLC3", "--no-cache", ".")
    assert code == 0 and data["findings"] == []


LOADS = "import torch\n\n\ndef restore(p):\n    return torch.load(p), torch.load(p, weights_only=True)\n"


@pytest.mark.parametrize(("declared", "flagged"), [
    ('[project]\nname = "x"\ndependencies = ["torch>=2.0"]\n', True),
    ('[project]\nname = "x"\ndependencies = ["torch"]\n', True),
    ('[project]\nname = "x"\ndependencies = ["torch>=2.6"]\n', False),
    ('[project]\nname = "x"\ndependencies = ["numpy"]\n', False),
])
def test_mlc308_reads_the_declared_torch_requirement(project, capsys, declared, flagged):
    write(project, {"pyproject.toml": declared, "load.py": LOADS})
    _, data = run_json(capsys, "--select", "MLC308", "--no-cache", ".")
    found = [(f["code"], f["path"], f["line"]) for f in data["findings"]]
    assert found == ([("MLC308", "load.py", 5)] if flagged else []), found
    if flagged:
        assert "pyproject.toml" in data["findings"][0]["message"]


def test_mlc308_requirements_txt_counts_too(project, capsys):
    write(project, {"requirements.txt": "torch==2.4.1\n", "load.py": LOADS})
    _, data = run_json(capsys, "--select", "MLC308", "--no-cache", ".")
    assert [f["line"] for f in data["findings"]] == [5]


def test_mlc308_implicit_through_kwargs_that_lack_weights_only(project, capsys):
    # A dict it can follow without weights_only is the implicit case; one it cannot
    # follow (a parameter) is left alone.
    write(project, {"requirements.txt": "torch==2.4.1\n", "load.py": (
        "import torch\n\n\ndef restore(p, options):\n    opts = {'map_location': 'cpu'}\n"
        "    return torch.load(p, **opts), torch.load(p, **options), torch.load(p, **{'mmap': True})\n"
        "\n\ndef changed(p, key, other):\n    a = {}\n    a[key] = False\n    b = {}\n    b.update(other)\n"
        "    c = {}\n    c |= other\n    d = {}\n    d.setdefault('weights_only', False)\n"
        "    return torch.load(p, **a), torch.load(p, **b), torch.load(p, **c), torch.load(p, **d)\n")})
    _, data = run_json(capsys, "--select", "MLC308", "--no-cache", ".")
    assert [(f["line"], f["column"]) for f in data["findings"]] == [(6, 12), (6, 61)], data["findings"]


def test_admits_unsafe_default():
    from packaging.requirements import Requirement

    assert admits_unsafe_default(Requirement("torch<3"))
    assert admits_unsafe_default(Requirement("torch~=2.5"))
    assert not admits_unsafe_default(Requirement("torch>=2.6,<3"))
    assert not admits_unsafe_default(Requirement("torch==2.7.0"))


def test_held_out_names():
    assert all(map(is_held_out_name, ["X_test", "x_val", "test_df", "valid_features", "Xtest", "X_dev", "yval"]))
    assert not any(map(is_held_out_name, ["value", "val", "interval", "device", "X_train", "X", "features"]))


@pytest.mark.parametrize(("source", "expr", "expected"), [
    ("import torch.nn.functional as F", "F.dropout", "torch.nn.functional.dropout"),
    ("from torch import nn", "nn.functional.dropout", "torch.nn.functional.dropout"),
    ("from torch.nn import functional as fn", "fn.dropout", "torch.nn.functional.dropout"),
    ("import numpy as np", "np.nan", "numpy.nan"),
    ("import torch.nn", "torch.nn.Linear", "torch.nn.Linear"),
    ("import torch\nF = torch.nn.functional", "F.softmax", "torch.nn.functional.softmax"),
    ("from torch.nn.functional import dropout as drop", "drop", "torch.nn.functional.dropout"),
    ("from . import nn", "nn.Linear", ".nn.Linear"),
    ("try:\n    import torch.nn.functional as F\nexcept ImportError:\n    F = None", "F.relu",
     "torch.nn.functional.relu"),
    ("def f():\n    nn = 1\n    return nn.Linear", "nn.Linear", None),
    ("", "self.forward", None),
])
def test_qualified_names(source, expr, expected):
    names = QualifiedNames(ast.parse(source))
    assert names.resolve(ast.parse(expr, mode="eval").body) == expected


def test_local_name_spells_a_qualified_name_through_the_files_imports():
    names = QualifiedNames(ast.parse("import numpy as np\nimport torch\nimport torch.nn.functional as F\n"))
    assert names.local_name("numpy.isnan") == "np.isnan"
    assert names.local_name("torch.nn.functional.logsigmoid") == "F.logsigmoid"
    assert names.local_name("pandas.isna") is None
    assert names.imports("torch") and not names.imports("pandas")
