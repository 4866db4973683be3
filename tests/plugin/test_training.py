"""The train_invariants checks, each proven on a seeded fault and on its fixed twin.

These call the plain functions directly (they are what the fixture's methods call);
tests/plugin/test_training_sessions.py runs them through real pytest sessions.
"""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from pytest_mlcheck import (  # noqa: E402
    assert_eval_clean,
    assert_overfits,
    assert_training_loop,
    assert_trains,
)
from pytest_mlcheck import report  # noqa: E402
from pytest_mlcheck.compare import UncomparableOutputError  # noqa: E402

# ---- tiny models and data ------------------------------------------------------------


def make_batch(n=16, features=4, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, features, generator=g), torch.randint(0, classes, (n,), generator=g)


def make_batches(count, n=8, seed=1):
    return [make_batch(n=n, seed=seed + i) for i in range(count)]


def ce(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y)


def sgd(params):
    return torch.optim.SGD(params, lr=0.1)


class MLP(nn.Module):
    def __init__(self, features=4, hidden=32, classes=3):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(features, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


class BlocksInList(nn.Module):
    """Seeded fault: hidden blocks kept in a plain Python list."""

    container = list

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.blocks = self.container([nn.Linear(4, 4), nn.Linear(4, 4)])
        self.out = nn.Linear(4, 3)

    def forward(self, x):
        for block in self.blocks:
            x = torch.tanh(block(x))
        return self.out(x)


class BlocksInModuleList(BlocksInList):
    container = nn.ModuleList


class ScalesInList(nn.Module):
    """Seeded fault: learnable per-feature scales kept in a plain Python list."""

    container = list

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.scales = self.container([nn.Parameter(torch.ones(4)), nn.Parameter(torch.ones(4))])
        self.out = nn.Linear(4, 3)

    def forward(self, x):
        for scale in self.scales:
            x = x * scale
        return self.out(x)


class ScalesInParameterList(ScalesInList):
    container = nn.ParameterList


class WeightMovedAfterWrapping(nn.Module):
    """Seeded fault: nn.Parameter(torch.randn(...)).to(torch.float64)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.weight = nn.Parameter(torch.randn(4, 3)).to(torch.float64)
        self.bias = nn.Parameter(torch.zeros(3, dtype=torch.float64))

    def forward(self, x):
        return (x.double() @ self.weight + self.bias).float()


class WeightMadeInFinalDtype(WeightMovedAfterWrapping):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.weight = nn.Parameter(torch.randn(4, 3, dtype=torch.float64))


class ConvBN(nn.Module):
    """A small feature extractor with BatchNorm, and a head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm1d(4)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        h = F.relu(self.bn(self.conv(x.unsqueeze(1))))
        return self.head(h.flatten(1))


def freeze_all_but_batchnorm(model):
    # Seeded fault: meant to freeze only the BatchNorm layers, the condition is inverted.
    for name, p in model.named_parameters():
        if not name.startswith("bn."):
            p.requires_grad_(False)
    return model


@pytest.fixture
def records():
    """The records emitted during the test (the plugin's own sink is restored after)."""
    previous = (report.current_nodeid(), report._active.sink)
    sink = []
    report.activate("test-node", sink)
    yield sink
    report.activate(*previous)


# ---- check_step ----------------------------------------------------------------------


def test_check_step_passes_on_a_healthy_model_and_records_counts(records):
    values = assert_trains(MLP(), ce, make_batch())
    assert values["trainable"] == 4 and values["frozen"] == 0 and values["updated"] == 4
    (record,) = records
    assert (record.kind, record.name, record.verdict) == ("train", "check_step", "ok")
    assert record.values["updated"] == 4 and record.nodeid == "test-node"


def test_check_step_fails_on_submodules_in_a_plain_list(records):
    with pytest.raises(AssertionError) as info:
        assert_trains(BlocksInList(), ce, make_batch())
    message = str(info.value)
    assert "blocks[0]" in message and "blocks[1]" in message
    assert "kept in a plain list" in message and "nn.ModuleList" in message
    assert records[-1].verdict == "FAILED"
    assert records[-1].values["problems"]["hidden"] == ["blocks[0]", "blocks[1]"]


def test_check_step_passes_on_the_module_list_twin():
    assert assert_trains(BlocksInModuleList(), ce, make_batch())["updated"] == 6


class WithTeacher(MLP):
    """A frozen teacher kept in a list on purpose, so it stays out of state_dict."""

    def __init__(self, freeze_teacher=True):
        super().__init__()
        teacher = MLP()
        teacher.requires_grad_(not freeze_teacher)
        self._teacher = [teacher]


def test_a_frozen_hidden_teacher_is_fine_and_a_trainable_one_is_not():
    assert assert_trains(WithTeacher(), ce, make_batch())["updated"] == 4
    with pytest.raises(AssertionError, match=r"_teacher\[0\]: a submodule \(MLP, 4 trainable"):
        assert_trains(WithTeacher(freeze_teacher=False), ce, make_batch())
    # declaring it frozen is the other way to say "on purpose"
    assert assert_trains(WithTeacher(freeze_teacher=False), ce, make_batch(),
                         frozen=["_teacher*"])["updated"] == 4


def test_check_step_fails_on_parameters_in_a_plain_list():
    with pytest.raises(AssertionError, match=r"scales\[0\]: a parameter kept in a plain list"):
        assert_trains(ScalesInList(), ce, make_batch())


def test_check_step_passes_on_the_parameter_list_twin():
    assert assert_trains(ScalesInParameterList(), ce, make_batch())["updated"] == 4


def test_check_step_fails_on_parameter_moved_after_wrapping(records):
    with pytest.raises(AssertionError) as info:
        assert_trains(WeightMovedAfterWrapping(), ce, make_batch())
    message = str(info.value)
    assert "weight: a non-leaf tensor requiring grad (made by ToCopyBackward0)" in message
    assert "nn.Parameter(torch.randn(..., dtype=torch.float64))" in message
    assert records[-1].values["unregistered"] == ["weight"]


def test_loop_and_overfit_also_report_a_parameter_moved_after_wrapping():
    with pytest.raises(AssertionError, match=r"weight: a non-leaf tensor requiring grad"):
        assert_overfits(WeightMovedAfterWrapping(), ce, make_batch())
    with pytest.raises(AssertionError, match=r"could not be deep-copied .* not registered"):
        assert_training_loop(step_with_zero_grad, WeightMovedAfterWrapping(), sgd, make_batches(1))


def test_a_model_that_cannot_be_copied_is_a_clear_error(records):
    with pytest.warns(FutureWarning):
        model = torch.nn.utils.weight_norm(nn.Linear(4, 3))
    with pytest.raises(TypeError, match=r"could not deep-copy the model \(Linear\).*parametrizations"):
        assert_overfits(model, ce, make_batch())
    assert records[-1].verdict == "ERROR"


def test_check_step_passes_when_the_parameter_is_made_in_its_final_dtype():
    assert assert_trains(WeightMadeInFinalDtype(), ce, make_batch())["updated"] == 2


def test_check_step_fails_when_all_but_batchnorm_are_frozen_by_accident(records):
    model = freeze_all_but_batchnorm(ConvBN())
    with pytest.raises(AssertionError) as info:
        assert_trains(model, ce, make_batch())
    message = str(info.value)
    assert "requires_grad=False but not listed in frozen (4)" in message
    for name in ("conv.weight", "conv.bias", "head.weight", "head.bias"):
        assert name in message
    assert "frozen=[...]" in message
    assert records[-1].values["problems"]["frozen_by_accident"] == [
        "conv.weight", "conv.bias", "head.weight", "head.bias"]
    assert records[-1].values["frozen"] == 4 and records[-1].values["updated"] == 2


def test_check_step_passes_on_the_unfrozen_twin_and_on_a_declared_freeze():
    assert assert_trains(ConvBN(), ce, make_batch())["updated"] == 6
    model = ConvBN()
    model.conv.requires_grad_(False)
    values = assert_trains(model, ce, make_batch(), frozen=["conv.*"])
    assert (values["trainable"], values["frozen"], values["updated"]) == (4, 2, 4)
    # a bare module name covers its parameters too
    assert assert_trains(model, ce, make_batch(), frozen="conv")["frozen"] == 2


def test_check_step_fails_when_a_declared_frozen_parameter_still_trains():
    with pytest.raises(AssertionError) as info:
        assert_trains(ConvBN(), ce, make_batch(), frozen=["conv.*"])
    message = str(info.value)
    assert "listed in frozen but got a gradient (2): conv.weight, conv.bias" in message
    assert "listed in frozen but changed (2): conv.weight, conv.bias" in message


class BiasBeforeBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(4, 16)  # its bias is cancelled by the BatchNorm
        self.bn = nn.BatchNorm1d(16)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(F.relu(self.bn(self.fc(x))))


def test_a_bias_cancelled_by_batchnorm_is_noted_not_failed():
    values = assert_trains(BiasBeforeBatchNorm(), ce, make_batch())
    assert values["updated"] == 5 and values["negligible_grad"] == ["fc.bias"]
    assert assert_training_loop(step_with_zero_grad, BiasBeforeBatchNorm(), sgd,
                                make_batches(3))["steps"] == 3


class UnusedHead(MLP):
    def __init__(self):
        super().__init__()
        self.aux = nn.Linear(32, 2)  # created, never called


class DeadLayer(MLP):
    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)).round() * 0)


