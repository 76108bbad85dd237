"""Major Feature Weakening (the lecture's Solution 5)."""

import dataclasses

import pytest
import torch

import fragility.training.engine as training
from fragility.errors import ConfigError
from fragility.training.engine import train
from fragility.training.losses import build_loss
from fragility.training.mfw import FeatureWeakening, draw_partners, mfw_generator, mix_features
from fragility.training.models import build_model
from fragility.training.settings import MFWSettings, TrainConfig


def test_strength_grows_with_class_size_and_is_zero_for_the_smallest():
    assert MFWSettings(strength=0.5).strengths([100, 55, 10]) == pytest.approx([0.5, 0.25, 0.0])
    assert MFWSettings(strength=0.4, power=2).strengths([100, 55, 10]) == pytest.approx(
        [0.4, 0.1, 0.0]
    )
    assert MFWSettings().strengths([30, 30, 30]) == [0.0, 0.0, 0.0]  # balanced: nothing to weaken


def test_mfw_settings_come_from_the_config_and_are_checked():
    cfg = TrainConfig(mfw={"strength": 0.3, "layer": "fe"})
    assert cfg.mfw == MFWSettings(strength=0.3, power=1.0, layer="fe")
    assert TrainConfig(mfw={}).mfw == MFWSettings()
    assert cfg.hash() != TrainConfig().hash()
    for bad in ({"layer": "stage9"}, {"strength": 2.0}, {"lam": 0.1}):
        with pytest.raises(ConfigError):
            TrainConfig(mfw=bad)


def test_mix_keeps_the_smallest_class_and_mixes_a_major_class_by_its_lambda():
    h = torch.randn(6, 4, 3, 3)
    target = torch.tensor([0, 0, 1, 2, 2, 0])
    partner = torch.tensor([3, 2, 5, 0, 1, 4])
    lam = torch.tensor(MFWSettings(strength=0.5).strengths([100, 55, 10]))
    out = mix_features(h, target, partner, lam)
    smallest = target == 2
    assert torch.equal(out[smallest], h[smallest])
    for n in torch.nonzero(~smallest).flatten().tolist():
        lam_n = float(lam[target[n]])
        torch.testing.assert_close(out[n], (1 - lam_n) * h[n] + lam_n * h[partner[n]])


def test_partners_are_other_batch_members_and_reproducible_from_the_seed():
    bounds = training._batch_bounds(70, 16)
    a = draw_partners(bounds, mfw_generator(3, 1))
    assert torch.equal(a, draw_partners(bounds, mfw_generator(3, 1)))
    assert not torch.equal(a, draw_partners(bounds, mfw_generator(4, 1)))
    for start, stop in bounds:
        local = a[start:stop]
        assert torch.all((local >= 0) & (local < stop - start))
        assert torch.all(local != torch.arange(stop - start))
    assert torch.equal(draw_partners([(0, 1)], mfw_generator(0, 0)), torch.tensor([0]))


def test_model_mixes_at_the_chosen_point_and_the_labels_are_kept():
    torch.manual_seed(0)
    model = build_model("resnet8", 3, 1).eval()
    x = torch.randn(6, 1, 8, 8)
    target = torch.tensor([0, 0, 1, 2, 2, 0])
    partner = torch.tensor([3, 2, 5, 0, 1, 4])
    weakening = FeatureWeakening.build(MFWSettings(layer="fe"), [100, 55, 10], torch.device("cpu"))
    with torch.no_grad():
        plain, mixed = model.features(x), weakening.features(model, x, target, partner)
    assert torch.equal(mixed[target == 2], plain[target == 2])
    torch.testing.assert_close(mixed[0], 0.5 * plain[0] + 0.5 * plain[3])
    seen = []
    weakening.layer = "stage2"
    model.features_mixed(x, lambda h: seen.append(h.shape) or h, "stage2")
    assert seen == [torch.Size([6, 32, 4, 4])]  # after the second stage, before the third

    class Spy(torch.nn.Module):  # the loss sees the true labels of the batch
        def forward(self, logits, y, weight=None):
            seen.append(y.clone())
            return build_loss("ce", [100, 55, 10])(logits, y, weight)

    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    batches = [(x, torch.arange(6), partner)]
    training._train_steps(model, opt, Spy(), None, lambda v: v, batches, target, 3, mfw=weakening)
    assert torch.equal(seen[-1], target)


def _weights(result):
    return [v.clone() for v in result.model.state_dict().values()]


def test_mfw_training_is_reproducible_and_zero_strength_is_erm(digit_subsets):
    tr, te = digit_subsets
    keep = (tr.y != 2) | (torch.arange(len(tr.y)) % 3 == 0).numpy()  # 30 / 30 / 10
    tr = training.Subset(tr.x[keep], tr.y[keep])
    base = TrainConfig(arch="resnet8", epochs=2, batch_size=16, crop_padding=1, flip=False)
    mfw = dataclasses.replace(base, mfw=MFWSettings(strength=0.5))
    runs = [train(c, tr, te, progress=False, device="cpu") for c in (mfw, mfw, base)]
    a, b, erm = (_weights(r) for r in runs)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not all(torch.equal(u, v) for u, v in zip(a, erm))
    # strength 0 draws its partners from a generator of its own and mixes nothing: the
    # batches, augmentation and weights are ERM's, bit for bit
    zero = train(dataclasses.replace(base, mfw=MFWSettings(strength=0.0)), tr, te, progress=False)
    assert all(torch.equal(u, v) for u, v in zip(_weights(zero), erm))


def test_mfw_steps_never_wait_for_the_device(digit_subsets, monkeypatch):
    from test_training import _count_host_round_trips

    tr, te = digit_subsets
    cfg = TrainConfig(
        arch="resnet8", epochs=2, batch_size=45, crop_padding=2, select="last", mfw={}
    )
    counts = [
        _count_host_round_trips(
            monkeypatch, lambda c=c: train(c, tr, te, progress=False, device="cpu")
        )
        for c in (cfg, dataclasses.replace(cfg, batch_size=9))
    ]
    assert counts[0] == counts[1] > 0
