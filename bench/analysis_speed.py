"""Analysis speed: the whole per-run analysis (RQ1-RQ7 tables, RQ1 re-training, figures).

Requirement: the analysis of one run (all RQs, ~10k x 64 embeddings) takes under 5 seconds.

The benchmark writes a synthetic but realistic run directory into a temporary folder (or
reads a real one, ``--run-dir``) and times, in one process, the parts of its analysis:

* ``load``      -- ``fragility.analysis.inputs.RunInputs.load`` (train, test, pool and
  classifier embeddings, history.parquet, metrics.json);
* ``rq2``..``rq7`` -- one ``rq_tables(rq, inputs)`` call each;
* ``write``     -- every table of rq2..rq7 written as CSV and as Parquet (``write_table``);
* ``rq1``       -- ``fragility.analysis.rq1.retrained_bac`` on the pool FE, evaluated on the
  test FE (its default settings: 30 epochs of minibatch SGD, batch 128, on the CPU);
* ``figures``   -- every figure of ``fragility.catalog.outputs.RUN_FIGURES`` (``plot_figure``);
* ``bootstrap`` -- ``fragility.analysis.bootstrap.run_bootstrap``: the run's headline numbers
  and every claim difference with B = 1000 stratified replicates, against a balanced partner
  as the workflow's imbalanced runs have one (a synthetic balanced run with the majority's
  count in every class), checked on its own against its target (5 s; see its constant).

The requirement is checked on ``load + rq2..rq7 + write + rq1`` (the tables and RQ1); the
figures are reported separately and in a second total. The whole analysis runs once first
(``cold``: the first calls in the process, with lazy imports and caches; reported, not in
the verdict), then ``--repeats`` times; the verdict uses the median of the per-repeat totals.
The one-off imports (``fragility.analysis.tables``, ``fragility.plotting``, ``torch``), which
a fresh analysis process also pays, are timed and printed but are not in any total.

CPU thread pools matter on a small shared machine: by default torch (RQ1) and OpenBLAS
(numpy matmuls) use one thread per core and slow down many times over when other jobs hold
the cores; ``--threads 1`` caps both, as the workflow's ``threads: 1`` analysis jobs should.

The synthetic run: C classes (default 10) with an ``--imbalance`` (default exp100) class
distribution scaled to ``--n-train`` training instances, a balanced test set (``--n-test``)
and a balanced pool (``--n-pool``); 64-d non-negative (post-ReLU-like) FE: sparse
gamma-distributed activations, each class with its own strongly active features; a linear
classifier (or a normed/cosine one, ``--normed``) whose weights follow the class means, set
into a real ``ResNetCifar`` head so that ``classifier_table`` and the model's own forward
pass give ``W``, ``bias`` and the logits (pred = argmax logits, as ``write_embeddings``
writes them). Test FE carry a weaker class signal than train FE, so train accuracy is high
and test accuracy lower, minority classes the worst (defaults: train BAC 0.99, test BAC
0.75). ``history.parquet`` (``--epochs`` rows) has the columns and ``metrics.json`` the keys
the analysis reads, shaped as ``fragility.workflow.stages.training.train_run`` writes them.

    python bench/analysis_speed.py                         # 10,000 x 64, 3 repeats
    python bench/analysis_speed.py --n-train 12406 --n-pool 50000   # CIFAR-10 exp100 sizes
    python bench/analysis_speed.py --threads 1             # torch + BLAS single-threaded
    python bench/analysis_speed.py --profile 25            # + cProfile of one pass

The ratio (total / 5 s) is printed with PASS/FAIL; the exit code is 0 either way.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

TARGET_S = 5.0  # tables + RQ1 of one run
# One run's intervals: 18 claims, three of them against a balanced partner (here one of 40k
# images, as a CIFAR-10-sized study's) and seven size-matched over 32 seeded draws. The old
# 1 s target was set for 13 claims with no partner and no size matching; 5 s is the budget
# of the run's tables, and still seconds against a training's minutes or hours.
BOOTSTRAP_TARGET_S = 5.0
RQS = ("rq2", "rq3", "rq4", "rq5", "rq6", "rq7")
CORE_PARTS = ("load", *RQS, "write", "rq1")
ALL_PARTS = (*CORE_PARTS, "figures", "bootstrap")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-train", type=int, default=10_000, help="training instances (train FE)")
    p.add_argument("--n-test", type=int, default=3_000, help="test instances (balanced)")
    p.add_argument("--n-pool", type=int, default=10_000, help="pool instances for RQ1 (balanced)")
    p.add_argument("--n-classes", type=int, default=10)
    p.add_argument("--imbalance", default="exp100", help="training class distribution")
    p.add_argument("--epochs", type=int, default=200, help="rows of history.parquet")
    p.add_argument("--normed", action="store_true", help="a normed (cosine, LDAM) classifier")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="cap torch (torch.set_num_threads) and the BLAS/OpenMP pools (threadpoolctl) at "
        "this many threads for the whole analysis (0: the libraries' defaults; the workflow's "
        "analysis rules declare threads: 1)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--run-dir",
        help="analyse this existing run directory instead of a synthetic one "
        "(it needs embeddings/{train,test,pool,classifier}.parquet)",
    )
    p.add_argument("--keep", help="write the synthetic run (and the outputs) here and keep them")
    p.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="also profile one extra pass with cProfile and print the top N entries "
        "(by own time and by cumulative time)",
    )
    p.add_argument("--json", help="write the numbers to this file")
    return p.parse_args(argv)


# -- the synthetic run ------------------------------------------------------------------------


def train_counts(imbalance: str, n_train: int, n_classes: int) -> list[int]:
    """Per-class training counts with the shape of ``imbalance``, summing to ``n_train``."""
    from fragility.data.splits import class_counts

    shape = np.asarray(class_counts(imbalance, 1_000_000, n_classes), dtype=np.float64)
    counts = np.maximum(1, np.floor(n_train * shape / shape.sum())).astype(np.int64)
    counts[0] += n_train - int(counts.sum())  # the rounding remainder goes to the majority
    return counts.tolist()


def synthetic_fe(
    rng: np.random.Generator,
    labels: np.ndarray,
    own: np.ndarray,
    strength: np.ndarray,
    p_own: np.ndarray,
) -> np.ndarray:
    """Sparse non-negative FE (N, H): background features fire with p 0.3 (gamma, small);
    the class's own features (``own`` (C, H) bool) fire with ``p_own[c]`` and a larger scale
    ``strength[c]``; one instance in ten also borrows own features of a random class."""
    n, (n_classes, width) = len(labels), own.shape
    fe = rng.gamma(1.5, 0.25, (n, width)) * (rng.random((n, width)) < 0.3)
    fires = own[labels] & (rng.random((n, width)) < p_own[labels][:, None])
    fe += fires * rng.gamma(2.0, 1.0, (n, width)) * strength[labels][:, None]
    other = rng.integers(0, n_classes, n)
    borrow = (rng.random(n) < 0.1)[:, None] & own[other] & (rng.random((n, width)) < 0.5)
    fe += borrow * rng.gamma(2.0, 0.5, (n, width))
    return fe.astype(np.float32)


def build_run(run_dir: Path, args) -> dict:
    """Write a synthetic run directory; returns a description of what was written."""
    import pyarrow as pa
    import torch

    from fragility.embeddings.extraction import classifier_table
    from fragility.embeddings.files import embeddings_table
    from fragility.io import write_json, write_parquet
    from fragility.training.models import build_model

    rng = np.random.default_rng(args.seed)
    n_classes, width = args.n_classes, 64
    counts = train_counts(args.imbalance, args.n_train, n_classes)
    y_train = np.repeat(np.arange(n_classes), counts)
    y_test = np.repeat(np.arange(n_classes), -(-args.n_test // n_classes))[: args.n_test]
    y_pool = np.repeat(np.arange(n_classes), -(-args.n_pool // n_classes))[: args.n_pool]

    # each class: 6 strongly active own features (classes share some), largest activations
    # for the rarest classes (the paper's minority classes rest on fewer, larger features)
    own = np.zeros((n_classes, width), dtype=bool)
    for c in range(n_classes):
        own[c, rng.choice(width, 6, replace=False)] = True
    rel = np.asarray(counts, dtype=np.float64) / max(counts)
    strength = 1.0 + 0.3 * (1.0 - rel)  # 1.0 (majority) .. ~1.3 (minority)
    fe_train = synthetic_fe(rng, y_train, own, strength, np.full(n_classes, 0.85))
    # test: the class signal generalises worse, the more so the rarer the class
    test_strength, test_p = strength * (0.45 + 0.5 * rel), 0.35 + 0.45 * rel
    fe_test = synthetic_fe(rng, y_test, own, test_strength, test_p)
    # pool (balanced, RQ1): as in extract_run it holds the training instances of each class,
    # the rest are unseen images (test-like FE)
    fe_pool = synthetic_fe(rng, y_pool, own, test_strength, test_p)
    for c in range(n_classes):
        rows, seen = np.flatnonzero(y_pool == c), fe_train[y_train == c]
        fe_pool[rows[: len(seen)]] = seen[: len(rows)]

    # classifier head of a real model, weights from the class means (a trained head's shape)
    model = build_model("resnet32", n_classes, 3, normed_classifier=args.normed).eval()
    means = np.stack([fe_train[y_train == c].mean(axis=0) for c in range(n_classes)])
    W = (means - means.mean(axis=0)) * 1.5 + rng.normal(0.0, 0.05, (n_classes, width))
    with torch.no_grad():
        model.classifier.weight.copy_(torch.as_tensor(W, dtype=torch.float32))
        if not args.normed:
            prior = np.log(np.asarray(counts, dtype=np.float64) / max(counts))
            model.classifier.bias.copy_(torch.as_tensor(0.5 * prior, dtype=torch.float32))

    def logits_of(fe: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model.classifier(torch.from_numpy(fe)).numpy()

    run_keys = {
        "dataset": "synthetic",
        "imbalance": args.imbalance,
        "loss": "ldam" if args.normed else "ce",
        "seed": args.seed,
        "run": f"synthetic/{args.imbalance}/{'ldam' if args.normed else 'ce'}/seed{args.seed}",
    }
    kept = int(args.epochs * 0.9) or 1
    meta = dict(run_keys, epoch=kept, arch="resnet32", config_hash="bench000000000000")
    emb_meta = dict(meta, normed=str(model.normed).lower())  # as write_embeddings adds it
    emb = run_dir / "embeddings"
    out = {}
    subsets = {"train": (fe_train, y_train), "test": (fe_test, y_test), "pool": (fe_pool, y_pool)}
    for name, (fe, y) in subsets.items():
        logits = logits_of(fe)
        table = embeddings_table(np.arange(len(y)), y, fe, logits)
        write_parquet(table, emb / f"{name}.parquet", emb_meta)
        pred = logits.argmax(axis=1)
        recall = np.array([np.mean(pred[y == c] == c) for c in range(n_classes)])
        out[name] = {
            "n": len(y),
            "accuracy": float(np.mean(pred == y)),
            "bac": float(recall.mean()),
        }
        out[name]["per_class_accuracy"] = recall.tolist()
    write_parquet(classifier_table(model), emb / "classifier.parquet", emb_meta)

    # history.parquet: the rows fragility.training.engine.train logs (train/test per-class accuracy)
    acc_tr = np.asarray(out["train"]["per_class_accuracy"])
    acc_te = np.asarray(out["test"]["per_class_accuracy"])
    rows, elapsed = [], 0.0
    for e in range(1, args.epochs + 1):
        t = min(1.0, e / kept)
        noise = rng.normal(0, 0.02, (2, n_classes))
        tr = np.clip(acc_tr * t**0.5 + noise[0], 0, 1)
        te = np.clip(acc_te * t**0.5 + noise[1], 0, 1)
        elapsed += 20.0 + rng.random()
        rows.append({
            "epoch": e, "lr": 0.1, "loss": float(2.3 * (1 - t) + 0.05), "drw": False,
            "train_bac": float(tr.mean()), "train_acc": tr.tolist(),
            "test_bac": float(te.mean()), "test_acc": te.tolist(), "seconds": elapsed,
        })  # fmt: skip
    write_parquet(pa.Table.from_pylist(rows), run_dir / "history.parquet", meta)
    metrics = {
        "accuracy": out["test"]["accuracy"],
        "bac": out["test"]["bac"],
        "classes": [f"class{c}" for c in range(n_classes)],
        "config_hash": meta["config_hash"],
        "device": "cpu",
        "epochs": args.epochs,
        "kept_epoch": kept,
        "per_class_accuracy": out["test"]["per_class_accuracy"],
        "run": run_keys,
        "select": "test_bac",
        "train_class_counts": counts,
        "train_config": {"arch": "resnet32", "epochs": args.epochs, "loss": run_keys["loss"]},
        "wall_seconds": elapsed,
    }
    write_json(metrics, run_dir / "metrics.json")
    active = float(np.mean(fe_train > 0))
    return {
        "counts": counts,
        "train_acc": out["train"]["accuracy"],
        "train_bac": out["train"]["bac"],
        "test_acc": out["test"]["accuracy"],
        "test_bac": out["test"]["bac"],
        "pool_acc": out["pool"]["accuracy"],
        "fe_active": active,
        "fe_mean": float(fe_train.mean()),
        "fe_max": float(fe_train.max()),
        "normed": bool(model.normed),
        "bytes": sum(f.stat().st_size for f in run_dir.rglob("*") if f.is_file()),
    }


def check_run(inputs) -> float:
    """Largest relative error of ``fe' @ W.T + bias`` against the stored logits."""
    from fragility.embeddings.files import head_logits

    tr = inputs.train
    rebuilt = head_logits(tr["fe"], inputs.W, inputs.bias, inputs.normed)
    scale = np.maximum(1.0, np.abs(tr["logits"]))
    return float(np.max(np.abs(rebuilt - tr["logits"]) / scale))


