"""The usual PyTorch training loop, kept as a yardstick for :mod:`fragility.training.engine`.

This is how public imbalanced-learning code trains (e.g. LDAM-DRW's ``cifar_train.py``): a
``Dataset`` hands out PIL images one at a time through per-sample torchvision transforms
(``RandomCrop(padding=p)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``), a
``DataLoader`` shuffles and collates them, and the model sees float32 NCHW batches.
Model, optimiser, LR schedule, loss and deferred re-weighting are those of the engine
(imported from it), so the two differ only in how the data reaches the model.

``compute="engine"`` gives the loop the engine's compute settings too: its precision policy
(:mod:`fragility.training.precision`: a bf16 trunk on Ampere-or-later GPUs, a float32 head),
channels-last tensors and cuDNN autotuning. A speed ratio against that loop measures the data
path and the step loop alone; against the default ``"plain"`` loop (float32, NCHW, no
autotuning) it also counts what the precision and the memory format buy.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import transforms

from fragility import metrics
from fragility.training import precision as precisions
from fragility.training.engine import (
    Subset,
    _cudnn_autotuned,
    _epoch_generator,
    _new_model,
    build_criterion,
    build_optimizer,
    channel_stats,
    eval_batch_size,
    resolve_device,
)
from fragility.training.losses import class_balanced_weights
from fragility.training.precision import Precision
from fragility.training.settings import TrainConfig, class_weights_active, learning_rate

BATCH_ORDERS = ("shuffle", "engine")
COMPUTE = ("plain", "engine")  # float32 NCHW as usual, or the engine's compute settings


class ImageDataset(Dataset):
    """``(N, H, W, C)`` uint8 images and labels, served as ``(transform(PIL image), label)``."""

    def __init__(self, x_uint8: np.ndarray, y: np.ndarray, transform):
        self.x, self.y, self.transform = x_uint8, np.asarray(y, dtype=np.int64), transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        img = self.x[i]
        img = Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)
        return self.transform(img), int(self.y[i])


class EngineOrderSampler(Sampler):
    """The engine's batch order: the permutation drawn from the ``(seed, epoch)`` generator."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        gen = _epoch_generator(self.seed, self.epoch)
        return iter(torch.randperm(self.n, generator=gen).tolist())


def usual_transforms(
    size: tuple[int, int], mean, std, *, augment: bool, padding: int = 4, flip: bool = True
):
    """The per-sample pipeline of the usual code for ``size`` images (crop/flip if augmenting)."""
    steps = []
    if augment:
        steps.append(transforms.RandomCrop(size, padding=padding))
        if flip:
            steps.append(transforms.RandomHorizontalFlip())
    steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    return transforms.Compose(steps)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _check_supported(cfg: TrainConfig, batch_order: str, compute: str = "plain") -> None:
    """Refuse what the usual loop does not implement, rather than ignore it."""
    if batch_order not in BATCH_ORDERS:
        raise ValueError(f"batch_order must be one of {BATCH_ORDERS}, got {batch_order!r}")
    if compute not in COMPUTE:
        raise ValueError(f"compute must be one of {COMPUTE}, got {compute!r}")
    if cfg.oversample:
        raise ValueError("the usual loop has no pixel-space over-sampling (oversample: true)")
    if cfg.mfw:
        raise ValueError("the usual loop has no Major Feature Weakening (mfw)")


def _usual_loaders(
    cfg, train_set, test_set, normalization, augment, num_workers, device, eval_batch, order
):
    """The usual DataLoaders (per-image transforms, workers) and the engine-order sampler
    (None with ``order="shuffle"``)."""
    mean, std = normalization
    size = train_set.x.shape[1:3]
    train_tf = usual_transforms(
        size, mean, std, augment=augment, padding=cfg.crop_padding, flip=cfg.flip
    )
    test_tf = usual_transforms(size, mean, std, augment=False)
    loader_args = dict(num_workers=num_workers, pin_memory=device.type == "cuda")
    sampler = EngineOrderSampler(len(train_set.y), cfg.seed) if order == "engine" else None
    train_loader = DataLoader(
        ImageDataset(train_set.x, train_set.y, train_tf),
        batch_size=cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        **loader_args,
    )
    test_loader = DataLoader(
        ImageDataset(test_set.x, test_set.y, test_tf), batch_size=eval_batch, **loader_args
    )
    return train_loader, test_loader, sampler


class _Compute:
    """How the usual loop computes: ``precision`` None is plain float32 (``model(x)``,
    NCHW); else the trunk in its dtype and the head in float32, channels-last tensors and
    cuDNN autotuning, as the engine does."""

    def __init__(self, precision: Precision | None):
        self.precision = precision
        self.channels_last = precision is not None

    def steps(self, device) -> contextlib.AbstractContextManager:
        """Around an epoch's steps: the engine's cuDNN autotuning, or nothing."""
        return _cudnn_autotuned(device) if self.precision else contextlib.nullcontext()

    def batch(self, xb: torch.Tensor, device) -> torch.Tensor:
        xb = xb.to(device, non_blocking=True)
        return xb.contiguous(memory_format=torch.channels_last) if self.channels_last else xb

    def logits(self, model, xb: torch.Tensor) -> torch.Tensor:
        if self.precision is None:
            return model(xb)
        with self.precision.trunk_context():
            fe = model.features(xb)
        with self.precision.head_context():
            return model.classifier(fe.float())


