"""Device-resident, batched training (after airbench) with the paper's SGD regime.

The uint8 images live on the device once; each epoch draws a permutation and augments
whole batches (random crop from a once-padded tensor, a flip by ``torch.where``). Every
random draw comes from a generator seeded by ``(seed, epoch)``, so a resumed run repeats
exactly what an uninterrupted one would have done. An epoch's draws cross to the device in
one copy and its steps read nothing back, so on a GPU the host never waits mid-epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fragility import metrics
from fragility.errors import ConfigError, FragilityError, TrainingDiverged
from fragility.io import atomic_path
from fragility.training import precision as precisions
from fragility.training.checkpoints import UnsafeCheckpoint, check_finite, load_checkpoint, plain
from fragility.training.losses import build_loss, class_balanced_weights
from fragility.training.mfw import FeatureWeakening, draw_partners, mfw_generator
from fragility.training.models import ResNetCifar, build_model
from fragility.training.precision import Precision
from fragility.training.settings import (
    TrainConfig,
    class_weights_active,
    drw_active,
    learning_rate,
    selectable,
)

# -- data on the device ------------------------------------------------------------------------


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: the first CUDA device when torch sees one, else the CPU. A CUDA device
    without an index is index 0 (a workflow job sees only its own GPU), so that records
    say ``cuda:0``."""
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    return torch.device("cuda", 0) if device.type == "cuda" and device.index is None else device


# Evaluation batches on a GPU are sized from its total memory, not from what is free now, so
# a batch size (and with it every float result) depends only on the device and the images.
# A generous bound of evaluation's activation memory per input pixel: a few float32 feature
# maps of 64-256 channels at the input's resolution (torchvision models; a CIFAR ResNet
# needs a fifth of it).
EVAL_BYTES_PER_PIXEL = 1024
# the share of the GPU's memory one evaluation may plan for: the weights, cuDNN's workspace
# and other jobs packed on the same GPU (--resources gpu=2N) need the rest
EVAL_MEMORY_SHARE = 0.25
CPU_EVAL_BATCH = 256  # cache-friendly on a CPU
MIN_EVAL_BATCH, MAX_EVAL_BATCH = 16, 4096


def eval_batch_size(device: torch.device, image_hw: tuple[int, int]) -> int:
    """Images per evaluation batch on ``device`` for ``(H, W)`` images: 256 on a CPU; on a
    GPU the largest power of two whose activations fit in a quarter of its total memory
    (between 16 and 4096)."""
    if device.type != "cuda":
        return CPU_EVAL_BATCH
    total = torch.cuda.get_device_properties(device).total_memory
    fits = EVAL_MEMORY_SHARE * total / (EVAL_BYTES_PER_PIXEL * image_hw[0] * image_hw[1])
    batch = 2 ** int(math.floor(math.log2(max(fits, 1.0))))
    return int(min(MAX_EVAL_BATCH, max(MIN_EVAL_BATCH, batch)))


def channel_stats(x_uint8: np.ndarray, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in [0, 1] units of ``(N, H, W, C)`` uint8 images (chunked)."""
    total = np.zeros(x_uint8.shape[-1])
    total_sq = np.zeros(x_uint8.shape[-1])
    for start in range(0, len(x_uint8), chunk):
        part = x_uint8[start : start + chunk].reshape(-1, x_uint8.shape[-1]).astype(np.float64)
        total += part.sum(axis=0)
        total_sq += (part**2).sum(axis=0)
    n = x_uint8.size / x_uint8.shape[-1]
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean**2, 1e-12))
    return (mean / 255).tolist(), (std / 255).tolist()


def to_device_images(x_uint8: np.ndarray, device: torch.device) -> torch.Tensor:
    """``(N, H, W, C)`` uint8 numpy → ``(N, C, H, W)`` uint8 on ``device``."""
    return torch.tensor(x_uint8).permute(0, 3, 1, 2).contiguous().to(device)


class Normalizer:
    """uint8 → normalised float in channels-last layout."""

    def __init__(self, mean, std, device: torch.device):
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1) * 255

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last makes convolutions faster on both oneDNN (CPU) and cuDNN
        out = (x.float() - self.mean) / self.std
        return out.contiguous(memory_format=torch.channels_last)


def draw_augmentation(n: int, crop: int, flip: bool, generator: torch.Generator):
    """Crop offsets ``dy, dx`` (uniform on ``0..2·crop``) and flip flags (p = 1/2, or
    ``None`` without ``flip``) for ``n`` images, drawn on the CPU from ``generator``."""
    dy = torch.randint(0, 2 * crop + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * crop + 1, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5 if flip else None
    return dy, dx, flips


def crop_and_flip(
    padded: torch.Tensor, crop: int, dy: torch.Tensor, dx: torch.Tensor, flips=None
) -> torch.Tensor:
    """Crop each once-padded image ``(B, C, H+2p, W+2p)`` at its own offset ``(dy, dx)`` to
    ``(H, W)`` and mirror those with ``flips`` set; all arguments on the images' device."""
    b, c, hp, wp = padded.shape
    h, w = hp - 2 * crop, wp - 2 * crop
    dev = padded.device
    rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]
    out = padded[
        torch.arange(b, device=dev)[:, None, None, None],
        torch.arange(c, device=dev)[None, :, None, None],
        rows,
        cols,
    ]
    if flips is not None:
        out = torch.where(flips[:, None, None, None], out.flip(3), out)
    return out