# -- one pass of the analysis -----------------------------------------------------------------


def analyse(run_dir: Path, out_dir: Path) -> tuple[dict[str, float], dict]:
    """One full analysis of ``run_dir``; seconds per part, and facts about the output."""
    from fragility.analysis.inputs import RunInputs
    from fragility.analysis.rq1 import retrained_bac
    from fragility.analysis.tables import rq_tables
    from fragility.catalog.outputs import RUN_FIGURES
    from fragility.io import write_table
    from fragility.plotting.run_figures import plot_figure

    times: dict[str, float] = {}

    def timed(part: str, fn: Callable):
        t0 = time.perf_counter()
        result = fn()
        times[part] = times.get(part, 0.0) + time.perf_counter() - t0
        return result

    inputs = timed("load", lambda: RunInputs.load(run_dir))
    tables = {rq: timed(rq, lambda rq=rq: rq_tables(rq, inputs)) for rq in RQS}

    def write_all():
        for rq, named in tables.items():
            for name, table in named.items():
                write_table(table, out_dir / rq / f"{name}.csv")
                write_table(table, out_dir / rq / f"{name}.parquet")

    timed("write", write_all)
    if inputs.pool is None:
        raise SystemExit(f"{run_dir} has no embeddings/pool.parquet: RQ1 cannot be timed")
    bac = timed(
        "rq1",
        lambda: retrained_bac(
            inputs.pool["fe"],
            inputs.pool["label"],
            inputs.test["fe"],
            inputs.test["label"],
            inputs.n_classes,
        ),
    )

    per_figure: dict[str, float] = {}

    def draw_all():
        for name, spec in RUN_FIGURES.items():
            t0 = time.perf_counter()
            plot_figure(name, tables[spec.rq], out_dir / "figures" / f"{name}.png")
            per_figure[name] = time.perf_counter() - t0

    timed("figures", draw_all)
    partner = run_dir.parent / "partner"
    partner_inputs = RunInputs.load(partner) if (partner / "embeddings").is_dir() else None
    timed("bootstrap", lambda: bootstrap_intervals(inputs, partner_inputs))
    facts = {
        "n_tables": sum(len(t) for t in tables.values()),
        "table_rows": sum(t.num_rows for named in tables.values() for t in named.values()),
        "n_figures": len(RUN_FIGURES),
        "retrained_bac": float(bac),
        "per_figure": per_figure,
        "inputs": inputs,
    }
    return times, facts


