"""The train_invariants fixture in real pytest sessions: use, failure output, JSON report."""

from __future__ import annotations

import json

import pytest

# Imported (and warmed up) here, before any in-process session: pytester restores
# sys.modules after each in-process run, and neither torch nor the submodules it imports
# lazily on first use (torch._dynamo on the first optimizer step) can be imported twice
# in one process.
torch = pytest.importorskip("torch")


def _warm_up_torch():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    for make in (torch.optim.SGD, torch.optim.Adam):
        opt = make(model.parameters(), lr=0.1)
        # One step per optimizer, only to warm torch up: no gradients to clear between.
        model(torch.randn(4, 2)).sum().backward()
        opt.step()  # noqa: MLC301


_warm_up_torch()

MODELS = '''
import pytest
import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self, forget_registration=False):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(4, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU())
        self.head = nn.Linear(16, 3)
        blocks = [nn.Linear(16, 16)]
        self.extra = blocks if forget_registration else nn.ModuleList(blocks)

    def forward(self, x):
        h = self.body(x)
        for block in self.extra:
            h = torch.relu(block(h))
        return self.head(h)


def loss_fn(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)
'''

PASSING = '''
def test_trains(train_invariants, batch):
    values = train_invariants.check_step(Net(), loss_fn, batch)
    assert values["updated"] == 7


def test_overfits(train_invariants, batch):
    train_invariants.check_overfit(Net(), loss_fn, batch)


def test_loop(train_invariants, batch):
    def step(model, optimizer, b):
        optimizer.zero_grad()
        loss = loss_fn(model, b)
        loss.backward()
        optimizer.step()
        return loss

    train_invariants.check_training_loop(
        step, Net(), lambda ps: torch.optim.SGD(ps, lr=0.1), [batch, batch, batch])


def test_eval(train_invariants, batch):
    model = Net()

    def evaluate(x):
        model.eval()
        with torch.no_grad():
            return model(x).argmax(-1)

    assert train_invariants.check_eval(model, evaluate, batch[0]).shape == (16,)
'''

FAILING = '''
def test_unregistered_block(train_invariants, batch):
    train_invariants.check_step(Net(forget_registration=True), loss_fn, batch)


def test_eval_in_training_mode(train_invariants, batch):
    model = Net()
    train_invariants.check_eval(model, lambda: model(batch[0]).detach())
'''


def train_records(path):
    data = json.loads(path.read_text())
    return {(r["nodeid"].split("::")[1], r["name"]): r for r in data["records"]
            if r["kind"] == "train"}


def test_fixture_passes_on_a_healthy_model_and_reports_counts(pytester: pytest.Pytester):
    pytester.makepyfile(test_ok=MODELS + PASSING)
    path = pytester.path / "report.json"
    result = pytester.runpytest("-p", "no:cacheprovider", f"--mlcheck-report={path}")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*mlcheck*", "*4 checks: 4 ok*"])
    records = train_records(path)
    assert set(records) == {("test_trains", "check_step"), ("test_overfits", "check_overfit"),
                            ("test_loop", "check_training_loop"), ("test_eval", "check_eval")}
    assert {r["verdict"] for r in records.values()} == {"ok"}
    step = records[("test_trains", "check_step")]["values"]
    assert (step["trainable"], step["frozen"], step["updated"]) == (7, 0, 7)
    assert records[("test_loop", "check_training_loop")]["values"]["steps"] == 3
    overfit = records[("test_overfits", "check_overfit")]["values"]
    assert overfit["loss_last"] <= overfit["target"] < overfit["loss_first"]


def test_failure_messages_name_the_culprits(pytester: pytest.Pytester):
    pytester.makepyfile(test_bad=MODELS + FAILING)
    path = pytester.path / "report.json"
    result = pytester.runpytest("-p", "no:cacheprovider", f"--mlcheck-report={path}")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*check_step: 1 problem training Net*",
        "*extra[[]0[]]: a submodule (Linear, 2 trainable parameters) kept in a plain list;"
        " fix: hold it in nn.ModuleList*",
    ])
    result.stdout.fnmatch_lines([
        "*check_eval: 2 problems evaluating Net*",
        "*these change their output in training mode: body.1 (BatchNorm1d)*",
        "*buffer body.1.running_mean*",
    ])
    records = train_records(path)
    bad = records[("test_unregistered_block", "check_step")]
    assert bad["verdict"] == "FAILED" and bad["values"]["problems"]["hidden"] == ["extra[0]"]
    assert "nn.ModuleList" in bad["message"]
    evaluation = records[("test_eval_in_training_mode", "check_eval")]
    assert evaluation["verdict"] == "FAILED"
    assert "body.1" in evaluation["values"]["modules_in_training_mode"]


EVAL_ONLY = '''
def test_eval_ok(train_invariants, batch):
    model = Net().eval()
    train_invariants.check_eval(model, lambda: model(batch[0]).detach())


def test_eval_in_training_mode(train_invariants, batch):
    model = Net()
    train_invariants.check_eval(model, lambda: model(batch[0]).detach())
'''


def test_records_reach_the_json_report_under_xdist(pytester: pytest.Pytester):
    pytest.importorskip("xdist")
    # check_eval only: no optimizer step, so the workers skip torch's slow first-step imports.
    pytester.makepyfile(test_a=MODELS + EVAL_ONLY, test_b=MODELS + EVAL_ONLY)
    path = pytester.path / "report.json"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2",
                                           f"--mlcheck-report={path}")
    result.assert_outcomes(passed=2, failed=2)
    data = json.loads(path.read_text())
    seen = sorted((r["nodeid"], r["verdict"]) for r in data["records"] if r["kind"] == "train")
    assert seen == [("test_a.py::test_eval_in_training_mode", "FAILED"),
                    ("test_a.py::test_eval_ok", "ok"),
                    ("test_b.py::test_eval_in_training_mode", "FAILED"),
                    ("test_b.py::test_eval_ok", "ok")]


def test_without_torch_the_fixture_says_what_to_install(numpy_only, pytester: pytest.Pytester):
    pytester.makepyfile(test_np='''
def test_needs_torch(train_invariants):
    train_invariants.check_step(object(), None, None)
''')
    result = numpy_only("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ImportError: check_step needs torch, which is not installed*"])