def test_check_step_names_disconnected_and_dead_parameters():
    with pytest.raises(AssertionError, match=r"got no gradient \(2\): aux.weight, aux.bias"):
        assert_trains(UnusedHead(), ce, make_batch())
    with pytest.raises(AssertionError) as info:
        assert_trains(DeadLayer(), ce, make_batch())
    assert "gradient is all zeros" in str(info.value)
    assert "fc1.weight, fc1.bias, fc2.weight" in str(info.value)


def test_check_step_fails_when_the_optimizer_misses_a_parameter():
    def head_only(params):
        params = list(params)
        return torch.optim.SGD(params[2:], lr=0.1)

    with pytest.raises(AssertionError, match=r"unchanged after 1 step \(2\): fc1.weight, fc1.bias"):
        assert_trains(MLP(), ce, make_batch(), optimizer=head_only)


def test_check_step_fails_on_a_non_finite_loss():
    def log_of_probabilities(model, batch):
        x, y = batch
        p = torch.softmax(model(x) * 1e4, -1)
        return -torch.log(p[torch.arange(len(y)), y]).mean()

    with pytest.raises(AssertionError, match=r"loss of MLP is inf at step 0"):
        assert_trains(MLP(), log_of_probabilities, make_batch())


def test_check_step_takes_several_steps_and_an_optimizer_instance():
    model = MLP()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    values = assert_trains(model, ce, make_batch(), optimizer=opt, steps=3)
    assert values["steps"] == 3 and values["optimizer"] == "Adam"
    assert values["loss_last"] < values["loss_first"]