def bootstrap_intervals(inputs, partner=None):
    """The run's bootstrap table as the workflow's ``bootstrap_run`` computes it (the model's
    own test predictions stand in for RQ1's re-trained ones and for Table 1's balanced model:
    the same amount of work), against ``partner``'s embeddings when given."""
    from fragility.analysis.bootstrap import run_bootstrap

    balanced = dict(inputs.test)
    return run_bootstrap(
        inputs,
        seed=0,
        retrained_pred=inputs.test["pred"],
        balanced_test=balanced,
        balanced_name="synthetic",
        partner=partner,
        partner_name="synthetic balanced run",
        partner_missing="no synthetic partner",
    )


def profile_pass(run_dir: Path, out_dir: Path, top: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    analyse(run_dir, out_dir)
    prof.disable()
    text = io.StringIO()
    for key in ("tottime", "cumulative"):
        text.write(f"\n--- cProfile, one pass, top {top} by {key} ---\n")
        stats = pstats.Stats(prof, stream=text).strip_dirs().sort_stats(key)
        stats.print_stats(top)
    return text.getvalue()


# -- report -----------------------------------------------------------------------------------


def machine() -> dict:
    import torch

    try:
        from threadpoolctl import threadpool_info

        pools = [f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info()]
    except ImportError:
        pools = []
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "thread_pools": ", ".join(pools) or "n/a",
    }