def _usual_test_bac(model, test_loader, labels, n_classes: int, device, compute) -> float:
    model.eval()
    preds = []
    with torch.no_grad():
        for xb, _ in test_loader:
            preds.append(compute.logits(model, compute.batch(xb, device)).argmax(1).cpu())
    return metrics.balanced_accuracy(labels, torch.cat(preds).numpy(), n_classes)


def _usual_epoch(model, loader, criterion, optimizer, weight, how: _Compute, device):
    """One epoch of the usual steps over ``loader``; the summed loss (a float: ``item()``
    every step, as the usual code does)."""
    model.train()
    loss_sum = 0.0
    with how.steps(device):
        for xb, yb in loader:
            xb, yb = how.batch(xb, device), yb.to(device, non_blocking=True)
            loss = criterion(how.logits(model, xb), yb, weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(yb)
    return loss_sum


def train_usual_loop(
    cfg: TrainConfig,
    train_set: Subset,
    test_set: Subset,
    *,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    epochs: int | None = None,
    augment: bool | None = None,
    initial_state: dict | None = None,
    normalization: tuple[list[float], list[float]] | None = None,
    n_classes: int | None = None,
    batch_order: str = "shuffle",
    compute: str = "plain",
    precision: str | Precision = "auto",
) -> dict:
    """Train ``cfg``'s model the usual way for ``epochs`` (default ``cfg.epochs``) epochs.

    ``augment`` defaults to ``cfg.augment``; the weights start from ``initial_state`` or,
    like the engine's, from ``cfg.seed``. ``batch_order="engine"`` replaces the DataLoader's
    shuffle with the engine's per-epoch permutation (for equivalence tests). The test set is
    evaluated after every epoch, as LDAM-DRW does. ``compute="engine"`` trains with the
    engine's ``precision`` (:func:`fragility.training.precision.training`), channels-last tensors and
    cuDNN autotuning instead of plain float32. Returns per-epoch ``loss``, ``test_bac``,
    ``train_seconds``, ``eval_seconds`` and ``seconds_per_epoch`` (their sum) lists, the
    training throughput ``images_per_s`` and the final ``state_dict`` (on the CPU).
    """
    _check_supported(cfg, batch_order, compute)
    device = resolve_device(device)
    how = _Compute(precisions.training(device, precision) if compute == "engine" else None)
    epochs = cfg.epochs if epochs is None else epochs
    augment = cfg.augment if augment is None else augment
    n_classes = n_classes or int(max(train_set.y.max(), test_set.y.max())) + 1
    counts = np.bincount(train_set.y, minlength=n_classes)
    eval_batch = cfg.eval_batch_size or eval_batch_size(device, train_set.x.shape[1:3])

    train_loader, test_loader, sampler = _usual_loaders(
        cfg, train_set, test_set, normalization or channel_stats(train_set.x), augment,
        num_workers, device, eval_batch, batch_order,
    )  # fmt: skip

    model = _new_model(cfg, n_classes, train_set.x.shape[-1])
    if initial_state is not None:
        model.load_state_dict(initial_state)
    model = model.to(device)
    if how.channels_last:
        model = model.to(memory_format=torch.channels_last)
    criterion = build_criterion(cfg, counts).to(device)
    cb_weights = class_balanced_weights(counts, cfg.cb_beta).to(device)
    optimizer = build_optimizer(cfg, model)

    out = {k: [] for k in ("loss", "test_bac", "train_seconds", "eval_seconds")}
    # shuffling and the transforms draw from the global RNG: seed it, without leaking state
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        for epoch in range(epochs):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, epoch)
            weight = cb_weights if class_weights_active(cfg, epoch) else None
            if sampler is not None:
                sampler.set_epoch(epoch)
            _sync(device)
            t0 = time.perf_counter()
            loss_sum = _usual_epoch(model, train_loader, criterion, optimizer, weight, how, device)
            t1 = time.perf_counter()
            bac = _usual_test_bac(model, test_loader, test_set.y, n_classes, device, how)
            t2 = time.perf_counter()
            out["loss"].append(loss_sum / len(train_set.y))
            out["test_bac"].append(bac)
            out["train_seconds"].append(t1 - t0)
            out["eval_seconds"].append(t2 - t1)

    out["seconds_per_epoch"] = [a + b for a, b in zip(out["train_seconds"], out["eval_seconds"])]
    out["images_per_s"] = len(train_set.y) * epochs / max(sum(out["train_seconds"]), 1e-12)
    out["state_dict"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    out.update(n_train=len(train_set.y), num_workers=num_workers, device=str(device))
    out.update(compute=compute, precision=how.precision.name if how.precision else "float32")
    return out