# ---- check_training_loop -------------------------------------------------------------


def step_with_zero_grad(model, optimizer, batch):
    optimizer.zero_grad()
    loss = ce(model, batch)
    loss.backward()
    optimizer.step()
    return loss


def step_without_zero_grad(model, optimizer, batch):
    loss = ce(model, batch)
    loss.backward()
    optimizer.step()
    return loss


def test_training_loop_passes_with_zero_grad(records):
    values = assert_training_loop(step_with_zero_grad, MLP(), sgd, make_batches(4))
    assert values["steps"] == 4 and values["batches"] == 4
    assert records[-1].name == "check_training_loop" and records[-1].verdict == "ok"


def test_training_loop_fails_without_zero_grad(records):
    with pytest.raises(AssertionError) as info:
        assert_training_loop(step_without_zero_grad, MLP(), sgd, make_batches(4))
    message = str(info.value)
    assert "gradients leak across optimizer steps (4 parameters)" in message
    assert "step 1 (first backward in batch 1): " in message
    assert "fc1.weight" in message and "fc2.bias" in message
    assert "step 0" not in message  # the first step is clean
    assert records[-1].values["problems"] == ["leak"]


def test_training_loop_fails_when_zero_grad_sits_between_backward_and_step():
    def misplaced(model, optimizer, batch):
        loss = ce(model, batch)
        loss.backward()
        optimizer.zero_grad()  # noqa: MLC328  (the seeded fault this test is about)
        optimizer.step()
        return loss

    with pytest.raises(AssertionError, match=r"zeroed before optimizer.step\(\)"):
        assert_training_loop(misplaced, MLP(), sgd, make_batches(3))