@torch.no_grad()
def predict(
    model: ResNetCifar,
    images: torch.Tensor,
    normalize: Normalizer,
    batch_size: int = 256,
    with_features: bool = False,
    precision: Precision | None = None,
):
    """Logits ``(N, C)`` (and FE ``(N, H)``) of uint8 device images ``(N, C, H, W)`` in eval
    mode, returned in float32. ``precision``: the trunk's (default: float32 throughout, as
    for the kept checkpoint and extraction); the head computes in float32 in every case."""
    model.eval()
    precision = precision or precisions.exact(images.device)
    logits, feats = [], []
    for start in range(0, len(images), batch_size):
        with precision.trunk_context():
            x = normalize(images[start : start + batch_size])
            fe = model.features(x).float()
        with precision.head_context():
            out = model.classifier(fe)
        logits.append(out.float())  # the same tensor when the head ran in float32
        feats.append(fe)
    empty = torch.empty(0, device=images.device)
    lg = torch.cat(logits) if logits else empty
    return (lg, torch.cat(feats) if feats else empty) if with_features else lg


@contextlib.contextmanager
def _cudnn_autotuned(device: torch.device):
    """On CUDA, let cuDNN time its convolution algorithms once per input shape (a handful per
    run) and keep the fastest, instead of picking by heuristics; CPU runs are unaffected."""
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = previous or device.type == "cuda"
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


# -- training ----------------------------------------------------------------------------------


@dataclass
class Subset:
    """Images ``(N, H, W, C)`` uint8 and labels ``(N,)`` of one split subset."""

    x: np.ndarray
    y: np.ndarray


@dataclass
class TrainResult:
    model: ResNetCifar
    best_epoch: int
    history: list[dict]
    metrics: dict
    normalization: tuple[list[float], list[float]]
    seconds: float
    extra: dict = field(default_factory=dict)


def _new_model(cfg: TrainConfig, n_classes: int, in_channels: int) -> ResNetCifar:
    # The seed is applied inside a forked RNG so no global state leaks out of the call.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return build_model(cfg.arch, n_classes, in_channels, normed_classifier=cfg.loss == "ldam")


def build_criterion(cfg: TrainConfig, counts: np.ndarray) -> torch.nn.Module:
    """``cfg``'s loss for a training subset with ``counts`` images per class."""
    return build_loss(
        cfg.loss,
        counts,
        gamma=cfg.focal_gamma,
        max_margin=cfg.ldam_max_margin,
        scale=cfg.ldam_scale,
        la_tau=cfg.la_tau,
        cdt_gamma=cfg.cdt_gamma,
    )


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.SGD:
    """The paper's SGD with momentum and weight decay; the learning rate is set per epoch."""
    return torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )


