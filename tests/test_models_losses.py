import numpy as np
import pytest
import torch

from fragility.errors import ConfigError
from fragility.training.losses import build_loss, class_balanced_weights
from fragility.training.models import build_model


def test_resnet32_has_the_papers_size_and_a_64d_feature():
    model = build_model("resnet32", 10, 3)
    n_params = sum(p.numel() for p in model.parameters())
    assert 0.45e6 < n_params < 0.47e6  # He et al.: 0.46 M
    fe = model.features(torch.randn(2, 3, 32, 32))
    assert fe.shape == (2, 64)
    assert (fe >= 0).all()  # post-ReLU average


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 8, 8), (3, 45, 37)])
def test_any_input_size_and_channels(shape):
    model = build_model("resnet8", 5, shape[0])
    assert model(torch.randn(2, *shape)).shape == (2, 5)


def test_resnet56_depth_and_unknown_arch():
    convs = [m for m in build_model("resnet56", 2, 3).modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 2 * 27  # stem + two per block, 9 blocks x 3 stages
    with pytest.raises(ConfigError, match="resnet32"):
        build_model("resnet33", 10, 3)


def test_normed_classifier_decomposes_into_unit_features_and_scaled_weights():
    model = build_model("resnet8", 4, 3, normed_classifier=True)
    fe = model.features(torch.randn(3, 3, 16, 16))
    w, b = model.classifier_weights()
    fe_unit = fe / fe.norm(dim=1, keepdim=True)
    logits = model.classifier(fe)
    torch.testing.assert_close(fe_unit @ w.T + b, logits)
    assert torch.allclose(w.norm(dim=1), torch.full((4,), 30.0))


# -- losses against direct formulas (numpy, written out) --------------------------------------

LOGITS = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.5, 0.0], [1.0, 1.0, 1.0]])
TARGET = np.array([0, 2, 1, 2])
COUNTS = [100, 20, 5]


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _t(a):
    return torch.tensor(a, dtype=torch.float32)


def test_cross_entropy_with_and_without_weights():
    nll = -_log_softmax(LOGITS)[np.arange(4), TARGET]
    loss = build_loss("ce", COUNTS)
    assert loss(_t(LOGITS), torch.tensor(TARGET)).item() == pytest.approx(nll.mean(), rel=1e-6)
    w = np.array([0.2, 1.0, 1.8])
    expected = (w[TARGET] * nll).sum() / w[TARGET].sum()  # torch's weighted mean
    got = loss(_t(LOGITS), torch.tensor(TARGET), _t(w)).item()
    assert got == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0])
def test_focal_loss(gamma):
    logp = _log_softmax(LOGITS)[np.arange(4), TARGET]
    expected = np.mean((1 - np.exp(logp)) ** gamma * -logp)
    got = build_loss("focal", COUNTS, gamma=gamma)(_t(LOGITS), torch.tensor(TARGET)).item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_ldam_loss_margins_and_value():
    s, max_m = 30.0, 0.5
    loss = build_loss("ldam", COUNTS, max_margin=max_m, scale=s)
    margins = np.array(COUNTS, float) ** -0.25
    margins *= max_m / margins.max()
    assert margins[2] == pytest.approx(0.5) and margins[0] < margins[1] < margins[2]
    np.testing.assert_allclose(loss.margins.numpy(), margins, rtol=1e-6)
    cosine = np.tanh(LOGITS)  # any values in [-1, 1]
    shifted = s * (cosine - np.eye(3)[TARGET] * margins[TARGET, None])
    expected = -_log_softmax(shifted)[np.arange(4), TARGET].mean()
    got = loss(_t(s * cosine), torch.tensor(TARGET)).item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_class_balanced_weights():
    beta = 0.9999
    raw = np.array([(1 - beta) / (1 - beta**n) for n in COUNTS])
    np.testing.assert_allclose(
        class_balanced_weights(COUNTS, beta).numpy(), raw / raw.sum() * 3, rtol=1e-6
    )


def test_unknown_loss_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"\['balanced_softmax', 'cdt', 'ce', 'focal', 'ldam'"):
        build_loss("hinge", COUNTS)


def test_every_configurable_loss_and_arch_can_be_built():
    """settings.py names them without torch; the builders must know every one."""
    from fragility.training.losses import build_loss
    from fragility.training.models import build_model
    from fragility.training.settings import ARCHITECTURES, LOSSES

    for name in LOSSES:
        build_loss(name, [10, 5])
    for arch in ARCHITECTURES:
        build_model(arch, 3, 1)
