"""Trainings that share a CPU with other jobs: OpenMP's wait policy, and one 2-thread
training against two 1-thread trainings side by side.

PyTorch's CPU kernels run on libgomp, whose threads spin (busy-wait) between parallel
regions by default. A workflow runs analysis jobs beside its trainings (``--cores 4`` on two
cores runs a 2-thread training and single-thread jobs together), and a spinning training
then fights them for the cores. ``rules/common.smk`` sets ``OMP_WAIT_POLICY=PASSIVE`` for
every job unless the environment says otherwise; this bench shows why: it times training
epochs of resnet8 on exp100-sized 28 x 28 data (2,478 images, as the default study's exp100
runs), alone and beside one busy single-thread process, under each policy, each case in a
fresh process (the policy is read when the OpenMP runtime starts), and prints every case's
seconds per epoch and its ratio against the default policy in the same situation.

On a machine without a GPU the workflow trains with one torch thread a job and runs several
side by side (``rules/common.smk``: ``CPU_ONLY``); the second table shows why: the throughput
(training epochs a second, all jobs together) of one 2-thread training against two 1-thread
trainings at once, both with ``OMP_WAIT_POLICY=PASSIVE``, and the ratio.

    python bench/cpu_sharing.py            # 3 timed epochs a case, after one warm-up epoch
    python bench/cpu_sharing.py --epochs 5
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

POLICIES = {"spin (default)": {}, "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"}}
COUNTS = (1000, 599, 359, 215, 129, 77, 46, 27, 16, 10)  # exp100 of n_max 1,000


def time_epochs(epochs: int, threads: int = 2) -> float:
    """Seconds per training epoch (after one warm-up epoch), in this process."""
    import numpy as np
    import torch

    from fragility.training.engine import Subset, setup, train_epoch
    from fragility.training.settings import TrainConfig

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), COUNTS)
    x = rng.integers(0, 256, size=(len(y), 28, 28, 1), dtype=np.uint8)
    data = Subset(x, y)
    cfg = TrainConfig(arch="resnet8", epochs=40, augment=False, seed=0)
    engine = setup(cfg, data, data, n_classes=10, device="cpu")
    train_epoch(engine, 0)
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        train_epoch(engine, epoch)
    return (time.perf_counter() - start) / epochs


def busy(seconds: float) -> None:
    """One single-thread process doing matrix products, as an analysis job does."""
    import numpy as np

    a = np.random.default_rng(0).random((400, 400))
    end = time.time() + seconds
    while time.time() < end:
        a @ a


def _timing(env: dict, epochs: int, threads: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, "--time", str(epochs), "--threads", str(threads)],
        env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def _seconds(proc: subprocess.Popen) -> float:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"a timing process failed ({proc.returncode})")
    return float(out.strip().splitlines()[-1])


def side_by_side(epochs: int) -> dict[str, float]:
    """Epochs a second, all trainings together: one with 2 threads, two with 1 thread each."""
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    one = _seconds(_timing(env, epochs, 2))
    pair = [_timing(env, epochs, 1) for _ in range(2)]
    seconds = [_seconds(p) for p in pair]
    return {"one 2-thread training": 1 / one, "two 1-thread trainings": sum(1 / t for t in seconds)}


def _case(policy: dict, beside_busy: bool, epochs: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | policy
    load = None
    if beside_busy:
        load = subprocess.Popen(
            [sys.executable, __file__, "--busy"], env=dict(env, OPENBLAS_NUM_THREADS="1")
        )
        time.sleep(1.0)
    try:
        return _seconds(_timing(env, epochs, 2))
    finally:
        if load is not None:
            load.kill()
            load.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--time", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--busy", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.busy:
        busy(600)
        return
    if args.time:
        print(time_epochs(args.time, args.threads))
        return
    print(f"resnet8, 2,478 images of 28 x 28, 2 torch threads, {os.cpu_count()} CPUs")
    for situation, beside in (("alone", False), ("beside 1 busy process", True)):
        times = {name: _case(policy, beside, args.epochs) for name, policy in POLICIES.items()}
        reference = times["spin (default)"]
        for name, seconds in times.items():
            print(f"{situation:22s} {name:15s} {seconds:6.2f} s/epoch  "
                  f"ratio {seconds / reference:5.2f}")  # fmt: skip
    rates = side_by_side(args.epochs)
    reference = rates["one 2-thread training"]
    for name, rate in rates.items():
        print(f"{name:38s} {rate:5.2f} epochs/s  ratio {rate / reference:5.2f}")


if __name__ == "__main__":
    main()