def make_warmup_step(start):
    """A hand-written linear warm-up: lr = base * (step + start) / 3, capped at base."""
    state = {"step": 0}

    def step_fn(model, optimizer, batch):
        for group in optimizer.param_groups:
            group["lr"] = 0.1 * min(1.0, (state["step"] + start) / 3)
        state["step"] += 1
        return step_with_zero_grad(model, optimizer, batch)

    return step_fn


def test_training_loop_fails_on_a_warmup_learning_rate_of_zero_at_step_0():
    with pytest.raises(AssertionError) as info:
        assert_training_loop(make_warmup_step(start=0), MLP(), sgd, make_batches(4))
    message = str(info.value)
    assert "optimizer.step() left parameters with a non-zero gradient unchanged" in message
    assert "step 0 (batch 0, lr [0.0]): fc1.weight" in message
    assert "step 1" not in message.split("unchanged:")[1].split("Likely")[0]


def test_training_loop_passes_on_a_warmup_starting_above_zero():
    assert assert_training_loop(make_warmup_step(start=1), MLP(), sgd, make_batches(4))["steps"] == 4


def test_training_loop_catches_a_lambda_lr_warmup_from_zero():
    def with_warmup(params, first=lambda s: s / 3):
        opt = torch.optim.SGD(params, lr=0.1)
        opt.scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, first(s)))
        return opt

    def step_fn(model, optimizer, batch):
        loss = step_with_zero_grad(model, optimizer, batch)
        optimizer.scheduler.step()
        return loss

    with pytest.raises(AssertionError, match=r"step 0 \(batch 0, lr \[0.0\]\)"):
        assert_training_loop(step_fn, MLP(), with_warmup, make_batches(3))
    fixed = lambda ps: with_warmup(ps, first=lambda s: (s + 1) / 3)  # noqa: E731
    assert assert_training_loop(step_fn, MLP(), fixed, make_batches(3))["steps"] == 3


def make_accumulating_step(micro, zero_every_micro_batch=False):
    state = {"i": 0}

    def step_fn(model, optimizer, batch):
        i = state["i"]
        state["i"] += 1
        if zero_every_micro_batch or i % micro == 0:
            optimizer.zero_grad()
        loss = ce(model, batch) / micro
        loss.backward()
        if i % micro == micro - 1:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.05)
            optimizer.step()
        return loss

    return step_fn


def test_gradient_accumulation_over_4_micro_batches_passes_with_accumulate_4():
    """Negative control: declared accumulation (with gradient clipping) is not a leak."""
    values = assert_training_loop(make_accumulating_step(4), MLP(), sgd, make_batches(8),
                                  accumulate=4)
    assert values["steps"] == 2 and values["accumulate"] == 4


def test_undeclared_accumulation_fails():
    with pytest.raises(AssertionError) as info:
        assert_training_loop(make_accumulating_step(4), MLP(), sgd, make_batches(8))
    assert "did not step during batch(es) [0, 1, 2, 4, 5, 6]" in str(info.value)
    assert "pass accumulate=" in str(info.value)


def test_zero_grad_every_micro_batch_discards_accumulated_gradients():
    step_fn = make_accumulating_step(4, zero_every_micro_batch=True)
    with pytest.raises(AssertionError) as info:
        assert_training_loop(step_fn, MLP(), sgd, make_batches(8), accumulate=4)
    assert "gradients of earlier micro-batches were discarded" in str(info.value)
    assert "batch 1: fc2.bias" in str(info.value) or "batch 1: fc" in str(info.value)


def test_training_loop_fails_on_a_non_finite_gradient_at_a_step():
    def poisoned(model, optimizer, batch):
        optimizer.zero_grad()
        loss = ce(model, batch)
        loss.backward()
        if len(optimizer.state) and optimizer.param_groups[0]["params"][0].grad is not None:
            optimizer.param_groups[0]["params"][0].grad[0, 0] = float("nan")  # from step 1 on
        optimizer.step()
        return loss

    momentum = lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)  # noqa: E731
    with pytest.raises(AssertionError) as info:
        assert_training_loop(poisoned, MLP(), momentum, make_batches(3))
    assert "applied a NaN/inf gradient:\n    step 1 (batch 1): fc1.weight" in str(info.value)


