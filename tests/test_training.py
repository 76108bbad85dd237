import dataclasses

import numpy as np
import pytest
import torch

import fragility.training.engine as training
from fragility.errors import ConfigError, TrainingDiverged
from fragility.training.engine import train
from fragility.training.settings import TrainConfig, drw_active, learning_rate


def _augment(padded: torch.Tensor, crop: int, flip: bool, generator: torch.Generator):
    """One batch augmented as the engine augments: its draws, then its crops and flips."""
    return training.crop_and_flip(
        padded, crop, *training.draw_augmentation(len(padded), crop, flip, generator)
    )


def test_lr_schedule_of_the_paper_at_200_epochs():
    cfg = TrainConfig(epochs=200, lr=0.1)
    lrs = [learning_rate(cfg, e) for e in range(200)]
    assert lrs[:5] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1])
    assert lrs[5] == lrs[159] == 0.1
    assert lrs[160] == pytest.approx(1e-3) and lrs[179] == pytest.approx(1e-3)
    assert lrs[180] == pytest.approx(1e-5) and lrs[199] == pytest.approx(1e-5)
    assert not drw_active(TrainConfig(epochs=200, drw=True), 159)
    assert drw_active(TrainConfig(epochs=200, drw=True), 160)
    assert not drw_active(TrainConfig(epochs=200, drw=False), 199)


def test_lr_schedule_scales_with_the_epoch_count():
    cfg = TrainConfig(epochs=20, lr=0.1)
    lrs = [learning_rate(cfg, e) for e in range(20)]
    assert lrs[0] == pytest.approx(0.1)  # 5 warm-up epochs per 200 -> at least 1
    assert lrs[15] == 0.1 and lrs[16] == pytest.approx(1e-3) and lrs[18] == pytest.approx(1e-5)


def test_bad_training_settings_are_config_errors(digit_subsets):
    with pytest.raises(ConfigError, match="select"):
        TrainConfig(select="best")
    tr, te = digit_subsets
    with pytest.raises(ConfigError, match="n_val"):
        train(TrainConfig(select="val_bac", epochs=1, arch="resnet8"), tr, te, progress=False)


