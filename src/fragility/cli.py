"""``python -m fragility``: the pipeline's stages without Snakemake.

Examples::

    python -m fragility prepare-data fashion_mnist data/fashion_mnist.npz
    python -m fragility split data/fashion_mnist.npz split.parquet --imbalance exp100 --n-max 1000
    python -m fragility train data/fashion_mnist.npz split.parquet out/ --loss ldam --epochs 20
    python -m fragility extract data/fashion_mnist.npz split.parquet out/model.pt out/embeddings
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import FragilityError
from .settings import LOSSES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fragility", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("prepare-data", help="convert a raw dataset into the canonical .npz")
    d.add_argument("dataset", help="loader name, e.g. fashion_mnist, cifar10, image_folder")
    d.add_argument("out", type=Path)
    d.add_argument("--root", default=None, help="where the raw files are")
    d.add_argument("--download", action="store_true", help="let torchvision download them")

    s = sub.add_parser("split", help="draw an imbalanced split")
    s.add_argument("data", type=Path)
    s.add_argument("out", type=Path)
    s.add_argument("--imbalance", required=True, help="balanced, exp<R> or step<R>")
    s.add_argument("--n-max", type=int, required=True)
    s.add_argument("--n-val", type=int, default=0)
    s.add_argument("--n-test", type=int, default=None)
    s.add_argument("--seed", type=int, default=0)

    t = sub.add_parser("train", help="train one model into OUT_DIR")
    t.add_argument("data", type=Path)
    t.add_argument("split", type=Path)
    t.add_argument("out_dir", type=Path)
    t.add_argument("--arch", default="resnet32")
    t.add_argument("--loss", default="ce", choices=LOSSES)
    t.add_argument("--drw", action="store_true")
    t.add_argument("--epochs", type=int, default=200)
    t.add_argument("--select", default="test_bac", choices=["test_bac", "val_bac", "last"])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-flip", action="store_true")
    t.add_argument("--device", default="auto")

    e = sub.add_parser("extract", help="write the Parquet embeddings of a trained model")
    e.add_argument("data", type=Path)
    e.add_argument("split", type=Path)
    e.add_argument("model", type=Path)
    e.add_argument("out_dir", type=Path)
    e.add_argument("--device", default="auto")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from . import stages

    try:
        if args.command == "prepare-data":
            stages.prepare_data(
                args.dataset, {"root": args.root, "download": args.download}, args.out
            )
        elif args.command == "split":
            stages.split_dataset(
                args.data, args.out, imbalance=args.imbalance, seed=args.seed,
                n_max=args.n_max, n_val=args.n_val, n_test=args.n_test,
            )  # fmt: skip
        elif args.command == "train":
            settings = {"arch": args.arch, "loss": args.loss, "drw": args.drw, "epochs": args.epochs,
                        "select": args.select, "seed": args.seed, "flip": not args.no_flip}  # fmt: skip
            stages.train_run(
                args.data, args.split,
                model_path=args.out_dir / "model.pt", history_path=args.out_dir / "history.parquet",
                metrics_path=args.out_dir / "metrics.json", settings=settings,
                run_info={"run": str(args.out_dir), "seed": args.seed}, device=args.device,
                resume_path=args.out_dir / ".resume.pt",
            )  # fmt: skip
        elif args.command == "extract":
            stages.extract_run(args.data, args.split, args.model, args.out_dir, device=args.device)
    except FragilityError as error:
        print(f"fragility: error: {error}", file=sys.stderr)
        return 1
    return 0
