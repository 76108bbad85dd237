"""The lecture's training-progress diagnostic: per-class FE-gradient norms."""

import copy
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

import fragility.training.engine as training
from fragility.analysis.crossrun import cross_run_table
from fragility.analysis.dynamics import dynamics_table
from fragility.analysis.runs import RunFiles
from fragility.plotting.cross_run import plot_cross_run
from fragility.plotting.run_figures import plot_figure
from fragility.training.engine import train
from fragility.training.losses import build_loss, class_balanced_weights
from fragility.training.models import build_model
from fragility.training.settings import TrainConfig

COUNTS = np.array([9, 5, 2])


def _batch(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0] * 9 + [1] * 5 + [2] * 2)
    x = torch.randn(len(labels), 1, 8, 8, generator=gen)
    return x, labels


def _reference_terms(name: str, logits, target, weight, criterion):
    """Each instance's own (weighted) loss term, written out independently of the engine."""
    w = torch.ones(logits.shape[1]) if weight is None else weight
    if name == "ce":
        return w[target] * F.cross_entropy(logits, target, reduction="none")
    if name == "focal":
        p = torch.softmax(logits, 1).gather(1, target[:, None]).squeeze(1)
        return (1 - p) * w[target] * -torch.log(p)  # gamma = 1
    cosine = logits / criterion.scale  # ldam: margin on the target cosine, then scale
    shifted = cosine - F.one_hot(target, 3) * criterion.margins[target, None]
    return w[target] * F.cross_entropy(criterion.scale * shifted, target, reduction="none")


@pytest.mark.parametrize("name", ["ce", "focal", "ldam"])
@pytest.mark.parametrize("drw", [False, True])
def test_fe_gradient_norm_per_class_equals_autograd(name, drw):
    x, labels = _batch()
    model = build_model("resnet8", 3, 1, normed_classifier=name == "ldam").train()
    reference_model = copy.deepcopy(model)
    criterion = build_loss(name, COUNTS)
    weight = class_balanced_weights(COUNTS, 0.9999) if drw else None
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    fe_grad = torch.zeros(3)
    idx = torch.arange(len(labels))
    training._train_steps(
        model, optimizer, criterion, weight, lambda v: v, [(x, idx)], labels, 3, fe_grad=fe_grad
    )
    # autograd on each instance's own term, with FE as a leaf
    fe = reference_model.features(x).detach().requires_grad_()
    logits = reference_model.classifier(fe)
    _reference_terms(name, logits, labels, weight, criterion).sum().backward()
    norms = fe.grad.norm(dim=1)
    expected = torch.stack([norms[labels == c].sum() for c in range(3)])
    torch.testing.assert_close(fe_grad, expected, rtol=1e-5, atol=1e-7)
    if name == "ce":  # the lecture's closed form for the linear head: ‖Wᵀ(p − e_y)‖ (· w_y)
        W = reference_model.classifier.weight.detach()
        p = torch.softmax(logits.detach(), 1)
        w = torch.ones(3) if weight is None else weight
        closed = (w[labels, None] * (p - F.one_hot(labels, 3)) @ W).norm(dim=1)
        torch.testing.assert_close(norms, closed, rtol=1e-5, atol=1e-7)


def test_fe_gradient_accumulation_leaves_the_weights_alone():
    x, labels = _batch(1)
    model = build_model("resnet8", 3, 1).train()
    twin = copy.deepcopy(model)
    criterion = build_loss("ce", COUNTS)
    idx = torch.arange(len(labels))
    for m, fe_grad in ((model, torch.zeros(3)), (twin, None)):
        opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)
        training._train_steps(
            m, opt, criterion, None, lambda v: v, [(x, idx)] * 3, labels, 3, fe_grad=fe_grad
        )
    for (k, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), k


def test_history_records_the_fe_gradient_norm_per_class(digit_subsets):
    tr, te = digit_subsets
    cfg = TrainConfig(arch="resnet8", epochs=2, batch_size=16, crop_padding=1, flip=False)
    history = train(cfg, tr, te, progress=False, device="cpu").history
    for row in history:
        assert len(row["fe_grad_norm"]) == 3
        assert all(np.isfinite(v) and v > 0 for v in row["fe_grad_norm"])


# -- the table and figures of the diagnostic -----------------------------------------------


def _history(epochs: int, grad: bool, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": e, "loss": 1.0 / e, "train_acc": rng.uniform(0, 1, 3).tolist()}
        row["test_acc"] = rng.uniform(0, 1, 3).tolist()
        if grad:
            row["fe_grad_norm"] = rng.uniform(0.1, 5, 3).tolist()
        rows.append(row)
    return pa.Table.from_pylist(rows)


def _class_columns(classes):
    roles = np.array(["majority", "other", "minority"])
    return {
        "class": pa.array(classes, pa.int64()),
        "class_name": pa.array([f"c{c}" for c in classes]),
        "role": pa.array(roles[classes].tolist()),
        "n_train": pa.array(np.array([100, 30, 10])[classes], pa.int64()),
    }


@pytest.mark.parametrize("grad", [True, False])
def test_dynamics_table_and_figure_cope_with_histories_without_gradients(grad, tmp_path):
    table = dynamics_table(_history(4, grad), 3, _class_columns, kept_epoch=3)
    assert table.num_rows == 12
    assert table.column("fe_grad_norm").null_count == (0 if grad else 12)
    assert table.column("kept").to_pylist() == [False] * 6 + [True] * 3 + [False] * 3
    out = tmp_path / "training_dynamics.png"
    plot_figure("training_dynamics", {"training_dynamics": table}, out, "a run")
    assert out.stat().st_size > 1000
    empty = dynamics_table(None, 3, _class_columns, kept_epoch=None)
    assert empty.num_rows == 0
    plot_figure("training_dynamics", {"training_dynamics": empty}, tmp_path / "empty.png")


def test_the_cross_run_training_dynamics_average_seeds_per_role(tmp_path):
    runs = []
    for loss in ("ce", "mfw"):
        for seed in (0, 1):
            run_dir = tmp_path / loss / f"seed{seed}"
            (run_dir / "rq2").mkdir(parents=True)
            table = dynamics_table(_history(3, loss == "mfw", seed), 3, _class_columns, 2)
            pq.write_table(table, run_dir / "rq2" / "training_dynamics.parquet")
            runs.append(RunFiles.in_folder("digits", "exp10", loss, seed, run_dir))
    summary, by_seed = cross_run_table("training_dynamics", runs)
    assert by_seed.num_rows == 4 * 3 * 3  # runs x epochs x (majority, minority, mean)
    assert summary.num_rows == 2 * 3 * 3 and set(summary["n_seeds"].to_pylist()) == {2}
    ce = [r for r in by_seed.to_pylist() if r["loss"] == "ce" and r["seed"] == 0]
    mean_row = next(r for r in ce if r["epoch"] == 1 and r["role"] == "mean")
    first = _history(3, False, 0).to_pylist()[0]
    assert mean_row["train_acc"] == pytest.approx(np.mean(first["train_acc"]))
    assert mean_row["fe_grad_norm"] is None  # not recorded in that history
    out = Path(tmp_path / "cross.png")
    plot_cross_run("training_dynamics", summary, out)
    assert out.stat().st_size > 1000