def test_augmentation_offsets_and_flips_are_uniform():
    # pixel (i, j) of every padded image holds 100*i + j, so a crop's top-left pixel tells
    # its offset and the order of its first row tells whether it was flipped
    b, pad, size = 5000, 2, 6
    grid = torch.arange(size + 2 * pad)
    padded = (100 * grid[:, None] + grid[None, :]).expand(b, 1, -1, -1)
    out = _augment(padded, pad, flip=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == (b, 1, size, size)
    flipped = out[:, 0, 0, 0] > out[:, 0, 0, -1]
    assert abs(flipped.float().mean().item() - 0.5) < 0.03
    unflipped = torch.where(flipped[:, None, None, None], out.flip(3), out)
    # an unflipped crop is the padded grid shifted by (dy, dx): a contiguous window
    dy, dx = unflipped[:, 0, 0, 0] // 100, unflipped[:, 0, 0, 0] % 100
    expected = 100 * (dy[:, None, None] + grid[:size, None]) + dx[:, None, None] + grid[None, :size]
    assert torch.equal(unflipped[:, 0], expected)
    for offset in (dy, dx):
        share = torch.bincount(offset, minlength=2 * pad + 1).float() / b
        assert torch.allclose(share, torch.full((2 * pad + 1,), 0.2), atol=0.025)
    assert (dy != dx).float().mean() > 0.7  # drawn independently per axis


def _cfg(**kw):
    base = dict(arch="resnet8", epochs=3, batch_size=16, crop_padding=1, flip=False, seed=5)
    base.update(kw)
    return TrainConfig(**base)


def test_training_learns_and_reports(digit_subsets):
    tr, te = digit_subsets
    result = train(_cfg(epochs=4), tr, te, progress=False)
    assert len(result.history) == 4
    row = result.history[-1]
    assert {
        "epoch",
        "lr",
        "loss",
        "train_bac",
        "test_bac",
        "train_acc",
        "test_acc",
        "seconds",
    } <= set(row)
    assert len(row["test_acc"]) == 3
    assert result.metrics["bac"] > 0.6  # 3 digit classes: chance is 1/3
    assert result.metrics["kept_epoch"] == result.best_epoch
    best = max(h["test_bac"] for h in result.history)
    assert result.metrics["bac"] == pytest.approx(best)  # select: test_bac keeps the best epoch


def test_same_seed_same_weights_on_cpu(digit_subsets):
    tr, te = digit_subsets
    a = train(_cfg(), tr, te, progress=False, device="cpu").model.state_dict()
    b = train(_cfg(), tr, te, progress=False, device="cpu").model.state_dict()
    c = train(_cfg(seed=6), tr, te, progress=False, device="cpu").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resume_after_interruption_gives_the_same_model(digit_subsets, tmp_path, monkeypatch):
    tr, te = digit_subsets
    cfg = _cfg(epochs=4, select="last")
    reference = train(cfg, tr, te, progress=False).model.state_dict()

    state = tmp_path / "resume.pt"
    real_generator = training._epoch_generator

    def killed_at_epoch_2(seed, epoch):
        if epoch == 2:
            raise KeyboardInterrupt  # as if the job were killed during epoch 3
        return real_generator(seed, epoch)

    monkeypatch.setattr(training, "_epoch_generator", killed_at_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tr, te, progress=False, resume_path=state)
    assert torch.load(state, weights_only=False)["epoch"] == 1  # epochs 0 and 1 are saved
    monkeypatch.setattr(training, "_epoch_generator", real_generator)
    resumed = train(cfg, tr, te, progress=False, resume_path=state)
    assert len(resumed.history) == 4
    assert all(torch.equal(reference[k], resumed.model.state_dict()[k]) for k in reference)


def test_resume_state_of_another_config_is_ignored(digit_subsets, tmp_path):
    tr, te = digit_subsets
    state = tmp_path / "resume.pt"
    train(_cfg(epochs=2), tr, te, progress=False, resume_path=state)
    other = train(_cfg(epochs=2, lr=0.05), tr, te, progress=False, resume_path=state)
    assert [h["epoch"] for h in other.history] == [1, 2]


def test_non_finite_loss_stops_with_the_epoch_and_keeps_the_last_good_state(
    digit_subsets, tmp_path, monkeypatch
):
    tr, te = digit_subsets
    real_lr = training.learning_rate
    monkeypatch.setattr(
        training, "learning_rate", lambda cfg, e: 1e30 if e == 1 else real_lr(cfg, e)
    )
    state = tmp_path / "resume.pt"
    with pytest.raises(TrainingDiverged, match="non-finite .* at epoch 2.*epoch 1"):
        train(_cfg(), tr, te, progress=False, resume_path=state)
    assert torch.load(state, weights_only=False)["epoch"] == 0


def test_drw_switches_class_weights_on(digit_subsets, monkeypatch):
    tr, te = digit_subsets
    seen = []
    real = training.build_loss

    def spy(*args, **kwargs):
        loss = real(*args, **kwargs)
        forward = loss.forward
        loss.forward = lambda logits, target, weight=None: (
            seen.append(weight is not None),
            forward(logits, target, weight),
        )[1]
        return loss

    monkeypatch.setattr(training, "build_loss", spy)
    train(_cfg(epochs=5, drw=True, batch_size=90), tr, te, progress=False)
    assert seen == [False] * 4 + [True]  # int(0.8 * 5) = 4 epochs without weights


def test_a_last_batch_of_one_joins_the_previous_batch():
    from fragility.training.engine import _batch_bounds

    assert _batch_bounds(257, 128) == [(0, 128), (128, 257)]
    assert _batch_bounds(258, 128) == [(0, 128), (128, 256), (256, 258)]
    assert _batch_bounds(1, 128) == [(0, 1)]
    assert _batch_bounds(256, 128) == [(0, 128), (128, 256)]


def test_the_bf16_autocast_path_of_the_gpu_runs_on_cpu(digit_subsets):
    # On an Ampere-or-later GPU the trunk trains under bf16 autocast; no GPU here, so the
    # same code path runs with CPU autocast, injected through the precision setting: losses,
    # metrics and returned tensors stay float32 (tests/test_precision.py checks the dtypes
    # of each part and the embeddings).
    tr, te = digit_subsets
    result = train(_cfg(epochs=4), tr, te, progress=False, device="cpu", precision="bfloat16")
    assert result.metrics["precision"] == "bfloat16"  # the bf16 path really ran
    assert all(np.isfinite(h["loss"]) for h in result.history)
    assert result.metrics["bac"] > 0.6  # learns as in float32 (chance 1/3)
    normalize = training.Normalizer(*result.normalization, torch.device("cpu"))
    images = training.to_device_images(te.x, torch.device("cpu"))
    logits, fe = training.predict(result.model, images, normalize, with_features=True)
    assert logits.dtype == fe.dtype == torch.float32 and logits.shape == (len(te.y), 3)
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    default = train(_cfg(epochs=1), tr, te, progress=False, device="cpu")
    assert default.metrics["precision"] == "float32"  # auto on a CPU


def test_epoch_draws_repeat_the_per_batch_draws():
    # The engine draws an epoch's crops and flips up front; they must be the very numbers
    # per-batch augmentation would have drawn, so results do not depend on that choice.
    cfg = _cfg(crop_padding=2, flip=True)
    images = torch.randint(0, 256, (37, 1, 12, 12), dtype=torch.uint8)
    bounds = training._batch_bounds(37, 16)
    order = torch.randperm(37, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(2)
    per_batch = [_augment(images[order[a:b]], 2, True, gen) for a, b in bounds]
    _, dy, dx, flips = training._epoch_draws(order, bounds, cfg, torch.Generator().manual_seed(2))
    for (a, b), expected in zip(bounds, per_batch):
        got = training.crop_and_flip(images[order[a:b]], 2, dy[a:b], dx[a:b], flips[a:b].bool())
        assert torch.equal(got, expected)
    assert flips.float().mean() not in (0.0, 1.0) and dy.unique().numel() == 5


# What waits for a GPU: any copy between host and device (``to``, ``cpu``, ``item``,
# ``float``, ``numpy``, ``tolist``) and CUDA's ``bincount``, which reads its input's range.
_HOST_ROUND_TRIPS = ("to", "cpu", "item", "tolist", "numpy", "__float__")


def _count_host_round_trips(monkeypatch, run) -> int:
    calls = []
    for name in _HOST_ROUND_TRIPS:
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(
            torch.Tensor,
            name,
            lambda self, *a, _real=real, **k: (calls.append(1), _real(self, *a, **k))[1],
        )
    real_bincount = torch.bincount
    monkeypatch.setattr(
        torch, "bincount", lambda *a, **k: (calls.append(1), real_bincount(*a, **k))[1]
    )
    run()
    monkeypatch.undo()
    return len(calls)


def test_training_steps_never_wait_for_the_device(digit_subsets, monkeypatch):
    # On a GPU each host round trip in the step loop stalls the CPU until the device has
    # finished everything queued, so launch and compute stop overlapping. On the CPU we can
    # still count them: the count per run must not grow with the number of batches.
    tr, te = digit_subsets
    cfg = _cfg(epochs=2, flip=True, crop_padding=2, batch_size=45, select="last")
    counts = [
        _count_host_round_trips(
            monkeypatch, lambda c=c: train(c, tr, te, progress=False, device="cpu")
        )
        for c in (cfg, dataclasses.replace(cfg, batch_size=9))  # 2 vs 10 batches per epoch
    ]
    assert counts[0] == counts[1] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_steps_do_not_synchronise_the_gpu(digit_subsets):
    # The real check of the one above, where a GPU exists: CUDA's sync debug mode warns at
    # every synchronising call; their number must not grow with the number of batches.
    import warnings

    tr, te = digit_subsets
    cfg = _cfg(epochs=2, flip=True, crop_padding=2, batch_size=45, select="last")
    counts = []
    for c in (cfg, dataclasses.replace(cfg, batch_size=9)):
        train(c, tr, te, progress=False, device="cuda")  # warm-up: allocator, cuDNN
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                train(c, tr, te, progress=False, device="cuda")
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts.append(sum("synchroniz" in str(w.message) for w in caught))
    assert counts[0] == counts[1]


def test_the_per_epoch_test_draw_is_balanced_seeded_and_the_metrics_use_every_image(
    digit_subsets,
):
    from fragility.training.engine import epoch_test_subset

    tr, te = digit_subsets  # 15 test images per class
    draw = epoch_test_subset(te, 4, seed=5)
    assert np.bincount(draw.y).tolist() == [4, 4, 4]
    again = epoch_test_subset(te, 4, seed=5)
    assert np.array_equal(draw.x, again.x) and np.array_equal(draw.y, again.y)
    assert not np.array_equal(draw.x, epoch_test_subset(te, 4, seed=6).x)
    assert epoch_test_subset(te, 20, seed=5) is not te  # fewer than asked: all of the class
    assert len(epoch_test_subset(te, 20, seed=5).y) == 45 and epoch_test_subset(te, None, 5) is te
    result = train(_cfg(epochs=2, epoch_test_per_class=4), tr, te, progress=False)
    # the history's per-epoch accuracies come from 4 images a class (multiples of 1/4) ...
    assert all(a * 4 == int(a * 4) for row in result.history for a in row["test_acc"])
    # ... the kept checkpoint's metrics from all 15: the same weights as without the option
    full = train(_cfg(epochs=2, select="last"), tr, te, progress=False)
    kept = train(_cfg(epochs=2, select="last", epoch_test_per_class=4), tr, te, progress=False)
    assert kept.metrics["bac"] == pytest.approx(full.metrics["bac"])
    assert all(
        torch.equal(v, full.model.state_dict()[k]) for k, v in kept.model.state_dict().items()
    )


def test_select_from_keeps_an_epoch_of_the_window_only(digit_subsets):
    tr, te = digit_subsets
    free = train(_cfg(epochs=5), tr, te, progress=False)
    late = train(_cfg(epochs=5, select_from=0.6), tr, te, progress=False)
    assert late.best_epoch >= 4  # int(0.6 * 5) = 3, the 0-based epochs 3 and 4
    window = [h["test_bac"] for h in late.history[3:]]
    assert late.metrics["kept_epoch"] == 4 + int(np.argmax(window))
    assert [h["test_bac"] for h in free.history] == [h["test_bac"] for h in late.history]
    with pytest.raises(ConfigError, match="select_from"):
        _cfg(select_from=1.0)
    # the default keeps the config hash of runs that never set it
    assert _cfg(select_from=0.0).hash() == _cfg().hash() != _cfg(select_from=0.8).hash()
