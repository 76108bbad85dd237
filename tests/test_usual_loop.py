"""The usual DataLoader loop (usual_loop) against the engine (fragility.training.engine)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms
from usual_loop import ImageDataset, train_usual_loop, usual_transforms

from fragility.training.engine import (
    Normalizer,
    Subset,
    _new_model,
    channel_stats,
    crop_and_flip,
    draw_augmentation,
    train,
)
from fragility.training.settings import TrainConfig

SIZE, PAD, DRAWS = 6, 2, 4000


def _position_image() -> np.ndarray:
    """``(SIZE, SIZE)`` uint8: pixel (r, c) holds 10*(r+PAD) + (c+PAD), its padded position."""
    grid = np.arange(SIZE) + PAD
    return (10 * grid[:, None] + grid[None, :]).astype(np.uint8)


def _decode(crop: np.ndarray, padded: np.ndarray) -> tuple[int, int, bool]:
    """(dy, dx, flipped) of one crop of the zero-padded position image."""
    row = crop[np.flatnonzero(crop.max(axis=1))[0]]
    values = row[row > 0]
    flipped = bool(values[0] > values[-1])
    crop = crop[:, ::-1] if flipped else crop
    i, j = np.argwhere(crop > 0)[0]
    dy, dx = int(crop[i, j]) // 10 - i, int(crop[i, j]) % 10 - j
    np.testing.assert_array_equal(crop, padded[dy : dy + SIZE, dx : dx + SIZE])
    return dy, dx, flipped


def _chi_square(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample chi-square statistic for equal-sized samples' bin counts."""
    keep = (a + b) > 0
    return float((((a - b) ** 2)[keep] / (a + b)[keep]).sum())


def test_crop_offsets_and_flips_have_the_same_distribution():
    img = _position_image()
    padded = np.pad(img, PAD)
    torch.manual_seed(0)
    crop_flip = transforms.Compose(
        [transforms.RandomCrop(SIZE, padding=PAD), transforms.RandomHorizontalFlip()]
    )
    ref = [_decode(np.asarray(crop_flip(Image.fromarray(img))), padded) for _ in range(DRAWS)]
    batch = torch.from_numpy(padded).expand(DRAWS, 1, -1, -1)
    gen = torch.Generator().manual_seed(0)
    out = crop_and_flip(batch, PAD, *draw_augmentation(DRAWS, PAD, True, gen))
    eng = [_decode(o[0].numpy(), padded) for o in out]

    ref, eng = np.array(ref), np.array(eng)
    bins = 2 * PAD + 1
    for axis in (0, 1):  # dy, dx: uniform on 0..2p on both sides
        r = np.bincount(ref[:, axis], minlength=bins)
        e = np.bincount(eng[:, axis], minlength=bins)
        assert len(r) == len(e) == bins
        assert _chi_square(r, e) < 18.5  # df = 4, p = 0.001
        for counts in (r, e):
            expected = DRAWS / bins
            assert ((counts - expected) ** 2 / expected).sum() < 18.5
    for side in (ref, eng):
        assert abs(side[:, 2].mean() - 0.5) < 0.035  # 4.4 sigma at 4,000 draws
        assert (side[:, 0] != side[:, 1]).mean() > 0.7  # axes drawn independently