def _batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Minibatch (start, stop) pairs over ``n`` items; a last batch of one joins the one
    before it, because BatchNorm cannot normalise a single sample in training mode."""
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _epoch_order(labels: torch.Tensor, oversample: bool, generator: torch.Generator):
    """One epoch's order of training indices (CPU, int64), drawn from ``generator``.

    Without ``oversample``, a permutation of ``0..N-1``. With it (random over-sampling in
    pixel space), every image once plus, for each class with ``n_c < n_max``,
    ``n_max - n_c`` of its images drawn uniformly with replacement, all permuted: every
    class appears ``n_max`` times and the epoch has ``C · n_max`` items.
    """
    if not oversample:
        return torch.randperm(len(labels), generator=generator)
    counts = torch.bincount(labels)
    n_max = int(counts.max())
    parts = [torch.arange(len(labels))]
    for c, n in enumerate(counts.tolist()):
        if 0 < n < n_max:
            members = torch.nonzero(labels == c).flatten()
            parts.append(members[torch.randint(0, n, (n_max - n,), generator=generator)])
    pool = torch.cat(parts)
    return pool[torch.randperm(len(pool), generator=generator)]


def _epoch_draws(order, bounds, cfg: TrainConfig, generator) -> torch.Tensor:
    """``(4, N)`` int64 CPU tensor: the epoch's ``order`` and, per item, crop offsets dy, dx
    and a flip flag (zeros where unused). Drawn batch by batch, in the order that per-batch
    :func:`draw_augmentation` draws them, so the random stream does not depend on where the
    numbers are used."""
    out = torch.zeros(4, len(order), dtype=torch.int64)
    out[0] = order
    if cfg.augment:
        for start, stop in bounds:
            draws = draw_augmentation(stop - start, cfg.crop_padding, cfg.flip, generator)
            for row, values in enumerate(draws):
                if values is not None:
                    out[row + 1, start:stop] = values
    return out


def _epoch_batches(order, images, padded, cfg: TrainConfig, generator, mfw_gen=None):
    """Yield one epoch's minibatches ``(uint8 images, indices)`` on the images' device, and
    with ``mfw_gen`` each item's MFW partner (its position within the batch) as a third.

    The order, every batch's crop offsets and flips and the partners cross to the device in
    one copy: a copy per batch would make the host wait for the GPU at every step.
    """
    bounds = _batch_bounds(len(order), cfg.batch_size)
    draws = _epoch_draws(order, bounds, cfg, generator)
    if mfw_gen is not None:
        draws = torch.cat([draws, draw_partners(bounds, mfw_gen)[None]])
    order, dy, dx, flips, *partners = draws.to(images.device).unbind()
    for start, stop in bounds:
        idx = order[start:stop]
        extra = tuple(p[start:stop] for p in partners)
        if not cfg.augment:
            yield images[idx], idx, *extra
            continue
        flip = flips[start:stop].bool() if cfg.flip else None
        yield (
            crop_and_flip(padded[idx], cfg.crop_padding, dy[start:stop], dx[start:stop], flip),
            idx,
            *extra,
        )


def _train_steps(
    model,
    optimizer,
    criterion,
    weight,
    normalize,
    batches,
    labels,
    n_classes,
    *,
    fe_grad: torch.Tensor | None = None,
    mfw: FeatureWeakening | None = None,
    precision: Precision | None = None,
):
    """One epoch of SGD steps. Returns the summed loss and the per-class training hits as
    device tensors: nothing in here waits for the device, so on a GPU the host queues the
    next step while the current one runs.

    ``fe_grad (C,)``, when given, accumulates per class the norm of each instance's loss
    gradient with respect to the FE the classifier reads, ``‖∂(w_y ℓ_n)/∂fe_n‖`` (the loss's
    own weights, margins and scale included): read from the step's own backward pass, so
    the weights are those of a run without it. With ``mfw``, batches carry each item's
    partner and the features are weakened (:mod:`fragility.training.mfw`). ``precision``: the
    trunk's (default float32); the head always computes in float32, from FE cast to it.
    """
    device = labels.device
    precision = precision or precisions.exact(device)
    loss_sum = torch.zeros((), device=device)
    hits = torch.zeros(n_classes, device=device)
    with _cudnn_autotuned(device):
        for xb, idx, *partner in batches:
            target = labels[idx]
            with precision.trunk_context():
                x = normalize(xb)
                fe = model.features(x) if mfw is None else mfw.features(model, x, target, *partner)
            # float32 FE (the same tensor when the trunk ran in float32) into a float32 head
            fe = fe.float()
            with precision.head_context():
                logits = model.classifier(fe)
            if fe_grad is not None:
                fe.retain_grad()
            loss = criterion(logits, target, weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(idx)
            # index_add_, not bincount: CUDA's bincount reads its input's range back to the
            # host, a sync per step
            hits.index_add_(0, target, (logits.argmax(1) == target).float())
            if fe_grad is not None:
                # the batch loss is a (weighted) mean: undo its normaliser per instance
                scale = criterion.instance_scale(target, weight)
                fe_grad.index_add_(0, target, fe.grad.float().norm(dim=1) * scale)
    return loss_sum, hits


@dataclass
class Engine:
    """What one training run holds on the device between epochs (built by :func:`setup`)."""

    cfg: TrainConfig
    device: torch.device
    precision: Precision  # the training's (trunk dtype); evaluations of the kept one: float32
    n_classes: int
    counts: np.ndarray  # (C,) training images per class
    model: ResNetCifar
    criterion: torch.nn.Module
    optimizer: torch.optim.SGD
    cb_weights: torch.Tensor  # (C,) class-balanced weights (drw, reweight)
    mfw: FeatureWeakening | None
    normalize: Normalizer
    normalization: tuple[list[float], list[float]]
    x_train: torch.Tensor  # (N, C, H, W) uint8
    padded: torch.Tensor  # x_train zero-padded for crops (x_train without augmentation)
    y_cpu: torch.Tensor  # (N,) int64
    y_train: torch.Tensor  # (N,) int64 on the device
    evals: dict[str, Subset]  # "test" (and "val"): evaluated after every epoch
    eval_images: dict[str, torch.Tensor]
    eval_batch: int  # per-epoch evaluations
    final_batch: int  # the kept checkpoint's evaluation: the extraction's batch size
    test_images: torch.Tensor  # the whole test set: the kept checkpoint's metrics


def setup(
    cfg: TrainConfig,
    train_set: Subset,
    test_set: Subset,
    val_set: Subset | None = None,
    *,
    n_classes: int | None = None,
    normalization: tuple[list[float], list[float]] | None = None,
    device: str | torch.device = "auto",
    precision: str | Precision = "auto",
) -> Engine:
    """Check the data against ``cfg`` and put the model, its optimiser and the images on
    ``device``; ``precision`` is the config's setting (:mod:`fragility.training.precision`) or a
    :class:`~fragility.training.precision.Precision`."""
    device = resolve_device(device)
    if cfg.select == "val_bac" and (val_set is None or len(val_set.y) == 0):
        raise ConfigError("select: val_bac needs a validation set: set n_val > 0")
    n_classes = n_classes or int(max(train_set.y.max(), test_set.y.max())) + 1
    counts = np.bincount(train_set.y, minlength=n_classes)
    if np.any(counts == 0):
        raise ConfigError(
            f"the training subset has no images of classes {np.flatnonzero(counts == 0).tolist()}"
        )
    mean, std = normalization or channel_stats(train_set.x)
    model = _new_model(cfg, n_classes, train_set.x.shape[-1]).to(device)
    model = model.to(memory_format=torch.channels_last)
    x_train = to_device_images(train_set.x, device)
    y_cpu = torch.from_numpy(train_set.y.astype(np.int64))
    pad = cfg.crop_padding
    # the training subset's accuracy comes from the training passes themselves (augmented,
    # train mode), as in LDAM-DRW: a separate pass would cost as much again on a CPU
    evals = {"test": epoch_test_subset(test_set, cfg.epoch_test_per_class, cfg.seed)}
    if val_set is not None and len(val_set.y):
        evals["val"] = val_set
    eval_images = {k: to_device_images(s.x, device) for k, s in evals.items()}
    final_batch = eval_batch_size(device, train_set.x.shape[1:3])
    return Engine(
        cfg=cfg,
        device=device,
        precision=precisions.training(device, precision),
        n_classes=n_classes,
        counts=counts,
        model=model,
        criterion=build_criterion(cfg, counts).to(device),
        optimizer=build_optimizer(cfg, model),
        cb_weights=class_balanced_weights(counts, cfg.cb_beta).to(device),
        mfw=FeatureWeakening.build(cfg.mfw, counts, device) if cfg.mfw else None,
        normalize=Normalizer(mean, std, device),
        normalization=(mean, std),
        x_train=x_train,
        padded=torch.nn.functional.pad(x_train, (pad, pad, pad, pad)) if cfg.augment else x_train,
        y_cpu=y_cpu,
        y_train=y_cpu.to(device),
        evals=evals,
        eval_images=eval_images,
        eval_batch=cfg.eval_batch_size or final_batch,
        final_batch=final_batch,
        # one device copy when every test image is evaluated after every epoch anyway
        test_images=eval_images["test"]
        if evals["test"] is test_set
        else to_device_images(test_set.x, device),
    )


def epoch_test_subset(test_set: Subset, per_class: int | None, seed: int) -> Subset:
    """The test images evaluated after every epoch: at most ``per_class`` of each class, a
    draw seeded by the run's seed (in their order in the split), or all of them."""
    if per_class is None:
        return test_set
    rng = np.random.default_rng((seed, 7))
    keep = []
    for c in np.unique(test_set.y):
        members = np.flatnonzero(test_set.y == c)
        if len(members) > per_class:
            members = np.sort(rng.choice(members, size=per_class, replace=False))
        keep.append(members)
    idx = np.sort(np.concatenate(keep))
    return Subset(test_set.x[idx], test_set.y[idx])