def test_training_loop_calls_step_fn_once_per_batch_in_order():
    seen = []

    def step_fn(model, optimizer, batch):
        seen.append(batch[2])
        return step_with_zero_grad(model, optimizer, batch[:2])

    batches = [(*b, i) for i, b in enumerate(make_batches(5))]
    assert_training_loop(step_fn, MLP(), sgd, iter(batches))
    assert seen == [0, 1, 2, 3, 4]


def test_training_loop_fails_when_step_fn_steps_its_own_optimizer():
    def own_optimizer(model, optimizer, batch):
        own = torch.optim.SGD(model.parameters(), lr=0.1)
        own.zero_grad()
        loss = ce(model, batch)
        loss.backward()
        own.step()
        return loss

    with pytest.raises(AssertionError, match=r"optimizer.step\(\) was never called over 2 batches"):
        assert_training_loop(own_optimizer, MLP(), sgd, make_batches(2))


def test_training_loop_rebuilds_an_optimizer_instance_with_its_state():
    model = MLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    step_with_zero_grad(model, opt, make_batch())  # creates momentum buffers
    before_state = copy.deepcopy(opt.state_dict())
    before_params = copy.deepcopy(model.state_dict())
    values = assert_training_loop(step_with_zero_grad, model, opt, make_batches(3))
    assert values["optimizer"] == "SGD" and values["steps"] == 3
    after = opt.state_dict()
    for key, state in before_state["state"].items():
        assert torch.equal(state["momentum_buffer"], after["state"][key]["momentum_buffer"])
    for key, tensor in before_params.items():
        assert torch.equal(tensor, model.state_dict()[key])


# ---- check_overfit -------------------------------------------------------------------


class SoftmaxHead(MLP):
    """Seeded fault: softmax in forward, then CrossEntropyLoss (which expects logits)."""

    def forward(self, x):
        return torch.softmax(super().forward(x), dim=-1)


def test_overfit_passes_on_a_healthy_model(records):
    values = assert_overfits(MLP(), ce, make_batch())
    assert values["loss_last"] <= values["target"] == pytest.approx(values["loss_first"] * 0.1)
    assert values["steps_run"] < 200
    assert records[-1].name == "check_overfit" and records[-1].verdict == "ok"


def test_overfit_fails_with_softmax_before_cross_entropy(records):
    with pytest.raises(AssertionError) as info:
        assert_overfits(SoftmaxHead(), ce, make_batch())
    message = str(info.value)
    assert "did not overfit one batch in 200 steps of Adam" in message
    assert "loss: first" in message and "min" in message and "last" in message
    assert "a softmax before a loss that expects logits" in message
    values = records[-1].values
    assert values["loss_min"] > values["target"]


def test_overfit_reports_a_learning_rate_of_zero_and_frozen_parameters():
    zero_lr = lambda ps: torch.optim.Adam(ps, lr=0.0)  # noqa: E731
    with pytest.raises(AssertionError, match=r"a learning rate of zero .*lr \[0.0\]"):
        assert_overfits(MLP(), ce, make_batch(), steps=5, optimizer=zero_lr)
    model = MLP()
    model.fc1.requires_grad_(False)
    model.fc2.requires_grad_(False)
    with pytest.raises(AssertionError, match=r"the loss does not require grad"):
        assert_overfits(model, ce, make_batch(), steps=5)


def test_overfit_honours_target_loss():
    assert assert_overfits(MLP(), ce, make_batch(), target_loss=0.5)["loss_last"] <= 0.5
    with pytest.raises(AssertionError, match=r"needed a loss <= 1e-09: target_loss=1e-09"):
        assert_overfits(MLP(), ce, make_batch(), target_loss=1e-9, steps=3)


# ---- check_eval ----------------------------------------------------------------------


