"""device_consistency on the tiny MLP: a model validated on the CPU must agree on the GPU.

``devices=("cpu", "cuda")`` skips, naming CUDA, on a machine without a GPU; a GPU CI job
sets ``MLCHECK_REQUIRE_CUDA=1`` so that it fails instead of passing by skipping. The
``"cpu:float64"`` stand-in runs everywhere: it fails where a result depends on float32
precision beyond the tolerance, the commonest reason a GPU run drifts.
"""

import numpy as np
import pytest

import tinyml

torch = pytest.importorskip("torch")


def _batch(n: int = 64):
    X, y = tinyml.make_blobs(n_samples=n, seed=0)
    return torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)


def _step(model, optimizer, batch):
    X, y = batch
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(X), y)
    loss.backward()
    optimizer.step()
    return loss


@pytest.mark.parametrize("devices", [("cpu", "cuda"), ("cpu", "cpu:float64")],
                         ids=["cuda", "float64-stand-in"])
def test_predictions_agree_across_devices(device_consistency, devices):
    X, _ = _batch()
    device_consistency.check(tinyml.make_torch_mlp(hidden=16), X, devices=devices,
                             atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("devices", [("cpu", "cuda"), ("cpu", "cpu:float64")],
                         ids=["cuda", "float64-stand-in"])
def test_training_steps_agree_across_devices(device_consistency, devices):
    device_consistency.check_training(_step, tinyml.make_torch_mlp(hidden=16), _batch(),
                                      steps=3, devices=devices, atol=1e-4, rtol=1e-4)


def test_probabilities_sum_to_one_on_every_device(device_consistency):
    X, _ = _batch(16)
    model = tinyml.make_torch_mlp(hidden=16)

    def probabilities(net, x):
        # The model is an argument, so the check copies it to each device with the data.
        return torch.softmax(net(x), dim=-1)

    device_consistency.check(probabilities, model, X, devices=("cpu", "cpu:float64"),
                             atol=1e-5)
    assert np.allclose(probabilities(model, X).sum(-1).detach().numpy(), 1.0, atol=1e-5)
