"""The shape_invariants fixture and its plain functions, each proven on a seeded fault
and its fixed twin: check, batch_independence, batch_invariance and causality."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pytest_mlcheck import (
    Spec,
    assert_batch_independent,
    assert_batch_invariant,
    assert_causal,
    check_shapes,
)
from pytest_mlcheck.report import activate, deactivate

torch = pytest.importorskip("torch")
nn = torch.nn


@pytest.fixture
def records():
    """Collect the records emitted by plain-function calls in this test."""
    sink: list = []
    activate("test", sink)
    yield sink
    deactivate()


# ---- models: each seeded fault next to its fixed twin ----------------------------------


class SeqEncoder(nn.Module):
    """A GRU encoder taking (B, T, C); the buggy twin uses view where transpose is meant."""

    def __init__(self, buggy: bool, channels: int = 8, hidden: int = 6) -> None:
        super().__init__()
        self.buggy = buggy
        self.gru = nn.GRU(channels, hidden)  # expects (T, B, C)

    def forward(self, x):
        b, t, c = x.shape
        seq = x.view(t, b, c) if self.buggy else x.transpose(0, 1)
        out, _ = self.gru(seq)
        return out.transpose(0, 1)


class Classifier(nn.Module):
    """Class probabilities; the buggy twin normalises over the batch (dim=0)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 5)
        self.dim = dim

    def forward(self, x):
        return self.linear(x).softmax(dim=self.dim)