def _load() -> str:
    try:
        return "/".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv=None) -> int:
    args = parse_args(argv)
    # what a fresh analysis process pays once before any of the parts below (not in the total)
    import_s = {}
    for module in ("fragility.analysis.tables", "fragility.plotting", "torch"):
        t0 = time.perf_counter()
        importlib.import_module(module)
        import_s[module] = time.perf_counter() - t0
    limits = None
    if args.threads:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        limits = threadpool_limits(args.threads)
    load_before = _load()
    info = machine()
    print(
        f"machine: {info['processor']}, {info['cpu_count']} cores, Python {info['python']}, "
        f"torch {info['torch']} ({info['torch_threads']} threads; pools: {info['thread_pools']}), "
        f"CUDA {'yes' if info['cuda'] else 'no'}; load average (1/5/15 min) {load_before}"
    )
    with tempfile.TemporaryDirectory(prefix="analysis_speed_") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        data: dict = {}
        if args.run_dir:
            run_dir = Path(args.run_dir)
            print(f"run: {run_dir}")
        else:
            run_dir = base / "run"
            t0 = time.perf_counter()
            data = build_run(run_dir, args)
            # the balanced partner of the claims that compare with one: every class at the
            # majority's count, as a study's balanced run of the same dataset
            n_classes = args.n_classes
            balanced = argparse.Namespace(**{**vars(args), "imbalance": "balanced",
                                             "n_train": n_classes * data["counts"][0],
                                             "n_pool": n_classes * 10})  # fmt: skip
            build_run(base / "partner", balanced)
            print(
                f"synthetic run ({time.perf_counter() - t0:.1f} s to build, "
                f"{data['bytes'] / 2**20:.1f} MiB): {args.n_classes} classes, {args.imbalance} "
                f"{data['counts'][0]}..{data['counts'][-1]}, {args.n_train} train / "
                f"{args.n_test} test / {args.n_pool} pool x 64 FE "
                f"({100 * data['fe_active']:.0f} % non-zero, mean {data['fe_mean']:.2f}, "
                f"max {data['fe_max']:.1f}), {'normed' if data['normed'] else 'linear'} "
                f"classifier, {args.epochs} history epochs"
            )
            print(
                f"  train acc {data['train_acc']:.3f} (BAC {data['train_bac']:.3f}), "
                f"test acc {data['test_acc']:.3f} (BAC {data['test_bac']:.3f}), "
                f"pool acc {data['pool_acc']:.3f}"
            )

        runs: list[dict[str, float]] = []
        fig_runs: list[dict[str, float]] = []
        facts: dict = {}
        n_passes = 1 + max(1, args.repeats)
        for i in range(n_passes):
            times, facts = analyse(run_dir, base / f"out{i}")
            runs.append(times)
            fig_runs.append(facts["per_figure"])
            label = "cold" if i == 0 else f"repeat {i}"
            print(
                f"  {label}: {sum(times[p] for p in CORE_PARTS):.2f} s tables+RQ1, "
                f"{times['figures']:.2f} s figures",
                flush=True,
            )
        inputs = facts.pop("inputs")
        rel_err = check_run(inputs)
        profile = profile_pass(run_dir, base / "profile", args.profile) if args.profile else ""
    load_after = _load()
    if limits is not None:
        limits.restore_original_limits()

    cold, timed_runs = runs[0], runs[1:]
    med = {p: statistics.median(r[p] for r in timed_runs) for p in ALL_PARTS}
    best = {p: min(r[p] for r in timed_runs) for p in ALL_PARTS}
    core_totals = [sum(r[p] for p in CORE_PARTS) for r in timed_runs]
    all_totals = [sum(r[p] for p in ALL_PARTS) for r in timed_runs]
    total = statistics.median(core_totals)
    total_all = statistics.median(all_totals)

    print(
        f"\n{facts['n_tables']} tables ({facts['table_rows']} rows) as CSV + Parquet, "
        f"{facts['n_figures']} figures; RQ1 retrained test BAC {facts['retrained_bac']:.3f}; "
        f"logits rebuilt to {rel_err:.1e} (relative)"
    )
    print(
        "imports, once per process (not in the totals): "
        + ", ".join(f"{k} {v:.2f} s" for k, v in import_s.items())
        + "\n"
    )
    print(f"{'part':28s} {'cold s':>7s} {'median s':>9s} {'min s':>7s} {'share':>6s}")
    names = {
        "load": "load (RunInputs.load)",
        "write": "write tables (CSV+Parquet)",
        "rq1": "rq1 (retrained_bac, pool)",
        "figures": "figures (plot_figure, all)",
        "bootstrap": "bootstrap (B=1000, claims)",
    }
    for p in ALL_PARTS:
        if p == "figures":
            print(
                f"{'= tables + RQ1':28s} {sum(cold[q] for q in CORE_PARTS):7.2f} "
                f"{total:9.2f} {min(core_totals):7.2f} {'100%':>6s}"
            )
        share = f"{100 * med[p] / total:.0f}%" if p in CORE_PARTS else ""
        print(f"{names.get(p, p + ' (rq_tables)'):28s} {cold[p]:7.2f} {med[p]:9.2f} "
              f"{best[p]:7.2f} {share:>6s}")  # fmt: skip
    print(
        f"{'= total, figures, bootstrap':28s} {sum(cold.values()):7.2f} {total_all:9.2f} "
        f"{min(all_totals):7.2f}"
    )
    fig_med = {name: statistics.median(f[name] for f in fig_runs[1:]) for name in fig_runs[0]}
    print(
        "figures, median s each: "
        + ", ".join(f"{k} {v:.2f}" for k, v in sorted(fig_med.items(), key=lambda kv: -kv[1]))
    )
    ratio = total / TARGET_S
    verdict = "PASS" if total < TARGET_S else "FAIL"
    print(
        f"\nmedian of {len(timed_runs)} repeat(s); load average before {load_before}, "
        f"after {load_after}"
    )
    print(
        f"ratio = tables+RQ1 s / {TARGET_S:g} s = {total:.2f} / {TARGET_S:g} = {ratio:.2f} "
        f"(target < 1: {verdict}); with figures {total_all:.2f} s "
        f"(ratio {total_all / TARGET_S:.2f}); cold first pass "
        f"{sum(cold[p] for p in CORE_PARTS):.2f} s / {sum(cold.values()):.2f} s"
    )
    boot_ratio = med["bootstrap"] / BOOTSTRAP_TARGET_S
    boot_verdict = "PASS" if med["bootstrap"] < BOOTSTRAP_TARGET_S else "FAIL"
    print(
        f"ratio = bootstrap s / {BOOTSTRAP_TARGET_S:g} s = {med['bootstrap']:.2f} / "
        f"{BOOTSTRAP_TARGET_S:g} = {boot_ratio:.2f} (target < 1: {boot_verdict})"
    )
    if profile:
        print(profile)

    if args.json:
        report = {
            "args": vars(args),
            "data": data,
            "machine": machine(),
            "load_average": {"before": load_before, "after": load_after},
            "import_s": import_s,
            "cold": cold,
            "repeats": timed_runs,
            "median": med,
            "figure_median": fig_med,
            "total_tables_rq1_s": total,
            "total_with_figures_s": total_all,
            "target_s": TARGET_S,
            "ratio": ratio,
            "verdict": verdict,
            "bootstrap_ratio": boot_ratio,
            "bootstrap_verdict": boot_verdict,
            "facts": facts,
            "logit_rel_err": rel_err,
        }
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