def train_epoch(engine: Engine, epoch: int) -> dict:
    """One epoch (0-based) of SGD steps: the history row's lr, loss, schedule flags, samples,
    per-class train accuracy and FE-gradient norm. Raises :class:`TrainingDiverged` on a
    non-finite loss."""
    cfg, n_classes = engine.cfg, engine.n_classes
    lr = learning_rate(cfg, epoch)
    for group in engine.optimizer.param_groups:
        group["lr"] = lr
    weight = engine.cb_weights if class_weights_active(cfg, epoch) else None
    gen = _epoch_generator(cfg.seed, epoch)
    engine.model.train()
    order = _epoch_order(engine.y_cpu, cfg.oversample, gen)
    # times each class is seen this epoch (the counts, unless over-sampled)
    seen = torch.bincount(engine.y_cpu[order], minlength=n_classes).numpy()
    mfw_gen = mfw_generator(cfg.seed, epoch) if engine.mfw else None
    batches = _epoch_batches(order, engine.x_train, engine.padded, cfg, gen, mfw_gen)
    fe_grad = torch.zeros(n_classes, device=engine.device)
    loss_sum, hits = _train_steps(
        engine.model, engine.optimizer, engine.criterion, weight, engine.normalize, batches,
        engine.y_train, n_classes, fe_grad=fe_grad, mfw=engine.mfw, precision=engine.precision,
    )  # fmt: skip
    mean_loss = float(loss_sum) / len(order)
    if not math.isfinite(mean_loss):
        raise TrainingDiverged(
            f"the training loss became non-finite ({mean_loss}) at epoch {epoch + 1}"
        )
    row = {
        "epoch": epoch + 1,
        "lr": lr,
        "loss": mean_loss,
        "drw": drw_active(cfg, epoch),
        "class_weights": weight is not None,
        "samples": len(order),
    }
    # hits per class over the passes that saw it: repeated (over-sampled) images count
    # once per pass, so each entry stays a fraction in [0, 1]
    train_acc = (hits.cpu().numpy() / seen).tolist()
    row.update(train_bac=float(np.mean(train_acc)), train_acc=train_acc)
    # the lecture's training-progress diagnostic: mean FE-gradient norm per class
    row["fe_grad_norm"] = (fe_grad.cpu().numpy() / seen).tolist()
    return row