def test_eval_fails_when_model_eval_is_forgotten_on_a_batchnorm_extractor(records):
    model = ConvBN()
    x, _ = make_batch()

    def evaluate():
        with torch.no_grad():
            return model(x).argmax(-1)

    with pytest.raises(AssertionError) as info:
        assert_eval_clean(model, evaluate)
    message = str(info.value)
    assert "ran forward in training mode" in message
    assert "these change their output in training mode: bn (BatchNorm1d)" in message
    assert "buffer bn.running_mean" in message and "buffer bn.num_batches_tracked (0 -> 1)" in message
    assert records[-1].values["modules_in_training_mode"] == ["", "conv", "bn", "head"]
    # The model ends as one eval_fn call leaves it: one update of the running stats.
    assert int(model.bn.num_batches_tracked) == 1


def test_eval_passes_when_model_eval_is_called(records):
    model = ConvBN()
    x, _ = make_batch()

    def evaluate():
        model.eval()
        with torch.no_grad():
            return model(x).argmax(-1)

    result = assert_eval_clean(model, evaluate)
    assert result.shape == (16,)
    assert records[-1].verdict == "ok" and records[-1].values["modules_run"] == 4


class FunctionalDropout(MLP):
    """Seeded fault: F.dropout's training argument defaults to True."""

    def forward(self, x):
        return self.fc2(F.dropout(F.relu(self.fc1(x)), p=0.5))


class ModeAwareDropout(MLP):
    def forward(self, x):
        return self.fc2(F.dropout(F.relu(self.fc1(x)), p=0.5, training=self.training))


def test_eval_fails_on_an_evaluation_path_using_dropout():
    model = FunctionalDropout()
    x, y = make_batch()

    def accuracy(m, inputs, labels):
        m.eval()
        with torch.no_grad():
            return {"accuracy": float((m(inputs).argmax(-1) == labels).float().mean()),
                    "logits": m(inputs)}

    with pytest.raises(AssertionError) as info:
        assert_eval_clean(model, accuracy, model, x, labels=y)
    message = str(info.value)
    assert "the result differs between seeds 1 and 2" in message
    assert "F.dropout(x, p) defaults to training=True" in message
    assert "training mode" not in message.split("\n")[1]

    fixed = ModeAwareDropout()
    assert set(assert_eval_clean(fixed, accuracy, fixed, x, labels=y)) == {"accuracy", "logits"}


def test_eval_does_not_mistake_a_state_mutation_for_randomness():
    """Both runs start from the same state, so BN updates are reported as such only."""
    model = ConvBN()
    x, _ = make_batch()
    # With momentum 0.1, a second call from the mutated state would give other running
    # statistics, hence other eval outputs: without the restore this would read as randomness.

    def evaluate():
        model.train()
        model(x)
        model.eval()
        with torch.no_grad():
            return model(x)

    with pytest.raises(AssertionError) as info:
        assert_eval_clean(model, evaluate)
    assert "differs between seeds" not in str(info.value)
    assert "buffer bn.running_var" in str(info.value)


def test_eval_removes_its_hooks():
    model = ConvBN()
    model.eval()
    x, _ = make_batch()
    assert_eval_clean(model, lambda: model(x).detach())
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_eval_names_each_differing_leaf_of_the_result_with_its_counts(records):
    model = FunctionalDropout().eval()
    x, _ = make_batch()

    def evaluate():
        with torch.no_grad():
            logits = model(x)
        return {"logits": logits, "n": x.shape[0], "scores": [logits.sum()]}

    with pytest.raises(AssertionError) as info:
        assert_eval_clean(model, evaluate)
    message = str(info.value)
    # Every differing leaf is named by its path; the unchanged int leaf is not.
    assert "result['logits']: torch.Tensor of shape (16, 3), dtype float32" in message
    assert "result['scores'][0]" in message and "result['n']" not in message
    assert "(seed 1) vs" in message and "(seed 2)" in message
    difference = records[-1].values["difference"]
    assert difference["path"] == "result['logits']" and difference["n_total"] == 48
    assert 0 < difference["n_diff"] <= 48 and difference["max_abs_diff"] > 0

    fixed = ModeAwareDropout().eval()
    assert_eval_clean(fixed, lambda: {"logits": fixed(x).detach(), "n": x.shape[0]})
    assert "difference" not in records[-1].values