@pytest.mark.parametrize("channels", [1, 3])
def test_normalisation_is_identical(channels):
    rng = np.random.default_rng(channels)
    x = rng.integers(0, 256, (4, 7, 5, channels), dtype=np.uint8)
    mean, std = channel_stats(x)
    engine = Normalizer(mean, std, torch.device("cpu"))(torch.from_numpy(x).permute(0, 3, 1, 2))
    data = ImageDataset(x, np.zeros(4), usual_transforms((7, 5), mean, std, augment=False))
    ref = torch.stack([data[i][0] for i in range(4)])
    pil = Image.fromarray(x[0] if channels == 3 else x[0, ..., 0])
    direct = transforms.Normalize(mean, std)(transforms.ToTensor()(pil))
    torch.testing.assert_close(engine, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(engine[0], direct, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("loss", "drw", "options"),
    [
        ("ce", False, {}),
        ("focal", True, {}),
        ("ldam", True, {}),
        # the loss options beyond the defaults, and class weights from epoch 0 without DRW
        ("logit_adjusted", False, {"la_tau": 2.0}),
        ("cdt", False, {"cdt_gamma": 0.5}),
        ("ce", False, {"reweight": True}),
    ],
)
def test_one_epoch_without_augmentation_matches_the_engine(digit_subsets, loss, drw, options):
    tr, te = digit_subsets
    # imbalanced (30/12/4), else the prior-based losses and class weights change nothing
    keep = np.concatenate([np.flatnonzero(tr.y == c)[:n] for c, n in enumerate((30, 12, 4))])
    tr = Subset(tr.x[keep], tr.y[keep])
    # drw_start 0: the class-balanced weights are on from the first epoch
    cfg = TrainConfig(
        arch="resnet8", loss=loss, drw=drw, drw_start=0.0, epochs=1, batch_size=16, seed=3,
        augment=False, **options,
    )  # fmt: skip
    engine = train(cfg, tr, te, device="cpu", progress=False)
    start = _new_model(cfg, 3, 1).state_dict()
    ref = train_usual_loop(cfg, tr, te, initial_state=start, batch_order="engine")
    assert ref["loss"][0] == pytest.approx(engine.history[0]["loss"], rel=1e-3)
    final = engine.model.state_dict()
    for name in ("conv1.weight", "classifier.weight"):
        torch.testing.assert_close(ref["state_dict"][name], final[name], rtol=1e-3, atol=1e-3)


def test_the_usual_loop_reports_and_is_reproducible(digit_subsets):
    tr, te = digit_subsets
    cfg = TrainConfig(arch="resnet8", epochs=2, batch_size=32, crop_padding=1, seed=1)
    before = torch.random.get_rng_state()
    a = train_usual_loop(cfg, tr, te)
    assert torch.equal(torch.random.get_rng_state(), before)  # no global RNG state leaks
    b = train_usual_loop(cfg, tr, te, epochs=1)
    assert b["loss"] == a["loss"][:1]
    assert len(a["loss"]) == len(a["test_bac"]) == len(a["seconds_per_epoch"]) == 2
    assert all(np.isfinite(a["loss"])) and 0 <= a["test_bac"][-1] <= 1
    assert a["images_per_s"] > 0 and a["n_train"] == 90
    assert set(a["state_dict"]) == set(_new_model(cfg, 3, 1).state_dict())
    with pytest.raises(ValueError, match="batch_order"):
        train_usual_loop(cfg, tr, te, batch_order="sorted")


def test_the_usual_loop_with_the_engines_compute_settings_matches_the_engine(digit_subsets):
    """compute="engine": the engine's precision, channels-last and autotuning. In float32
    one epoch without augmentation ends where the engine's does; under the GPU policy (a bf16
    trunk, injected on the CPU) it trains and reports that precision."""
    tr, te = digit_subsets
    cfg = TrainConfig(arch="resnet8", epochs=1, batch_size=16, seed=3, augment=False)
    engine = train(cfg, tr, te, device="cpu", progress=False)
    start = _new_model(cfg, 3, 1).state_dict()
    ref = train_usual_loop(cfg, tr, te, initial_state=start, batch_order="engine", compute="engine")
    assert (ref["compute"], ref["precision"]) == ("engine", "float32")
    assert ref["loss"][0] == pytest.approx(engine.history[0]["loss"], rel=1e-3)
    for name in ("conv1.weight", "classifier.weight"):
        final = engine.model.state_dict()[name]
        torch.testing.assert_close(ref["state_dict"][name], final, rtol=1e-3, atol=1e-3)
    bf16 = train_usual_loop(cfg, tr, te, compute="engine", precision="bfloat16")
    assert bf16["precision"] == "bfloat16" and np.isfinite(bf16["loss"]).all()
    with pytest.raises(ValueError, match="compute"):
        train_usual_loop(cfg, tr, te, compute="fast")


def _train_speed_bench():
    path = Path(__file__).parents[1] / "bench" / "train_speed.py"
    spec = importlib.util.spec_from_file_location("train_speed", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


_TINY_BENCH = ["--dataset", "digits", "--imbalance", "exp10", "--n-max", "40", "--arch", "resnet8"]


def test_benchmark_script_runs_and_writes_its_numbers(tmp_path, capsys):
    bench = _train_speed_bench()
    out = tmp_path / "speed.json"
    argv = [*_TINY_BENCH, "--epochs", "1"]
    assert bench.main([*argv, "--device", "cpu", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["verdict"] in ("PASS", "FAIL")
    names = [side["name"] for side in report["sides"]]
    assert names[-1] == "engine" and names[0].startswith("usual loop")
    engine, ref = report["sides"][-1], report["sides"][0]
    assert report["ratio"] == pytest.approx(engine["images_per_s"] / ref["images_per_s"])
    compute = report["compute_only"]
    assert report["ceiling"] == pytest.approx(compute["images_per_s"] / ref["images_per_s"])
    # every side timed in each of the rounds (the default two), one epoch each
    assert len(engine["train_seconds"]) == len(compute["train_seconds"]) == 2
    # the target's ratio is against usual-loop rows with the engine's compute settings; the
    # plain float32 one has a ratio of its own
    plain = next(
        side for side in report["sides"] if side["name"] == report["plain_float32_usual_loop"]
    )
    assert "plain float32" in plain["name"] and report["best_usual_loop"] != plain["name"]
    assert report["ratio_plain_float32"] == pytest.approx(
        engine["images_per_s"] / plain["images_per_s"]
    )
    assert report["finished"] and report["rounds_done"] == 2
    printed = capsys.readouterr().out
    assert "ratio = engine images/s / usual-loop images/s" in printed
    assert "ratio vs the plain float32 usual loop" in printed


def test_benchmark_full_run_times_whole_engine_runs(tmp_path, capsys):
    bench = _train_speed_bench()
    out = tmp_path / "full.json"
    argv = [*_TINY_BENCH, "--epochs", "3", "--full-run", "--device", "cpu", "--json", str(out)]
    assert bench.main(argv) == 0
    report = json.loads(out.read_text())
    assert len(report["full_run_seconds"]) == 2  # --rounds: two whole runs
    # every epoch's seconds (what a run cut off by a time limit keeps)
    assert [len(run) for run in report["epoch_seconds"]] == [3, 3] and report["finished"]
    assert report["projected_run_s"] == pytest.approx(3 * report["median_epoch_s"])
    assert report["median_seconds"] == pytest.approx(np.median(report["full_run_seconds"]))
    # images/s counts every epoch's training images over the whole run's wall time
    n_train = report["data"]["n_train"]
    assert report["images_per_s"] == pytest.approx(3 * n_train / report["median_seconds"])
    assert all(1 <= k <= 3 for k in report["kept_epoch"])
    assert report["verdict"] is None  # the 2-minute target is for 200 epochs on a GPU
    printed = capsys.readouterr().out
    assert "engine, 3 epochs end to end" in printed and "usual loop" not in printed
