"""Training speed: our engine (``fragility.training.engine.train``) against the usual PyTorch loop.

Both sides train the same model (same initial weights, optimiser, schedule, loss) on the
same split with the same augmentation (random crop from padding, horizontal flip) and the
same compute settings: the engine's precision policy (``fragility.training.precision``: a bf16 trunk
on Ampere-or-later GPUs, float32 elsewhere; the head in float32), channels-last tensors and
cuDNN autotuning. They differ only in how the data reaches the model and in the step loop.
The usual loop (``usual_loop.train_usual_loop`` with ``compute="engine"``) is a
per-sample torchvision-transform ``DataLoader``; the engine keeps uint8 images on the device
and augments whole batches. Each side first runs a short warm-up; then the sides take turns
for ``--rounds`` rounds of ``--epochs`` timed epochs, each epoch followed by an evaluation of
the test set (as both training loops do). Every row is the median over all its timed epochs.

A second usual-loop row, ``plain float32``, is that loop as public code runs it: float32,
NCHW, no autotuning (with the largest ``--workers`` tried). ``engine / plain float32`` is
printed on its own line, labelled: it also counts what the precision and memory format buy,
so it is not the ratio the target is about. On a CPU both usual-loop rows run float32 and differ
by the memory format alone.

A third row, ``compute only``, runs the engine's own step loop on the real batches,
normalised beforehand and in a fixed order: the model's own cost with no data path.
``compute-only / usual loop`` is the ceiling of the ratio on this machine, and
``engine / compute-only`` says how close the engine comes to it.

``images/s`` counts training images per second of the training pass alone; ``epoch s``
adds the test evaluation. The engine's evaluation time is measured by wrapping
``fragility.training.engine.predict`` (it is not otherwise separable from ``train``).

    python bench/train_speed.py                          # fashion_mnist exp100, resnet32
    python bench/train_speed.py --arch resnet8 --rounds 3
    python bench/train_speed.py --synthetic-cifar        # CIFAR-10-shaped, 12,406 images
    python bench/train_speed.py --synthetic-cifar --full-run --epochs 200   # engine alone

``--full-run`` skips the comparison: it times the engine alone on whole training runs of
``--epochs`` epochs (the real schedule, a test evaluation and the resume state after every
epoch, the chosen checkpoint restored), as a workflow training job runs one. On CUDA the
target for 200 epochs of CIFAR-10-shaped exp100 data is under two minutes.

The ratio target is printed with PASS/FAIL; the exit code is 0 either way. With ``--json`` the
numbers are written after every round (``--full-run``: after every epoch, with the epochs'
seconds so far), so a run cut off by a time limit still leaves what it measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from usual_loop import train_usual_loop

import fragility.training.engine as training
import fragility.training.precision as precisions
from fragility.data.datasets import load_raw
from fragility.data.splits import class_counts, make_split, subset_indices
from fragility.training.engine import Subset, channel_stats, resolve_device
from fragility.training.settings import TrainConfig

TARGETS = {"cpu": 1.5, "cuda": 10.0}  # engine/usual-loop training images/s; cuda: on an H100
FULL_RUN_TARGET_S = {"cuda": 120.0}  # 200 epochs of CIFAR-10-shaped exp100 on an H100
PROJECTED_EPOCHS = 200
COMPUTE_ONLY = "compute only (ceiling)"
PLAIN = "plain float32"  # the usual loop as public code runs it


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--dataset", default="fashion_mnist", choices=["fashion_mnist", "digits", "cifar10"]
    )
    p.add_argument("--imbalance", default="exp100")
    p.add_argument("--n-max", type=int, default=1000)
    p.add_argument("--arch", default="resnet32")
    p.add_argument("--epochs", type=int, default=1, help="timed epochs per side and round")
    p.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="the sides take turns this many times (each row is the median over all its "
        "timed epochs), so that load from other processes hits every side alike",
    )
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument(
        "--workers",
        default="auto",
        help="usual-loop DataLoader num_workers to try, comma-separated (auto: 0,2 on CUDA; "
        "0 on a CPU with at most 2 cores, where workers only compete with the model for cores)",
    )
    p.add_argument(
        "--n-test",
        type=int,
        default=300,
        help="test images per class, the same for both sides (0: the whole test set; "
        "evaluating all 10,000 after every epoch would dominate a short CPU run)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--synthetic-cifar",
        action="store_true",
        help="random uint8 32x32x3 data shaped like CIFAR-10 (n_max 5000, --imbalance; "
        "exp100: 12,406 training images) and a balanced 10,000-image test set",
    )
    p.add_argument(
        "--full-run",
        action="store_true",
        help="time the engine alone on one whole run of --epochs epochs (no usual loop)",
    )
    p.add_argument("--json", help="write the numbers to this file")
    return p.parse_args(argv)


def load_data(args) -> tuple[Subset, Subset, int, str]:
    """Training and test subsets, the class count and a description of the data."""
    if args.synthetic_cifar:
        rng = np.random.default_rng(args.seed)
        counts = class_counts(args.imbalance, 5000, 10)
        y_train = np.repeat(np.arange(10), counts).astype(np.int64)
        y_test = np.repeat(np.arange(10), 1000).astype(np.int64)
        x_train = rng.integers(0, 256, (len(y_train), 32, 32, 3), dtype=np.uint8)
        x_test = rng.integers(0, 256, (len(y_test), 32, 32, 3), dtype=np.uint8)
        desc = f"synthetic CIFAR-10 shape, {args.imbalance}, n_max 5000"
        return Subset(x_train, y_train), Subset(x_test, y_test), 10, desc
    raw = load_raw(args.dataset)
    n_max = args.n_max
    smallest = int(np.bincount(raw.y_train).min())
    if n_max > smallest:
        print(f"note: {args.dataset} has {smallest} images in its smallest class; "
              f"n_max {n_max} -> {smallest}", file=sys.stderr)  # fmt: skip
        n_max = smallest
    n_test = args.n_test or None
    if n_test is not None and n_test > int(np.bincount(raw.y_test).min()):
        n_test = None  # fewer test images than that per class (digits): take them all
    split = make_split(raw.y_train, raw.y_test, args.imbalance, n_max, args.seed, n_test=n_test)
    tr_idx, tr_y = subset_indices(split, "train")
    te_idx, te_y = subset_indices(split, "test")
    desc = f"{args.dataset}, {args.imbalance}, n_max {n_max}, n_test {n_test or 'all'}"
    return (
        Subset(raw.x_train[tr_idx], tr_y),
        Subset(raw.x_test[te_idx], te_y),
        len(raw.classes),
        desc,
    )


def stratified_head(subset: Subset, n: int, n_classes: int) -> Subset:
    """About ``n`` images with every class present (for the warm-up)."""
    per_class = max(1, n // n_classes)
    idx = np.concatenate([np.flatnonzero(subset.y == c)[:per_class] for c in range(n_classes)])
    return Subset(subset.x[idx], subset.y[idx])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class EvalTimer:
    """Times every ``training.predict`` call made inside ``train`` (the per-epoch test eval)."""

    def __init__(self, device: torch.device):
        self.device, self.seconds = device, []

    def __enter__(self):
        self.original = training.predict

        def timed(*args, **kwargs):
            _sync(self.device)
            t0 = time.perf_counter()
            out = self.original(*args, **kwargs)
            _sync(self.device)
            self.seconds.append(time.perf_counter() - t0)
            return out

        training.predict = timed
        return self

    def __exit__(self, *exc):
        training.predict = self.original


def run_engine(cfg, tr, te, n_classes, norm, device) -> dict:
    with EvalTimer(device) as timer:
        result = training.train(
            cfg, tr, te, n_classes=n_classes, normalization=norm, device=device, progress=False
        )
    cumulative = [row["seconds"] for row in result.history]
    epoch_s = np.diff([0.0] + cumulative).tolist()
    eval_s = timer.seconds[: cfg.epochs]  # one test evaluation per epoch, then the final one
    train_s = [e - v for e, v in zip(epoch_s, eval_s)]
    losses = [row["loss"] for row in result.history]
    return _raw(train_s, eval_s, losses, [row["test_bac"] for row in result.history])


def run_compute_only(cfg, tr, n_classes, norm, device) -> dict:
    """The model's own cost: the engine's step loop (``training._train_steps``: model,
    optimiser, loss, batch sizes, memory format, precision) on batches normalised beforehand,
    in a fixed order, without augmentation: no data path at all. No pipeline can beat this, so
    ``compute-only images/s / usual-loop images/s`` is the ceiling of the ratio here.
    (Real batches, not one repeated batch: a model that has memorised one batch produces
    tiny, subnormal gradients, which are slow on a CPU and would understate the ceiling.)"""
    model = training._new_model(cfg, n_classes, tr.x.shape[-1]).to(device)
    model = model.to(memory_format=torch.channels_last).train()
    counts = np.bincount(tr.y, minlength=n_classes)
    criterion = training.build_criterion(cfg, counts).to(device)
    optimizer = training.build_optimizer(cfg, model)
    normalize = training.Normalizer(*norm, device)
    images = training.to_device_images(tr.x, device)
    labels = torch.from_numpy(tr.y.astype(np.int64)).to(device)
    batches = [
        (normalize(images[start:stop]), torch.arange(start, stop, device=device))
        for start, stop in training._batch_bounds(len(tr.y), cfg.batch_size)
    ]
    seconds, losses = [], []
    for _ in range(cfg.epochs):
        _sync(device)
        t0 = time.perf_counter()
        # the engine's own step loop; the batches are normalised already
        loss_sum, _ = training._train_steps(
            model, optimizer, criterion, None, lambda x: x, batches, labels, n_classes,
            precision=precisions.training(device),
        )  # fmt: skip
        _sync(device)
        seconds.append(time.perf_counter() - t0)
        losses.append(float(loss_sum) / len(tr.y))
    return _raw(seconds, [0.0] * len(seconds), losses, [math.nan])


def full_run(args, cfg, tr, te, n_classes, norm, device, report_header: dict) -> int:
    """Time whole ``train`` calls of ``cfg.epochs`` epochs, ``--rounds`` of them, end to end
    (moving the data to the device, the per-epoch resume state and restoring the kept
    checkpoint included)."""
    walls, results, epochs = [], [], []
    started = time.perf_counter()

    def epoch_done(row: dict) -> None:
        """After each epoch: its seconds (the history's cumulative clock) and, with --json,
        the numbers so far, so that a run cut off by a time limit keeps its rate."""
        epochs[-1].append(row["seconds"] - sum(epochs[-1]))
        done = [s for run in epochs for s in run]
        write_report(
            args.json,
            report_header,
            finished=False,
            runs_finished=len(walls),
            epoch_seconds=epochs,
            median_epoch_s=float(np.median(done)),
            projected_run_s=float(np.median(done)) * cfg.epochs,
            elapsed_s=time.perf_counter() - started,
            quiet=True,
        )

    for k in range(args.rounds):
        epochs.append([])
        with tempfile.TemporaryDirectory() as tmp:
            _sync(device)
            t0 = time.perf_counter()
            # the per-epoch resume state is written, as in a workflow training job
            result = training.train(
                cfg,
                tr,
                te,
                n_classes=n_classes,
                normalization=norm,
                device=device,
                progress=False,
                resume_path=Path(tmp) / "state.pt",
                on_epoch=epoch_done,
            )
            _sync(device)
            walls.append(time.perf_counter() - t0)
        results.append(result)
        print(f"  run {k + 1}: {walls[-1]:.1f} s, test BAC {result.metrics['bac']:.3f}", flush=True)
    wall = float(np.median(walls))
    target = FULL_RUN_TARGET_S.get(device.type) if cfg.epochs == PROJECTED_EPOCHS else None
    verdict = None if target is None else ("PASS" if wall < target else "FAIL")
    images_per_s = cfg.epochs * len(tr.y) / wall
    print(
        f"\nengine, {cfg.epochs} epochs end to end: {_hms(wall)} ({wall:.1f} s, median of "
        f"{len(walls)}), {images_per_s:.0f} training images/s including the evaluations"
    )
    if verdict:
        print(f"target < {target:g} s for {PROJECTED_EPOCHS} epochs on an H100: {verdict}")
    done = [s for run in epochs for s in run]
    write_report(
        args.json,
        report_header,
        finished=True,
        runs_finished=len(walls),
        epoch_seconds=epochs,
        median_epoch_s=float(np.median(done)),
        projected_run_s=float(np.median(done)) * cfg.epochs,
        full_run_seconds=walls,
        median_seconds=wall,
        images_per_s=images_per_s,
        test_bac=[r.metrics["bac"] for r in results],
        kept_epoch=[r.best_epoch for r in results],
        target_s=target,
        verdict=verdict,
    )
    return 0


def write_report(path: str | None, header: dict, quiet: bool = False, **numbers) -> None:
    """With ``--json`` (``path``), write the run's ``header`` and ``numbers`` there, whole
    or not at all (a reader may look at any moment)."""
    if not path:
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump({**header, **numbers}, f, indent=2)
    os.replace(tmp, path)
    if not quiet:
        print(f"wrote {path}")


def run_usual_loop(cfg, tr, te, n_classes, norm, device, *, workers: int, compute: str) -> dict:
    out = train_usual_loop(
        cfg, tr, te, num_workers=workers, device=device, normalization=norm,
        n_classes=n_classes, compute=compute,
    )  # fmt: skip
    return _raw(out["train_seconds"], out["eval_seconds"], out["loss"], out["test_bac"])


def _raw(train_s, eval_s, losses, bacs) -> dict:
    return {"train_s": list(train_s), "eval_s": list(eval_s), "loss": losses, "bac": bacs}


def summarize(name: str, n_train: int, rounds: list[dict]) -> dict:
    """One side's row from its rounds: median seconds per epoch over every timed epoch."""
    train_s = [v for r in rounds for v in r["train_s"]]
    eval_s = [v for r in rounds for v in r["eval_s"]]
    losses = [float(v) for r in rounds for v in r["loss"]]
    bacs = rounds[-1]["bac"]
    train_mean, eval_mean = float(np.median(train_s)), float(np.median(eval_s))
    return {
        "name": name,
        "images_per_s": n_train / train_mean,
        "train_s_per_epoch": train_mean,
        "eval_s_per_epoch": eval_mean,
        "epoch_s": train_mean + eval_mean,
        "projected_200_epochs_s": PROJECTED_EPOCHS * (train_mean + eval_mean),
        "loss": [float(v) for v in losses],
        "test_bac": float(bacs[-1]),
        "test_bac_per_epoch": [float(v) for v in bacs],
        "train_seconds": [float(v) for v in train_s],
        "eval_seconds": [float(v) for v in eval_s],
    }


def machine(device: torch.device) -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _hms(seconds: float) -> str:
    h, rest = divmod(int(round(seconds)), 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


def main(argv=None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    tr, te, n_classes, desc = load_data(args)
    norm = channel_stats(tr.x)
    cfg = TrainConfig(
        arch=args.arch, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed
    )
    if args.workers == "auto":
        workers = [0, 2] if device.type == "cuda" or (os.cpu_count() or 1) > 2 else [0]
    else:
        workers = [int(w) for w in args.workers.split(",") if w.strip()]
    shape = "x".join(map(str, tr.x.shape[1:]))
    print(f"data: {desc}: {len(tr.y)} train / {len(te.y)} test images, {shape}")
    timing = (
        f"{args.rounds} whole run(s) of {cfg.epochs} epochs, engine alone"
        if args.full_run
        else f"{args.rounds} round(s) of {cfg.epochs} timed epoch(s) per side"
    )
    print(
        f"model: {cfg.arch}, batch {cfg.batch_size}, {timing}, "
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )

    # warm-up: kernels, allocator, thread pools (a couple of batches on each side)
    warm_cfg = replace(cfg, epochs=1)
    warm_tr = stratified_head(tr, 2 * cfg.batch_size, n_classes)
    warm_te = stratified_head(te, 256, n_classes)
    t0 = time.perf_counter()
    run_engine(warm_cfg, warm_tr, warm_te, n_classes, norm, device)
    if not args.full_run:
        for compute in ("engine", "plain"):
            run_usual_loop(
                warm_cfg, warm_tr, warm_te, n_classes, norm, device, workers=0, compute=compute
            )
    print(f"warm-up: {time.perf_counter() - t0:.1f} s")

    # what every JSON report starts with: the arguments, the data and the machine
    data = {"description": desc, "n_train": len(tr.y), "n_test": len(te.y)}
    data["shape"] = list(tr.x.shape[1:])
    info = machine(device)
    info["precision"] = precisions.training(device).name  # the engine's, and the usual loop's
    report_header = {"args": vars(args), "data": data, "machine": info}
    if args.full_run:
        return full_run(args, cfg, tr, te, n_classes, norm, device, report_header)

    # Sides take turns, round after round, so that load from other processes on a shared
    # machine falls on all of them alike; each row is the median over every timed epoch.
    sides = {
        f"usual loop (workers={w})": partial(run_usual_loop, workers=w, compute="engine")
        for w in workers
    }
    plain = f"usual loop, {PLAIN} (workers={max(workers)})"
    sides[plain] = partial(run_usual_loop, workers=max(workers), compute="plain")
    sides["engine"] = run_engine
    rounds: dict[str, list[dict]] = {name: [] for name in [*sides, COMPUTE_ONLY]}
    for k in range(args.rounds):
        for name, run in sides.items():
            rounds[name].append(run(cfg, tr, te, n_classes, norm, device))
            print(f"  round {k + 1}: {name} done", flush=True)
        rounds[COMPUTE_ONLY].append(run_compute_only(cfg, tr, n_classes, norm, device))
        numbers = ratios(rounds, len(tr.y), plain, device)
        write_report(
            args.json, report_header, quiet=True, finished=False, rounds_done=k + 1, **numbers
        )
    numbers = ratios(rounds, len(tr.y), plain, device)
    rows, engine, compute = numbers["sides"], numbers["sides"][-1], numbers["compute_only"]
    best_ref = next(r for r in rows if r["name"] == numbers["best_usual_loop"])
    plain_ref = next(r for r in rows if r["name"] == plain)

    print()
    header = f"{'':36s} {'images/s':>9s} {'train s/ep':>10s} {'eval s/ep':>9s} {'epoch s':>8s}"
    print(header + f" {'test BAC':>8s} {'200 ep':>8s}")
    for r in rows:
        print(
            f"{r['name']:36s} {r['images_per_s']:9.0f} {r['train_s_per_epoch']:10.2f} "
            f"{r['eval_s_per_epoch']:9.2f} {r['epoch_s']:8.2f} {r['test_bac']:8.3f} "
            f"{_hms(r['projected_200_epochs_s']):>8s}"
        )
    print(
        f"{compute['name']:36s} {compute['images_per_s']:9.0f} "
        f"{compute['train_s_per_epoch']:10.2f} {'-':>9s} {'-':>8s} {'-':>8s} {'-':>8s}"
    )
    ratio, target, verdict = numbers["ratio"], numbers["target"], numbers["verdict"]
    where = "H100" if device.type == "cuda" else f"{os.cpu_count()}-core CPU"
    print(
        f"\nratio = engine images/s / usual-loop images/s = {ratio:.2f} (vs {best_ref['name']}, "
        f"the same precision ({info['precision']}), memory format and autotuning: the data "
        f"path and the step loop alone; target >= {target:g} on a {where}: {verdict})"
    )
    print(
        f"ratio vs the {PLAIN} usual loop (NCHW, no autotuning; precision and memory format "
        f"counted too, not the target's ratio) = {numbers['ratio_plain_float32']:.2f}"
    )
    print(
        f"ceiling = compute-only images/s / usual-loop images/s = {numbers['ceiling']:.2f} (the "
        f"best any data pipeline could do with this model here); the engine reaches "
        f"{100 * numbers['engine_efficiency']:.0f} % of the compute-only speed"
    )
    print(f"whole-epoch speed-up (training + test evaluation): {numbers['epoch_ratio']:.2f}")
    print(
        f"projected {PROJECTED_EPOCHS}-epoch time on this data: engine "
        f"{_hms(engine['projected_200_epochs_s'])}, usual loop "
        f"{_hms(best_ref['projected_200_epochs_s'])}, {PLAIN} usual loop "
        f"{_hms(plain_ref['projected_200_epochs_s'])}"
    )

    write_report(args.json, report_header, finished=True, rounds_done=args.rounds, **numbers)
    return 0


def ratios(rounds: dict[str, list[dict]], n_train: int, plain: str, device) -> dict:
    """Every side's row and the ratios from the rounds timed so far: the engine against the
    best usual-loop row with the engine's compute settings (the target's ratio) and against the
    plain float32 one."""
    rows = [summarize(name, n_train, done) for name, done in rounds.items() if name != COMPUTE_ONLY]
    engine = rows[-1]
    matched = [r for r in rows[:-1] if r["name"] != plain]
    best_ref = max(matched, key=lambda r: r["images_per_s"])
    plain_ref = next(r for r in rows if r["name"] == plain)
    compute = summarize(COMPUTE_ONLY, n_train, rounds[COMPUTE_ONLY])
    ratio = engine["images_per_s"] / best_ref["images_per_s"]
    target = TARGETS.get(device.type, TARGETS["cpu"])
    return {
        "sides": rows,
        "best_usual_loop": best_ref["name"],
        "plain_float32_usual_loop": plain,
        "compute_only": compute,
        "ratio": ratio,
        "ratio_plain_float32": engine["images_per_s"] / plain_ref["images_per_s"],
        "ceiling": compute["images_per_s"] / best_ref["images_per_s"],
        "engine_efficiency": engine["images_per_s"] / compute["images_per_s"],
        "epoch_ratio": best_ref["epoch_s"] / engine["epoch_s"],
        "target": target,
        "verdict": "PASS" if ratio >= target else "FAIL",
    }


if __name__ == "__main__":
    sys.exit(main())
