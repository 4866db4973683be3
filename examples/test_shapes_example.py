"""Shape invariants of a tiny causal language model and an image classifier.

Run with ``pytest --mlcheck examples/test_shapes_example.py``. Each test states a
property a real model must keep and that a silent bug would break:

* the LM maps token ids (B, T) to logits (B, T, V) at every size, and returns
  ``(logits, loss)`` when given targets;
* no sample's output depends on another sample (batch independence);
* a sample's prediction is the same alone or in a batch (batch invariance, eval mode);
* the LM never looks at future tokens (causality);
* a masked mean over time ignores padding, for any shapes hypothesis draws;
* the numpy and torch classifiers of ``tinyml`` keep the same properties.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import tinyml
from pytest_mlcheck import Spec, assert_shape
from pytest_mlcheck.strategies import shaped

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

VOCAB, WIDTH, HEADS = 40, 16, 2


class Block(nn.Module):
    """A pre-norm transformer block with causal multi-head self-attention."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(c, dim=-1)
        # (B, T, C) -> (B, heads, T, C/heads): transpose, not view, keeps samples apart.
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.norm2(x))


class TinyLM(nn.Module):
    """Token ids (B, T) -> logits (B, T, V), plus the loss when targets are given."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.pos = nn.Embedding(64, WIDTH)
        self.block = Block(WIDTH, HEADS)
        self.head = nn.Linear(WIDTH, VOCAB)

    def forward(self, ids, targets=None):
        pos = torch.arange(ids.shape[1], device=ids.device)
        logits = self.head(self.block(self.embed(ids) + self.pos(pos)))
        if targets is None:
            return logits
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten())


class SmallCNN(nn.Module):
    """Images (B, 3, H, W) -> class logits (B, 10), with BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Linear(8, 10)

    def forward(self, images):
        return self.classifier(self.features(images).flatten(1))


IDS = Spec("B T", dtype="int64", low=0, high=VOCAB)


@pytest.fixture
def lm():
    torch.manual_seed(0)
    return TinyLM()


def test_lm_shapes_at_every_size(shape_invariants, lm):
    shape_invariants.check(lm, IDS, "B T V", dims={"V": VOCAB})
    # With targets: (logits, loss); the loss is a scalar.
    shape_invariants.check(lm, {"ids": IDS, "targets": IDS}, ("B T V", ""), dims={"V": VOCAB})


def test_lm_samples_are_independent(shape_invariants, lm):
    shape_invariants.batch_independence(lm, IDS)


def test_lm_is_causal(shape_invariants, lm):
    shape_invariants.causality(lm, IDS, time_dim=1)
    # The block alone, on float inputs: checked exactly through autograd.
    shape_invariants.causality(lm.block, "B T C", dims={"C": WIDTH})


def test_classifier_in_eval_is_batch_invariant(shape_invariants):
    torch.manual_seed(0)
    model = SmallCNN().eval()
    shape_invariants.check(model, "B 3 H W", "B 10")
    shape_invariants.batch_invariance(model, "B 3 H W", dims={"H": 8, "W": 8},
                                      batch_sizes=(1, 3, 6))
    shape_invariants.batch_independence(model, "B 3 H W", dims={"H": 8, "W": 8})


def masked_mean(x, mask):
    """Mean over time of the unmasked steps: (B, T, C), (B, T) -> (B, C)."""
    weights = mask[..., None].astype(x.dtype)
    return (x * weights).sum(1) / np.maximum(weights.sum(1), 1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shaped(x="B T C", mask=Spec("B T", dtype="bool")))
def test_masked_mean_ignores_padding(batch):
    x, mask = batch["x"], batch["mask"]
    out = masked_mean(x, mask)
    assert_shape(out, "B C", {"B": x.shape[0], "C": x.shape[2]})
    padded = np.where(mask[..., None], x, 1e3)  # change only the masked-out steps
    np.testing.assert_allclose(masked_mean(padded, mask), out, rtol=1e-5, atol=1e-5)


def test_tinyml_classifiers(shape_invariants):
    X, y = tinyml.make_blobs(n_samples=200, seed=0)
    model = tinyml.SoftmaxRegression(n_features=4, n_classes=3).fit(X, y, epochs=3)
    # numpy: inputs are generated as numpy arrays and checked by perturbation.
    shape_invariants.check(model.predict_proba, "N 4", "N 3")
    shape_invariants.check(model.predict, "N 4", Spec("N", dtype="int64"))
    shape_invariants.batch_independence(model.predict_proba, "N 4")
    shape_invariants.batch_invariance(model.predict_proba, "N 4", batch_sizes=(1, 5, 16))
    mlp = tinyml.make_torch_mlp(hidden=16).eval()
    shape_invariants.check(mlp, "B 4", "B 3")
    shape_invariants.batch_independence(mlp, "B 4")
