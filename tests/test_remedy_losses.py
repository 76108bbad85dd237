"""Loss-level remedies (balanced softmax, logit-adjusted loss, CDT, class-balanced
re-weighting) and pixel-space random over-sampling, each against a formula written out."""

import dataclasses
import math

import numpy as np
import pytest
import torch

import fragility.training.engine as training
from fragility.training.engine import Subset, _epoch_generator, _epoch_order, train
from fragility.training.losses import build_loss, class_balanced_weights
from fragility.training.settings import TrainConfig, class_weights_active

LOGITS = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.5, 0.0], [1.0, 1.0, 1.0]])
TARGET = np.array([0, 2, 1, 2])
COUNTS = [100, 20, 5]
WEIGHT = np.array([0.2, 1.0, 1.8])


def _nll(z, y):
    """``-log softmax(z)[y]`` for one row, with an explicit sum over classes."""
    m = max(z)
    return -(z[y] - m - math.log(sum(math.exp(v - m) for v in z)))


def _mean(losses, weights=None):
    """torch's (weighted) mean: ``Σ w_{y_n} ℓ_n / Σ w_{y_n}``."""
    if weights is None:
        return sum(losses) / len(losses)
    return sum(w * v for w, v in zip(weights, losses, strict=True)) / sum(weights)


def _loss(name, weight=None, **kwargs):
    w = None if weight is None else torch.tensor(weight, dtype=torch.float32)
    logits = torch.tensor(LOGITS, dtype=torch.float32)
    return build_loss(name, COUNTS, **kwargs)(logits, torch.tensor(TARGET), w).item()


@pytest.mark.parametrize("weight", [None, WEIGHT])
def test_balanced_softmax_is_rens_formula(weight):
    # Ren et al.: p_y = n_y exp(z_y) / Σ_j n_j exp(z_j), written with the counts themselves
    losses = []
    for z, y in zip(LOGITS, TARGET, strict=True):
        denom = sum(n * math.exp(v) for n, v in zip(COUNTS, z, strict=True))
        losses.append(-math.log(COUNTS[y] * math.exp(z[y]) / denom))
    ws = None if weight is None else [weight[y] for y in TARGET]
    assert _loss("balanced_softmax", weight) == pytest.approx(_mean(losses, ws), rel=1e-5)


def test_balanced_softmax_by_hand():
    # two classes, equal logits, prior (3/4, 1/4): the minority target's loss is log 4
    loss = build_loss("balanced_softmax", [3, 1])
    got = loss(torch.zeros(1, 2), torch.tensor([1])).item()
    assert got == pytest.approx(math.log(4), rel=1e-6)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("weight", [None, WEIGHT])
def test_logit_adjusted_loss_is_menons_formula(tau, weight):
    prior = [n / sum(COUNTS) for n in COUNTS]
    losses = [
        _nll([v + tau * math.log(p) for v, p in zip(z, prior, strict=True)], y)
        for z, y in zip(LOGITS, TARGET, strict=True)
    ]
    ws = None if weight is None else [weight[y] for y in TARGET]
    assert _loss("logit_adjusted", weight, la_tau=tau) == pytest.approx(_mean(losses, ws), rel=1e-5)


def test_logit_adjusted_limits():
    assert _loss("logit_adjusted") == pytest.approx(_loss("balanced_softmax"), rel=1e-6)  # τ = 1
    assert _loss("logit_adjusted", la_tau=0.0) == pytest.approx(_loss("ce"), rel=1e-6)
    assert _loss("logit_adjusted", WEIGHT, la_tau=0.0) == pytest.approx(_loss("ce", WEIGHT))


@pytest.mark.parametrize("gamma", [0.0, 0.2, 0.5])
@pytest.mark.parametrize("weight", [None, WEIGHT])
def test_cdt_is_yes_formula(gamma, weight):
    temps = [(max(COUNTS) / n) ** gamma for n in COUNTS]
    losses = [
        _nll([v / a for v, a in zip(z, temps, strict=True)], y)
        for z, y in zip(LOGITS, TARGET, strict=True)
    ]
    ws = None if weight is None else [weight[y] for y in TARGET]
    assert _loss("cdt", weight, cdt_gamma=gamma) == pytest.approx(_mean(losses, ws), rel=1e-5)