def evaluate(engine: Engine) -> dict:
    """``{subset}_bac`` and per-class ``{subset}_acc`` of the current weights on the test
    (and validation) images, computed in the training's precision."""
    out = {}
    for name, subset in engine.evals.items():
        logits = predict(
            engine.model, engine.eval_images[name], engine.normalize, engine.eval_batch,
            precision=engine.precision,
        )  # fmt: skip
        preds = logits.argmax(1).cpu().numpy()
        out[f"{name}_bac"] = metrics.balanced_accuracy(subset.y, preds, engine.n_classes)
        out[f"{name}_acc"] = metrics.per_class_accuracy(subset.y, preds, engine.n_classes).tolist()
    return out


def select_checkpoint(best: dict, engine: Engine, row: dict, epoch: int) -> dict:
    """``best`` (score, 1-based epoch, CPU state) updated with this epoch if its ``select``
    score is higher and the epoch may be kept (``select_from``)."""
    score = {"test_bac": row["test_bac"], "val_bac": row.get("val_bac"), "last": epoch}[
        engine.cfg.select
    ]
    if score <= best["score"] or not selectable(engine.cfg, epoch):
        return best
    state = {k: v.detach().cpu().clone() for k, v in engine.model.state_dict().items()}
    return {"score": score, "epoch": epoch + 1, "state": state}