class CachedOutput(MLP):
    """Writes its output into one buffer it keeps and returns that same buffer each call."""

    def __init__(self, mode_aware):
        super().__init__()
        self.mode_aware = mode_aware
        self.out = None

    def forward(self, x):
        h = F.relu(self.fc1(x))
        h = F.dropout(h, p=0.5, training=self.training) if self.mode_aware else F.dropout(h, 0.5)
        y = self.fc2(h).detach()
        if self.out is None:
            self.out = y.clone()
        self.out.copy_(y)
        return self.out


def test_eval_copies_the_first_result_so_a_reused_buffer_cannot_hide_randomness():
    x, _ = make_batch()
    # Seeded fault: dropout left on, and the second run overwrites the tensor the first
    # returned, so comparing the two returned objects would compare the buffer with itself.
    model = CachedOutput(mode_aware=False).eval()
    with pytest.raises(AssertionError, match=r"differs between seeds 1 and 2"):
        assert_eval_clean(model, model, x)

    fixed = CachedOutput(mode_aware=True).eval()
    assert assert_eval_clean(fixed, fixed, x).shape == (16, 3)


class NaNBuffer(MLP):
    """Holds a buffer with a NaN in it (a statistic not yet seen); eval may update it."""

    def __init__(self, writes):
        super().__init__()
        self.writes = writes
        self.register_buffer("stat", torch.tensor([float("nan"), 1.0, 2.0]))

    def forward(self, x):
        if self.writes:
            self.stat[1:] += 1.0
        return super().forward(x)


def test_eval_does_not_report_a_nan_buffer_it_left_alone_as_changed(records):
    x, _ = make_batch()
    untouched = NaNBuffer(writes=False).eval()
    assert_eval_clean(untouched, lambda: untouched(x).detach())
    assert records[-1].verdict == "ok" and records[-1].values["changed"] == []

    # Seeded fault: the forward writes to the buffer during evaluation.
    writer = NaNBuffer(writes=True).eval()
    with pytest.raises(AssertionError) as info:
        assert_eval_clean(writer, lambda: writer(x).detach())
    assert "buffer stat (2 of 3 elements, max change 1)" in str(info.value)


def test_eval_changed_shape_is_reported_as_replaced():
    model = NaNBuffer(writes=False).eval()
    x, _ = make_batch()

    def evaluate():
        out = model(x).detach()
        model.stat = torch.zeros(4)  # seeded fault: the evaluation replaces a buffer
        return out

    with pytest.raises(AssertionError) as info:
        assert_eval_clean(model, evaluate)
    assert "buffer stat (replaced: shape (3,) (before) vs shape (4,) (after))" in str(info.value)

    fixed = NaNBuffer(writes=False).eval()
    assert_eval_clean(fixed, lambda: fixed(x).detach())


class Opaque:
    """An object with no values compare.py can read."""


def test_eval_result_that_cannot_be_compared_is_a_clear_error(records):
    model = MLP().eval()
    x, _ = make_batch()

    expected = r"check_eval: result\['extra'\] is a .*Opaque, which cannot be compared"
    with pytest.raises(UncomparableOutputError, match=expected):
        assert_eval_clean(model, lambda: {"logits": model(x).detach(), "extra": Opaque()})
    assert records[-1].verdict == "ERROR"
    assert all(not m._forward_pre_hooks for m in model.modules())
    # Its fixed twin returns the values that matter.
    assert_eval_clean(model, lambda: {"logits": model(x).detach(), "extra": vars(Opaque())})


# ---- the caller's model and optimizer are untouched -----------------------------------