def test_cdt_by_hand_and_default_gamma():
    # counts (4, 1), γ = 1/2: temperatures (1, 2); logits (2, 2) → (2, 1); target 0
    loss = build_loss("cdt", [4, 1], cdt_gamma=0.5)
    np.testing.assert_allclose(loss.temperatures.numpy(), [1.0, 2.0])
    got = loss(torch.tensor([[2.0, 2.0]]), torch.tensor([0])).item()
    assert got == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    assert build_loss("cdt", COUNTS).gamma == 0.2  # TrainConfig's default
    assert TrainConfig().cdt_gamma == 0.2 and TrainConfig().la_tau == 1.0


@pytest.mark.parametrize("name", ["balanced_softmax", "logit_adjusted", "cdt"])
def test_new_losses_backpropagate_and_move_with_the_module(name):
    loss = build_loss(name, COUNTS)
    logits = torch.tensor(LOGITS, dtype=torch.float32, requires_grad=True)
    loss(logits, torch.tensor(TARGET), torch.tensor(WEIGHT, dtype=torch.float32)).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    assert len(list(loss.buffers())) == 1  # the prior / temperatures follow .to(device)


# -- class-balanced re-weighting from epoch 0 ------------------------------------------------


def test_reweight_applies_class_weights_from_the_first_epoch():
    plain = TrainConfig(epochs=10)
    drw = TrainConfig(epochs=10, drw=True)
    rw = TrainConfig(epochs=10, reweight=True)
    both = TrainConfig(epochs=10, reweight=True, drw=True)
    assert [class_weights_active(plain, e) for e in range(10)] == [False] * 10
    assert [class_weights_active(drw, e) for e in range(10)] == [False] * 8 + [True] * 2
    assert [class_weights_active(rw, e) for e in range(10)] == [True] * 10
    assert [class_weights_active(both, e) for e in range(10)] == [True] * 10


def test_every_remedy_setting_changes_the_config_hash():
    """A resume state of one setting is never taken for another's."""
    cfg = TrainConfig(loss="focal", drw=True)
    hashes = {
        cfg.hash(),
        dataclasses.replace(cfg, reweight=True).hash(),
        dataclasses.replace(cfg, oversample=True).hash(),
        dataclasses.replace(cfg, la_tau=0.5).hash(),
        dataclasses.replace(cfg, cdt_gamma=0.3).hash(),
    }
    assert len(hashes) == 5


# -- pixel-space random over-sampling ---------------------------------------------------------

LABELS = torch.tensor([0] * 50 + [1] * 7 + [2] * 1 + [3] * 20)[torch.randperm(78)]


def test_oversampled_order_balances_the_classes_and_keeps_every_image():
    order = _epoch_order(LABELS, True, _epoch_generator(3, 7))
    assert order.dtype == torch.int64 and len(order) == 4 * 50
    assert torch.bincount(LABELS[order]).tolist() == [50, 50, 50, 50]
    assert set(order.tolist()) == set(range(78))  # every image at least once
    majority = torch.nonzero(LABELS == 0).flatten()
    assert sorted(order[torch.isin(order, majority)].tolist()) == sorted(majority.tolist())
    assert torch.bincount(order, minlength=78)[LABELS == 2].item() == 50  # the lone image
    assert not torch.equal(LABELS[order][:50], LABELS[order].sort().values[:50])  # shuffled


def test_oversampled_order_is_determined_by_seed_and_epoch():
    a = _epoch_order(LABELS, True, _epoch_generator(3, 7))
    assert torch.equal(a, _epoch_order(LABELS, True, _epoch_generator(3, 7)))
    assert not torch.equal(a, _epoch_order(LABELS, True, _epoch_generator(3, 8)))
    assert not torch.equal(a, _epoch_order(LABELS, True, _epoch_generator(4, 7)))