def _resume(engine: Engine, state_file: Path | None):
    """``(history, best, elapsed, start epoch)`` from ``state_file`` when it holds this
    config's state (loaded into the model and optimiser), else a fresh start. A state file
    that a safe load cannot read (damaged, or written by an older version) is set aside
    with a warning: the training starts again from epoch 0."""
    fresh = ([], {"score": -math.inf, "epoch": -1, "state": None}, 0.0, 0)
    if not (state_file and state_file.exists()):
        return fresh
    initial = (
        {k: v.clone() for k, v in engine.model.state_dict().items()},
        engine.optimizer.state_dict(),
    )
    try:
        state = load_checkpoint(state_file)
        if state.get("config_hash") != engine.cfg.hash():
            return fresh
        engine.model.load_state_dict(state["model"])
        engine.optimizer.load_state_dict(state["optimizer"])
        resumed = state["history"], state["best"], float(state["elapsed"]), state["epoch"] + 1
    except (FragilityError, AttributeError, KeyError, TypeError, ValueError, RuntimeError) as error:
        reason = error if isinstance(error, FragilityError) else f"{type(error).__name__}: {error}"
        print(
            f"warning: cannot resume from {state_file} ({str(reason).splitlines()[0]}); "
            "training starts again from epoch 0",
            file=sys.stderr,
        )
        engine.model.load_state_dict(initial[0])
        engine.optimizer.load_state_dict(initial[1])
        return fresh
    print(f"resuming from epoch {state['epoch'] + 1} ({state_file})", file=sys.stderr)
    return resumed


def _save_state(engine: Engine, state_file: Path, epoch: int, history, best, elapsed) -> None:
    state = {
        "config_hash": engine.cfg.hash(),
        "epoch": epoch,
        "model": engine.model.state_dict(),
        "optimizer": engine.optimizer.state_dict(),
        "history": history,
        "best": best,
        "elapsed": elapsed,
    }
    with atomic_path(state_file) as tmp:
        torch.save(plain(state, str(state_file)), tmp)