def test_checks_never_touch_the_callers_model_or_optimizer():
    model = ConvBN()
    model.bn.requires_grad_(False)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ce(model, make_batch()).backward()
    opt.step()
    opt.zero_grad(set_to_none=False)
    model.eval()
    params = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(opt.state_dict())
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}

    assert_trains(model, ce, make_batch(), optimizer=opt, frozen=["bn.*"], steps=2)
    assert_training_loop(step_with_zero_grad, model, opt, make_batches(2))
    assert_overfits(model, ce, make_batch(), optimizer=opt, target_loss=10.0)

    assert not model.training and all(not m.training for m in model.modules())
    for key, tensor in params.items():
        assert torch.equal(tensor, model.state_dict()[key]), key
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    for n, p in model.named_parameters():
        assert (p.grad is None) == (grads[n] is None)
        if p.grad is not None:
            assert torch.equal(p.grad, grads[n])
    after = opt.state_dict()
    assert after["param_groups"] == opt_state["param_groups"]
    for key, state in opt_state["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(after["state"][key][name]))


def test_checks_do_not_disturb_the_global_rng():
    model, batch = MLP(), make_batch()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    assert_trains(model, ce, batch)
    assert_overfits(model, ce, batch, steps=3, target_loss=10.0)
    assert_eval_clean(model.eval(), lambda: model(batch[0]))
    assert torch.equal(torch.rand(3), expected)


# ---- bad input -----------------------------------------------------------------------


class NoParameters(nn.Module):
    def forward(self, x):
        return x


def test_a_model_with_no_parameters_is_a_clear_error(records):
    for check in (lambda m: assert_trains(m, ce, make_batch()),
                  lambda m: assert_overfits(m, ce, make_batch()),
                  lambda m: assert_training_loop(step_with_zero_grad, m, sgd, make_batches(1))):
        with pytest.raises(ValueError, match=r"model NoParameters has no parameters"):
            check(NoParameters())
    assert [r.verdict for r in records] == ["ERROR"] * 3


def test_a_loss_fn_returning_a_non_scalar_is_a_clear_error():
    per_example = lambda m, b: F.cross_entropy(m(b[0]), b[1], reduction="none")  # noqa: E731
    with pytest.raises(ValueError, match=r"must return a scalar loss, got a tensor of shape \(16,\)"):
        assert_trains(MLP(), per_example, make_batch())
    with pytest.raises(ValueError, match=r"scalar loss"):
        assert_overfits(MLP(), per_example, make_batch())
    with pytest.raises(TypeError, match=r"got float \(a Python number usually means .item\(\)"):
        assert_trains(MLP(), lambda m, b: ce(m, b).item(), make_batch())


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: assert_trains("model", ce, make_batch()), TypeError, "must be a torch nn.Module"),
    (lambda: assert_trains(MLP(), None, make_batch()), TypeError, "loss_fn must be a callable"),
    (lambda: assert_trains(MLP(), ce, make_batch(), steps=0), ValueError, "steps must be an int >= 1"),
    (lambda: assert_trains(MLP(), ce, make_batch(), frozen=["backbone.*"]), ValueError,
     r"frozen pattern\(s\) \['backbone.\*'\] match no parameter of MLP; its parameters are: fc1"),
    (lambda: assert_trains(MLP(), ce, make_batch(), frozen=[3]), TypeError, "frozen holds 3"),
    (lambda: assert_trains(MLP(), ce, make_batch(), optimizer="sgd"), TypeError,
     "optimizer must be a factory"),
    (lambda: assert_trains(MLP(), ce, make_batch(), optimizer=lambda ps: None), TypeError,
     "must return a torch.optim.Optimizer, got NoneType"),
    (lambda: assert_training_loop(step_with_zero_grad, MLP(), sgd, []), ValueError,
     "batches is empty"),
    (lambda: assert_training_loop(step_with_zero_grad, MLP(), None, make_batches(1)), TypeError,
     "optimizer is required"),
    (lambda: assert_training_loop(step_with_zero_grad, MLP(), sgd, make_batches(1), accumulate=0),
     ValueError, "accumulate must be an int >= 1"),
    (lambda: assert_overfits(MLP(), ce, make_batch(), reduction=2), ValueError,
     r"reduction must be a finite number in \(0, 1\)"),
    (lambda: assert_eval_clean(MLP(), lambda: None), ValueError, "never ran the forward pass"),
    (lambda: assert_eval_clean(MLP(), 3), TypeError, "eval_fn must be a callable"),
])
def test_bad_input_is_a_clear_error(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_eval_fn_returning_none_is_a_clear_error():
    model = MLP().eval()
    with pytest.raises(ValueError, match=r"eval_fn returned None"):
        assert_eval_clean(model, lambda: [model(make_batch()[0]), None][1])


def test_an_optimizer_over_other_parameters_cannot_be_rebuilt():
    stranger = nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([stranger], lr=0.1)
    with pytest.raises(ValueError, match=r"param group 0, parameter 0 \(shape \(2,\)\) is not a parameter"):
        assert_trains(MLP(), ce, make_batch(), optimizer=opt)