class ConvBN(nn.Module):
    """Conv1d + BatchNorm1d over (B, C, L)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3, padding=1)
        self.bn = nn.BatchNorm1d(6)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class CausalSelfAttention(nn.Module):
    """Single-head causal self-attention; ``diagonal=1`` is the off-by-one mask."""

    def __init__(self, diagonal: int, channels: int = 8) -> None:
        super().__init__()
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.diagonal = diagonal

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=-1)
        att = (q @ k.transpose(-2, -1)) / c ** 0.5
        mask = torch.tril(torch.ones(t, t, dtype=torch.bool), diagonal=self.diagonal)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        return self.proj(att @ v)


class TinyLM(nn.Module):
    """Token ids (B, T) -> logits (B, T, V), with dropout left on."""

    def __init__(self, diagonal: int = 0, vocab: int = 50, channels: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, channels)
        self.attn = CausalSelfAttention(diagonal, channels)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(channels, vocab)

    def forward(self, ids):
        h = self.embed(ids)
        return self.head(self.drop(h + self.attn(h)))


class ScoreHead(nn.Module):
    """One score per sample; the buggy twin forgets squeeze(-1) and returns (B, 1)."""

    def __init__(self, squeeze: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 1)
        self.squeeze = squeeze

    def forward(self, x):
        out = self.linear(x)
        return out.squeeze(-1) if self.squeeze else out


# ---- check ------------------------------------------------------------------------


def test_head_returning_b1_where_b_is_declared_fails_check(records):
    check_shapes(ScoreHead(squeeze=True), "B C", "B", dims={"C": 8})
    with pytest.raises(AssertionError) as info:
        check_shapes(ScoreHead(squeeze=False), "B C", "B", dims={"C": 8})
    text = str(info.value)
    assert "check_shapes failed for ScoreHead" in text
    assert "smallest failing sizes: C=8 (fixed by dims), B=1" in text
    assert text.startswith("check_shapes failed for ScoreHead: output: shape (1, 1)")
    assert "output: shape (1, 1) does not match 'B': rank 2 but the spec has 1 dim" in text
    assert "squeeze(-1)" in text
    assert [(r.name, r.verdict) for r in records] == [("check", "ok"), ("check", "FAILED")]
    assert records[1].values["smallest_failing"] == {"C": 8, "B": 1}


def test_output_names_bind_with_input_names():
    lm = TinyLM().eval()
    check_shapes(lm, Spec("B T", dtype="int64", high=50), "B T V", dims={"V": 50})
    # V is bound by the output at the smallest sizes and must stay the same.
    check_shapes(lm, Spec("B T", dtype="int64", high=50), "B T V")
    with pytest.raises(AssertionError, match=r"dim 2 is 50 but V=40 \(fixed by dims\)"):
        check_shapes(lm, Spec("B T", dtype="int64", high=50), "B T V", dims={"V": 40})


def test_output_only_names_must_not_change_with_input_sizes():
    def leaky(x):  # the "vocab" axis grows with the batch: (B, B * 3)
        return np.zeros((x.shape[0], x.shape[0] * 3))

    with pytest.raises(AssertionError) as info:
        check_shapes(leaky, "B C", "B V")
    text = str(info.value)
    assert "V=3 (bound by 'output' at" in text
    assert "Bound by outputs" in text


def test_tuple_output_with_none_skips_the_loss():
    def model(x, y):
        logits = x @ np.ones((x.shape[1], 4))
        return logits, float(((logits - y) ** 2).mean())

    check_shapes(model, ("B C", "B K"), ("B K", None), dims={"K": 4})
    with pytest.raises(TypeError, match=r"output\[1\]: expected an array matching '', got float"):
        check_shapes(model, ("B C", "B K"), ("B K", ""), dims={"K": 4})
    with pytest.raises(TypeError, match=r"output: the output spec has 3 elements, but fn returned 2"):
        check_shapes(model, ("B C", "B K"), ("B K", None, None), dims={"K": 4})


def test_dict_inputs_and_outputs_by_keyword():
    def encode(ids, mask):
        return {"hidden": np.repeat((ids * mask)[..., None], 3, -1).astype(np.float32),
                "pooled": (ids * mask).sum(1)}

    specs = {"ids": Spec("B T", dtype="int64", low=0, high=9), "mask": Spec("B T", dtype="bool")}
    check_shapes(encode, specs, {"hidden": Spec("B T 3"), "pooled": "B"})
    with pytest.raises(AssertionError, match=r"output\['hidden'\]: dtype float32 but the spec "
                                             r"expects float64"):
        check_shapes(encode, specs, {"hidden": Spec("B T 3", dtype="float64")})
    with pytest.raises(TypeError, match=r"output: key 'logits' is missing"):
        check_shapes(encode, specs, {"logits": "B T V"})


def test_star_dims_catch_a_flattened_batch():
    def scores(x):  # (*batch, C) -> (*batch,)
        return x.sum(-1)

    def flattens(x):  # loses the batch structure: (*batch, C) -> (prod(batch),)
        return x.reshape(-1, x.shape[-1]).sum(-1)

    check_shapes(scores, "*batch C", "*batch")
    with pytest.raises(AssertionError) as info:
        check_shapes(flattens, "*batch C", "*batch")
    text = str(info.value)
    assert "output: shape (1,) does not match '*batch': dims 0..0 are (1,) but *batch=()" in text
    assert "at 6 of 9 size combinations" in text  # batch=() and batch=(2, 3) fail
    check_shapes(flattens, "*batch C", "*batch", dims={"batch": (5,)})


def test_namedtuple_and_wildcard_inputs():
    import collections

    Batch = collections.namedtuple("Batch", "x mask")

    def masked(batch):
        return batch.x * batch.mask[..., None]

    check_shapes(masked, (Batch("B T _", Spec("B T", dtype="bool")),), "B T 3")
    assert_batch_independent(masked, (Batch("B T C", Spec("B T", dtype="bool")),))


def test_fn_raising_in_a_dependence_check_is_annotated(records):
    def needs_width_8(x):
        if x.shape[-1] != 8:
            raise ValueError(f"expected width 8, got {x.shape[-1]}")
        return x

    with pytest.raises(ValueError) as info:
        assert_batch_independent(needs_width_8, "B C")
    assert "inputs: x: (4, 3) float32" in "\n".join(info.value.__notes__)
    assert records[-1].verdict == "ERROR" and records[-1].name == "batch_independence"
    assert_batch_independent(needs_width_8, "B C", dims={"C": 8})


def test_the_smallest_failing_sizes_are_reported():
    def drops_last_row_of_big_batches(x):
        return x if x.shape[0] < 3 else x[:-1]

    with pytest.raises(AssertionError) as info:
        check_shapes(drops_last_row_of_big_batches, "B C", "B C", vary={"B": [5, 1, 3, 2]})
    text = str(info.value)
    assert "smallest failing sizes: B=3 (bound by 'x'), C=1" in text
    assert "at 6 of 12 size combinations" in text


def test_many_names_vary_one_at_a_time(records):
    def identity(x):
        return x

    check_shapes(identity, "A B C D", "A B C D")
    assert records[-1].values["combinations"] == 10  # base, all-smallest, 8 one-name moves

    def breaks_when_d_is_one(x):
        return x[..., 0] if x.shape[3] == 1 else x

    with pytest.raises(AssertionError) as info:
        check_shapes(breaks_when_d_is_one, "A B C D", "A B C D")
    assert "at 2 of 10 size combinations" in str(info.value)
    assert "smallest failing sizes: A=1 (bound by 'x'), B=1" in str(info.value)
    assert "It fails only when some size is 1" in str(info.value)


def test_default_sizes_include_one_and_catch_a_bare_squeeze():
    with pytest.raises(AssertionError) as info:
        check_shapes(lambda x: x.squeeze(), "B T C", "B T C")
    text = str(info.value)
    assert "B=1" in text and "dropped" in text
    check_shapes(lambda x: x.squeeze(-1), "B T C", "B T", dims={"C": 1})


def test_fn_raising_is_re_raised_with_shapes_and_bindings():
    with pytest.raises(RuntimeError) as info:
        check_shapes(SeqEncoder(buggy=False), "B T C", "B T H")
    exc = info.value
    assert "input.size(-1) must be equal to input_size" in str(exc)
    note = "\n".join(getattr(exc, "__notes__", []))
    assert "SeqEncoder raised RuntimeError on generated inputs" in note
    assert "inputs: x: (1, 1, 1) float32" in note
    assert "fix them with dims={'B': ...}" in note
    assert exc.mlcheck_bindings == {"B": 1, "T": 1, "C": 1}


def test_mapping_input_name_provenance_and_vary_validation():
    with pytest.raises(ValueError, match=r"vary\['Q'\]: no input spec uses 'Q'"):
        check_shapes(lambda x: x, "B", "B", vary={"Q": [1]})
    with pytest.raises(ValueError, match="both fixed by dims and varied"):
        check_shapes(lambda x: x, "B", "B", dims={"B": 2}, vary={"B": [1]})
    with pytest.raises(ValueError, match="bad shape spec"):
        check_shapes(lambda x: x, "B", "B C!")
    with pytest.raises(ValueError, match="backend must be"):
        check_shapes(lambda x: x, "B", "B", backend="jax")
    with pytest.raises(ValueError, match="use '\\*name'"):
        check_shapes(lambda x: x, "B ...", "B ...")


def test_torch_backend_generates_tensors_for_functions():
    seen = []

    def fn(x):
        seen.append(type(x).__name__)
        return x.sum(-1)

    check_shapes(fn, "B C", "B", backend="torch")
    assert set(seen) == {"Tensor"}


def test_inputs_follow_the_module_dtype():
    model = nn.Linear(4, 2).double()
    check_shapes(model, "B 4", Spec("B 2", dtype="float64"))
    assert_batch_independent(model, "B 4")
    with pytest.raises(RuntimeError, match="dtype|Double|Float"):
        check_shapes(model, Spec("B 4", dtype="float32"), "B 2")  # an explicit Spec wins


def test_negative_axes():
    assert_causal(lambda x: torch.cumsum(x, 1), "B T C", time_dim=-2, backend="torch")
    with pytest.raises(AssertionError, match="t=0 sees 1"):
        assert_causal(lambda x: torch.flip(torch.cumsum(torch.flip(x, [1]), 1), [1]), "B T C",
                      time_dim=-2, backend="torch")
    assert_batch_invariant(lambda x: x * 2, "T B", batch_dim=-1)
    with pytest.raises(AssertionError, match="batch_invariance failed"):
        assert_batch_invariant(lambda x: x - x.mean(-1, keepdims=True), "T B", batch_dim=-1)


def test_modules_keep_their_mode_and_running_stats():
    model = ConvBN()
    before = model.bn.running_mean.clone()
    check_shapes(model, "B 4 L", "B 6 L", vary={"B": [2, 3], "L": [2, 5]})
    assert model.training
    assert torch.equal(model.bn.running_mean, before)
    assert int(model.bn.num_batches_tracked) == 0


# ---- batch_independence -----------------------------------------------------------


def test_view_instead_of_transpose_fails_batch_independence(records):
    assert_batch_independent(SeqEncoder(buggy=False), "B T C", dims={"C": 8})
    with pytest.raises(AssertionError) as info:
        assert_batch_independent(SeqEncoder(buggy=True), "B T C", dims={"C": 8})
    text = str(info.value)
    assert "batch_independence failed for SeqEncoder: output row" in text
    assert "depends on input row" in text and "leaks into output row" in text
    assert "(autograd: max |d output[" in text
    assert "x.view(T, B, C) where x.transpose(0, 1) was meant" in text
    assert records[-1].verdict == "FAILED"
    assert records[-1].values["paths"]["autograd"] == ["x"]
    i, j = records[-1].values["pair"]
    assert i != j


def test_softmax_over_the_batch_fails_batch_independence():
    assert_batch_independent(Classifier(dim=-1), "B C", dims={"C": 8})
    with pytest.raises(AssertionError, match=r"output row \d depends on input row \d\.\n.*\(autograd"):
        assert_batch_independent(Classifier(dim=0), "B C", dims={"C": 8})


def test_softmax_over_the_batch_fails_on_the_perturbation_path_too(records):
    def softmax(x, axis):
        e = np.exp(x - x.max(axis, keepdims=True))
        return e / e.sum(axis, keepdims=True)

    assert_batch_independent(lambda x: softmax(x, -1), "B C")
    with pytest.raises(AssertionError, match="perturbation: changing input row"):
        assert_batch_independent(lambda x: softmax(x, 0), "B C")
    assert records[-1].values["paths"] == {"autograd": [], "perturbation": ["x"]}


def test_batchnorm_in_training_mode_fails_batch_independence():
    model = ConvBN()
    with pytest.raises(AssertionError, match=r"modules in training mode here: 'bn' \(BatchNorm1d\)"):
        assert_batch_independent(model, "B 4 L")
    assert int(model.bn.num_batches_tracked) == 0  # buffers restored
    assert_batch_independent(model.eval(), "B 4 L")


def test_token_ids_use_perturbation_and_dropout_does_not_fake_a_leak(records):
    class MixingLM(TinyLM):
        def forward(self, ids):  # flattens the batch into one long sequence
            b, t = ids.shape
            return super().forward(ids.reshape(1, b * t)).reshape(b, t, -1)

    ids = Spec("B T", dtype="int64", high=50)
    assert_batch_independent(TinyLM(), ids)  # dropout on: same seed, same masks
    assert records[-1].values["paths"] == {"autograd": [], "perturbation": ["ids"]}
    with pytest.raises(AssertionError, match="perturbation: changing input row"):
        assert_batch_independent(MixingLM(), ids)


def test_methods_can_be_forced_and_counted(records):
    assert_batch_independent(Classifier(dim=-1), "B C", dims={"C": 8, "B": 32}, rows=5)
    assert records[-1].values["backward_passes"] == 5
    assert records[-1].values["forward_passes"] == 1
    with pytest.raises(AssertionError, match="perturbation: changing input row"):
        assert_batch_independent(Classifier(dim=0), "B C", dims={"C": 8},
                                 method="perturbation")
    assert records[-1].values["backward_passes"] == 0
    assert records[-1].values["forward_passes"] == 4 + 2  # one per row, plus a baseline twice
    with pytest.raises(ValueError, match="method='autograd' needs torch and floating-point"):
        assert_batch_independent(TinyLM(), Spec("B T", dtype="int64", high=50),
                                 method="autograd")
    with pytest.raises(ValueError, match="method must be"):
        assert_batch_independent(TinyLM(), "B T", method="jacobian")


def test_integer_outputs_fall_back_to_perturbation(records):
    model = Classifier(dim=0)
    with pytest.raises(AssertionError, match="perturbation"):
        assert_batch_independent(lambda x: model(x).argmax(-1), "B C", dims={"C": 8},
                                 backend="torch")
    assert records[-1].values["paths"] == {"autograd": [], "perturbation": ["x"]}


def test_time_first_inputs_with_batch_dim_1():
    gru = nn.GRU(8, 6)  # (T, B, C) in, (output, h_n) out: h_n is (1, B, H)
    assert_batch_independent(gru, "T B C", dims={"C": 8}, batch_dim=1)
    with pytest.raises(AssertionError, match="batch_independence failed"):
        assert_batch_independent(lambda x: torch.cumsum(x, 1), "T B C", batch_dim=1,
                                 backend="torch")


def test_in_place_input_changes_do_not_confuse_the_checks():
    def scale_in_place(x):
        x.mul_(2)
        return x

    assert_batch_independent(scale_in_place, "B C", backend="torch")
    assert_batch_independent(lambda x: np.multiply(x, 2, out=x), "B C")
    assert_causal(scale_in_place, "B T C", backend="torch")


def test_batchnorm_in_training_mode_at_batch_one_gets_a_hint():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    with pytest.raises(ValueError) as info:
        check_shapes(model, "B C", "B C", dims={"C": 4})
    assert "'1' (BatchNorm1d); BatchNorm cannot train on one sample" in "\n".join(
        info.value.__notes__)
    check_shapes(model.eval(), "B C", "B C", dims={"C": 4})


def test_shared_inputs_with_the_batch_size_are_not_batch_rows(records):
    def scores(x, table):  # (B, C) x (K, C) -> (B, K): the table is shared by every sample
        return x @ table.T

    assert_batch_independent(scores, ("B C", "K C"), dims={"K": 4})
    assert records[-1].values["bindings"]["B"] == 5  # moved off K's size
    assert_batch_independent(scores, ("B C", "K C"), dims={"K": 4, "B": 4})
    assert records[-1].values["paths"]["perturbation"] == ["x"]


def test_rows_limits_the_checked_rows(records):
    assert_batch_independent(Classifier(dim=-1), "B C", dims={"C": 8, "B": 64}, rows=4)
    checked = records[-1].values["rows_checked"]
    assert len(checked) == 4 and checked[0] == 0 and checked[-1] == 63


@pytest.mark.parametrize("kwargs, error", [
    ({"batch_dim": 2}, "batch_dim=2 is out of range for input 'x' with spec 'B C'"),
    ({"batch_dim": -3}, "batch_dim=-3 is out of range"),
    ({"atol": -1.0}, "atol must be a finite number >= 0"),
    ({"rows": 0}, "rows must be an int >= 1"),
])
def test_batch_independence_bad_input(kwargs, error):
    with pytest.raises(ValueError, match=error):
        assert_batch_independent(lambda x: x, "B C", **kwargs)


def test_an_output_without_the_batch_axis_is_an_error():
    with pytest.raises(ValueError, match="no output of .* has the axis being checked"):
        assert_batch_independent(lambda x: x.sum(), "B C")


# ---- batch_invariance -------------------------------------------------------------


def test_batchnorm_not_in_eval_fails_batch_invariance(records):
    model = ConvBN()
    with pytest.raises(AssertionError) as info:
        assert_batch_invariant(model, "B 4 L")
    text = str(info.value)
    assert "batch_invariance failed for ConvBN: sample" in text
    assert "changes between a batch of 1 and a batch of 4" in text
    assert "modules in training mode here: 'bn' (BatchNorm1d)" in text
    assert "call model.eval()" in text
    assert records[-1].values["worst"]["batch"] == 1
    assert_batch_invariant(model.eval(), "B 4 L")
    assert records[-1].verdict == "ok"


def test_batchnorm_that_cannot_run_on_one_sample_is_reported_as_a_failure():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    with pytest.raises(AssertionError, match="works on a batch of 4 but raises ValueError on a "
                                             "batch of 1"):
        assert_batch_invariant(model, "B C", dims={"C": 4})
    assert_batch_invariant(model.eval(), "B C", dims={"C": 4})


def test_dropout_left_on_fails_batch_invariance():
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5))
    with pytest.raises(AssertionError, match=r"'1' \(Dropout\)"):
        assert_batch_invariant(model, "B C", dims={"C": 8}, batch_sizes=(2, 6))
    assert_batch_invariant(model.eval(), "B C", dims={"C": 8}, batch_sizes=(2, 6))


def test_padding_to_the_batch_maximum_fails_batch_invariance():
    def pad_norm(x):  # normalises by the largest value in the whole batch
        return x / np.abs(x).max()

    with pytest.raises(AssertionError, match="samples that change"):
        assert_batch_invariant(pad_norm, "B T")
    assert_batch_invariant(lambda x: x / np.abs(x).max(axis=1, keepdims=True), "B T")


@pytest.mark.parametrize("kwargs, error", [
    ({"batch_sizes": (4,)}, "at least two different sizes"),
    ({"batch_sizes": (0, 4)}, r"batch_sizes\[0\] must be an int >= 1, got 0"),
    ({"rtol": -1}, "rtol must be"),
    ({"dims": {"B": 3}}, "not the largest batch size 4"),
    ({"batch_dim": 5}, "out of range"),
])
def test_batch_invariance_bad_input(kwargs, error):
    with pytest.raises(ValueError, match=error):
        assert_batch_invariant(lambda x: x, "B C", **kwargs)


def test_batch_sizes_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="batch_sizes must be a sequence of ints, got str"):
        assert_batch_invariant(lambda x: x, "B C", batch_sizes="14")


# ---- causality ----------------------------------------------------------------------


def test_off_by_one_causal_mask_fails_causality(records):
    assert_causal(CausalSelfAttention(diagonal=0), "B T C", dims={"C": 8})
    with pytest.raises(AssertionError) as info:
        assert_causal(CausalSelfAttention(diagonal=1), "B T C", dims={"C": 8})
    text = str(info.value)
    assert ("causality failed for CausalSelfAttention: output at t=0 depends on input at t=1, "
            "1 step in the future") in text
    assert "t=0 sees 1; t=1 sees 2" in text
    assert "diagonal=1) where diagonal=0 was meant" in text
    assert records[-1].values["earliest"] == [0, 1]
    assert records[-1].values["paths"]["autograd"] == ["x"]


def test_causality_on_token_ids_and_a_missing_mask():
    ids = Spec("B T", dtype="int64", high=50)
    assert_causal(TinyLM(diagonal=0), ids)
    with pytest.raises(AssertionError, match="output at t=0 depends on input at t=1"):
        assert_causal(TinyLM(diagonal=1), ids)
    with pytest.raises(AssertionError, match=r"(?s)output at t=0 depends on input at t=1.*"
                                             r"t=0 sees 1, 2, 3, 4, 5;"):
        assert_causal(TinyLM(diagonal=5), ids)


def test_sdpa_is_causal_passes_and_bidirectional_gru_fails():
    def sdpa(x):
        return torch.nn.functional.scaled_dot_product_attention(x, x, x, is_causal=True)

    assert_causal(sdpa, "B T C", backend="torch")
    bigru = nn.GRU(4, 3, batch_first=True, bidirectional=True)
    with pytest.raises(AssertionError, match="bidirectional RNN"):
        assert_causal(lambda x: bigru(x)[0], "B T C", dims={"C": 4}, backend="torch")


def test_causality_time_dim_out_of_range():
    with pytest.raises(ValueError, match="time_dim=2 is out of range"):
        assert_causal(lambda x: x, "B T", time_dim=2)


# ---- the fixture in real pytest sessions ---------------------------------------------


_SESSION_TESTS = """
    import numpy as np
    import torch
    from torch import nn
    from pytest_mlcheck import Spec

    def test_shapes_pass(shape_invariants):
        head = nn.Linear(8, 1)
        shape_invariants.check(lambda x: head(x).squeeze(-1), "B C", "B", dims={"C": 8},
                               backend="torch")
        shape_invariants.batch_independence(nn.Linear(8, 3), "B C", dims={"C": 8})
        shape_invariants.batch_invariance(nn.Linear(8, 3).eval(), "B C", dims={"C": 8})

    def test_head_shape_fails(shape_invariants):
        shape_invariants.check(nn.Linear(8, 1), "B C", "B", dims={"C": 8})

    def test_softmax_over_batch_fails(shape_invariants):
        shape_invariants.batch_independence(nn.Softmax(dim=0), "B C")

    def test_peeking_fails(shape_invariants):
        shape_invariants.causality(lambda x: torch.roll(x, -1, dims=1), "B T C",
                                   backend="torch")