def train(
    cfg: TrainConfig,
    train_set: Subset,
    test_set: Subset,
    val_set: Subset | None = None,
    *,
    n_classes: int | None = None,
    normalization: tuple[list[float], list[float]] | None = None,
    device: str | torch.device = "auto",
    precision: str | Precision = "auto",
    resume_path: str | Path | None = None,
    progress: bool = True,
    desc: str = "train",
    on_epoch: Callable[[dict], object] | None = None,
) -> TrainResult:
    """Train one model and keep the checkpoint chosen by ``cfg.select``.

    ``normalization`` is the per-channel (mean, std) in [0, 1] units (default: from the
    training subset). With ``resume_path``, a state file is written there after every epoch
    and a run with the same config picks up from it. ``precision``: the training's
    (:mod:`fragility.training.precision`); the kept checkpoint's metrics are computed in float32.
    ``on_epoch`` is called with each epoch's history row once it is complete. The pieces:
    :func:`setup`, then per epoch :func:`train_epoch`, :func:`evaluate` and
    :func:`select_checkpoint`.
    """
    engine = setup(
        cfg, train_set, test_set, val_set,
        n_classes=n_classes, normalization=normalization, device=device, precision=precision,
    )  # fmt: skip
    state_file = Path(resume_path) if resume_path else None
    history, best, elapsed, start_epoch = _resume(engine, state_file)
    bar = tqdm(
        range(start_epoch, cfg.epochs),
        initial=start_epoch,
        total=cfg.epochs,
        desc=desc,
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
        mininterval=1.0,
    )
    for epoch in bar:
        t0 = time.perf_counter()
        try:
            row = train_epoch(engine, epoch)
        except TrainingDiverged as error:
            kept = state_file and epoch > 0
            where = f"; the last good state (epoch {epoch}) is kept at {state_file}" if kept else ""
            raise TrainingDiverged(f"{error}{where}; lower lr or check the data") from None
        row.update(evaluate(engine))
        elapsed += time.perf_counter() - t0
        row["seconds"] = elapsed
        history.append(row)
        best = select_checkpoint(best, engine, row, epoch)
        bar.set_postfix(
            loss=f"{row['loss']:.3f}", test_bac=f"{row['test_bac']:.3f}", lr=f"{row['lr']:.3g}"
        )
        if state_file:
            _save_state(engine, state_file, epoch, history, best, elapsed)
        if on_epoch is not None:
            on_epoch(row)
    bar.close()

    engine.model.load_state_dict(best["state"])
    # float32 throughout and the extraction's batch size: the embeddings' `pred` of this
    # checkpoint then equals these predictions on the same device
    test_preds = predict(engine.model, engine.test_images, engine.normalize, engine.final_batch)
    summary = metrics.summary(test_set.y, test_preds.argmax(1).cpu().numpy(), engine.n_classes)
    summary.update(
        kept_epoch=best["epoch"],
        select=cfg.select,
        epochs=cfg.epochs,
        wall_seconds=elapsed,
        device=str(engine.device),
        precision=engine.precision.name,
        train_class_counts=engine.counts.tolist(),
    )
    model = engine.model.cpu()
    return TrainResult(model, best["epoch"], history, summary, engine.normalization, elapsed)


# -- checkpoints -------------------------------------------------------------------------------


def save_model(result: TrainResult, cfg: TrainConfig, path: str | Path, metadata: dict) -> None:
    """Weights plus everything needed to rebuild the model, written atomically; only what a
    safe load (:func:`fragility.training.checkpoints.load_checkpoint`) reads back."""
    model = result.model
    payload = {
        "state_dict": model.state_dict(),
        "arch": cfg.arch,
        "n_classes": model.classifier.weight.shape[0],
        "in_channels": model.conv1.in_channels,
        "normed": model.normed,
        "normalization": {"mean": result.normalization[0], "std": result.normalization[1]},
        "epoch": result.best_epoch,
        "train_config": dataclasses.asdict(cfg),
        "config_hash": cfg.hash(),
        "metadata": metadata,
    }
    with atomic_path(path) as tmp:
        torch.save(plain(payload, str(path)), tmp)


# what a model.pt holds (besides ``epoch``, ``train_config``, ``config_hash``, ``metadata``)
MODEL_KEYS = ("state_dict", "arch", "n_classes", "in_channels", "normed", "normalization")


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[ResNetCifar, dict]:
    """Rebuild a saved model (eval mode) and return it with its saved payload. The file is
    read safely: one written by an older version that holds more than a safe load reads is
    one error saying how to convert it; a damaged file, or NaN or infinite weights, one
    error naming the file."""
    try:
        payload = load_checkpoint(path)
    except UnsafeCheckpoint as error:
        raise FragilityError(
            f"{error}. If this model.pt is one you trained with an older fragility, convert "
            f"it once with `python -m fragility convert-model {path}` (a full load: only for "
            "a file you made), or delete it to train the run again"
        ) from None
    missing = [k for k in MODEL_KEYS if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise FragilityError(f"{path} is not a fragility model.pt: it lacks {', '.join(missing)}")
    model = build_model(
        payload["arch"], payload["n_classes"], payload["in_channels"], payload["normed"]
    )
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise FragilityError(
            f"{path}: its weights do not fit a {payload['arch']}: {first}"
        ) from None
    check_finite(payload["state_dict"], path)
    return model.to(resolve_device(device)).eval(), payload
