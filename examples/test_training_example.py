"""Training and evaluation sanity of a small image classifier, with ``train_invariants``.

Run with ``pytest --mlcheck examples/test_training_example.py``. The model is a
convolutional feature extractor (with BatchNorm and dropout) and a linear head,
trained on 8x8 synthetic images by a realistic training step: linear learning-rate
warm-up, gradient accumulation over two micro-batches, gradient clipping. The tests
show what each check guards against:

* every parameter trains, and a fine-tuning set-up freezes only what it says;
* the training step zeroes gradients once per optimizer step, and no step is a no-op;
* the model can memorise one small batch;
* the evaluation runs in eval mode, leaves BatchNorm statistics alone and is deterministic.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

N_CLASSES = 4
WARMUP_STEPS = 5
ACCUMULATE = 2


class SmallConvNet(nn.Module):
    """Conv -> BatchNorm -> ReLU -> pool, twice, then dropout and a linear head."""

    def __init__(self, n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(16, n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(images).flatten(1)))


def make_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose class decides which quadrant is bright, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    images = 0.5 * torch.randn(n, 1, 8, 8, generator=g)
    for i, label in enumerate(labels.tolist()):
        row, col = divmod(label, 2)
        images[i, 0, row * 4:(row + 1) * 4, col * 4:(col + 1) * 4] += 1.0
    return images, labels


def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    images, labels = batch
    return F.cross_entropy(model(images), labels)


def make_optimizer(params) -> torch.optim.Optimizer:
    """AdamW with a linear warm-up that starts above zero (lr > 0 from the first step)."""
    optimizer = torch.optim.AdamW(params, lr=3e-3, weight_decay=1e-4)
    optimizer.scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / WARMUP_STEPS))
    return optimizer


def make_train_step(accumulate: int = ACCUMULATE):
    """The project's training step: accumulate, clip, step, schedule."""
    state = {"micro_batch": 0}

    def train_step(model, optimizer, batch):
        model.train()
        if state["micro_batch"] % accumulate == 0:
            optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch) / accumulate
        loss.backward()
        state["micro_batch"] += 1
        if state["micro_batch"] % accumulate == 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
            optimizer.scheduler.step()
        return loss

    return train_step


def evaluate(model: nn.Module, batches) -> dict[str, float]:
    """Accuracy and mean loss over batches, in eval mode and without autograd."""
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    with torch.no_grad():
        for images, labels in batches:
            logits = model(images)
            loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
            correct += int((logits.argmax(-1) == labels).sum())
            total += len(labels)
    return {"accuracy": correct / total, "loss": loss_sum / total}


@pytest.fixture
def model() -> SmallConvNet:
    torch.manual_seed(0)
    return SmallConvNet()


def test_every_parameter_trains(train_invariants, model):
    values = train_invariants.check_step(model, loss_fn, make_images(16, seed=0))
    assert values["updated"] == values["trainable"] == 8


def test_fine_tuning_freezes_only_the_backbone(train_invariants, model):
    model.features.requires_grad_(False)
    values = train_invariants.check_step(model, loss_fn, make_images(16, seed=0),
                                         frozen=["features.*"], optimizer=make_optimizer)
    assert (values["trainable"], values["frozen"]) == (2, 6)


def test_training_step_zeroes_gradients_and_always_moves_the_weights(train_invariants, model):
    batches = [make_images(8, seed=s) for s in range(6)]
    values = train_invariants.check_training_loop(make_train_step(), model, make_optimizer,
                                                  batches, accumulate=ACCUMULATE)
    assert values["steps"] == 3


def test_model_overfits_one_small_batch(train_invariants, model):
    train_invariants.check_overfit(model, loss_fn, make_images(16, seed=0))


def test_evaluation_is_clean(train_invariants, model):
    batches = [make_images(32, seed=100 + s) for s in range(2)]
    metrics = train_invariants.check_eval(model, evaluate, model, batches)
    assert 0.0 <= metrics["accuracy"] <= 1.0