"""


def test_fixture_records_reach_the_report_and_failures_teach(pytester):
    pytester.makepyfile(test_models=_SESSION_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--mlcheck", "--mlcheck-report=report.json")
    result.assert_outcomes(passed=1, failed=3)
    for pattern in [
        "E * check_shapes failed for Linear: output: shape (1, 1) does not match 'B': rank 2 "
        "but the spec has 1 dim",
        "E * The output does not match its spec at 3 of 3 size combinations; smallest failing "
        "sizes: C=8 (fixed by dims), B=1*",
        "E * batch_independence failed for Softmax: output row * depends on input row *",
        "E * causality failed for test_peeking_fails.<locals>.<lambda>: output at t=0 depends on input at t=1*",
    ]:
        result.stdout.fnmatch_lines([pattern])
    result.stdout.fnmatch_lines(["*::test_shapes_pass*shape*check*ok*"])
    data = json.loads((pytester.path / "report.json").read_text())
    shape = [r for r in data["records"] if r["kind"] == "shape"]
    assert [(r["nodeid"].split("::")[1], r["name"], r["verdict"]) for r in shape] == [
        ("test_shapes_pass", "check", "ok"),
        ("test_shapes_pass", "batch_independence", "ok"),
        ("test_shapes_pass", "batch_invariance", "ok"),
        ("test_head_shape_fails", "check", "FAILED"),
        ("test_softmax_over_batch_fails", "batch_independence", "FAILED"),
        ("test_peeking_fails", "causality", "FAILED"),
    ]
    assert shape[3]["values"]["smallest_failing"] == {"C": 8, "B": 1}
    assert "t=0 sees 1" in shape[5]["message"]


def test_fixture_records_survive_xdist(pytester):
    pytester.makepyfile(test_np="""
        import numpy as np

        def test_ok(shape_invariants):
            shape_invariants.batch_independence(np.tanh, "B C")

        def test_bad(shape_invariants):
            shape_invariants.batch_independence(lambda x: x - x.mean(0), "B C")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2",
                                           "--mlcheck-report=report.json")
    result.assert_outcomes(passed=1, failed=1)
    data = json.loads((pytester.path / "report.json").read_text())
    verdicts = sorted((r["nodeid"].split("::")[1], r["verdict"]) for r in data["records"]
                      if r["kind"] == "shape")
    assert verdicts == [("test_bad", "FAILED"), ("test_ok", "ok")]