def test_without_oversampling_the_order_is_the_old_permutation():
    got = _epoch_order(LABELS, False, _epoch_generator(3, 7))
    assert torch.equal(got, torch.randperm(78, generator=_epoch_generator(3, 7)))


def _imbalanced(digit_subsets, keep=(30, 8, 3)):
    tr, te = digit_subsets
    rows = np.concatenate([np.flatnonzero(tr.y == c)[:k] for c, k in enumerate(keep)])
    return Subset(tr.x[rows], tr.y[rows]), te


def _cfg(**kw):
    base = dict(arch="resnet8", epochs=2, batch_size=45, crop_padding=1, flip=False, seed=5)
    base.update(kw)
    return TrainConfig(**base)


def test_oversampled_training_runs_and_reports_train_accuracy_fractions(digit_subsets):
    tr, te = _imbalanced(digit_subsets)
    result = train(_cfg(oversample=True, loss="balanced_softmax"), tr, te, progress=False)
    assert len(result.history) == 2
    for row in result.history:
        assert row["samples"] == 3 * 30  # every class at the majority's count
        assert all(0.0 <= a <= 1.0 for a in row["train_acc"])
        assert 0.0 <= row["train_bac"] <= 1.0 and math.isfinite(row["loss"])
    assert result.metrics["train_class_counts"] == [30, 8, 3]  # the subset, not the epoch


def test_train_accuracy_divides_by_the_passes_over_each_class(digit_subsets, monkeypatch):
    """A frozen model that always answers the 3-image class: under over-sampling that class
    is seen 30 times per epoch and hit every time, so its accuracy is exactly 1 (not 30/3)."""
    tr, te = _imbalanced(digit_subsets)
    real = training._new_model

    def always_class_2(cfg, n_classes, in_channels):
        model = real(cfg, n_classes, in_channels)
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.copy_(torch.tensor([0.0, 0.0, 10.0]))
        return model

    monkeypatch.setattr(training, "_new_model", always_class_2)
    cfg = _cfg(epochs=1, oversample=True, lr=0.0, weight_decay=0.0, augment=False)
    row = train(cfg, tr, te, progress=False).history[0]
    assert row["train_acc"] == [0.0, 0.0, 1.0]
    assert row["test_acc"] == [0.0, 0.0, 1.0]  # evaluation: raw logits, no prior applied


def test_reweight_and_oversampling_reach_the_training_loop(digit_subsets, monkeypatch):
    tr, te = _imbalanced(digit_subsets)
    seen, sizes = [], []
    real = training.build_loss

    def spy(*args, **kwargs):
        loss = real(*args, **kwargs)
        forward = loss.forward

        def recording(logits, target, weight=None):
            seen.append(None if weight is None else weight.cpu())
            sizes.append(len(target))
            return forward(logits, target, weight)

        loss.forward = recording
        return loss

    monkeypatch.setattr(training, "build_loss", spy)
    cfg = _cfg(reweight=True, oversample=True, loss="cdt", batch_size=200, cb_beta=0.99)
    result = train(cfg, tr, te, progress=False)
    expected = class_balanced_weights([30, 8, 3], 0.99)
    assert len(seen) == 2 and all(torch.equal(w, expected) for w in seen)  # epoch 0 on
    assert sizes == [90, 90]
    assert [(r["drw"], r["class_weights"]) for r in result.history] == [(False, True)] * 2


def test_oversampled_training_resumes_exactly(digit_subsets, tmp_path, monkeypatch):
    tr, te = _imbalanced(digit_subsets)
    cfg = _cfg(epochs=3, select="last", oversample=True)
    reference = train(cfg, tr, te, progress=False).model.state_dict()
    state = tmp_path / "resume.pt"
    real_generator = training._epoch_generator

    def killed_at_epoch_2(seed, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return real_generator(seed, epoch)

    monkeypatch.setattr(training, "_epoch_generator", killed_at_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tr, te, progress=False, resume_path=state)
    monkeypatch.setattr(training, "_epoch_generator", real_generator)
    resumed = train(cfg, tr, te, progress=False, resume_path=state)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert all(torch.equal(reference[k], resumed.model.state_dict()[k]) for k in reference)
