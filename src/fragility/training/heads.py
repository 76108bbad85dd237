"""Linear heads fitted on fixed feature embeddings: RQ1's re-trained classifier and the
feature-space remedies' phase 3.

:func:`fit_linear_head` trains ``logits = fe @ W.T + bias`` with cross-entropy and SGD, every
random draw from a ``torch.Generator`` seeded by the caller, so the same inputs and seed give
the same head on the same device.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np
import torch

from fragility.errors import ConfigError
from fragility.training.engine import resolve_device
from fragility.training.gpus import SLOTS_ENV, holds_gpu


def head_device(device: str = "auto") -> torch.device:
    """The torch device a head is fitted on (a remedy's, RQ1's re-trained classifier). ``auto``
    is the CPU unless this process holds a GPU of its own
    (:func:`fragility.training.gpus.holds_gpu`): a remedy job claims none, so it
    never opens a CUDA context outside ``--resources gpu=N``, and its numbers do not depend
    on whether it ran on a workstation with a GPU or on a CPU node of a cluster. An explicit
    CUDA device is refused inside a workflow job that holds no GPU."""
    if str(device) == "auto":
        return resolve_device("auto") if holds_gpu() else resolve_device("cpu")
    resolved = resolve_device(device)
    if resolved.type == "cuda" and SLOTS_ENV in os.environ and not holds_gpu():
        raise ConfigError(
            f"remedy device {device!r}: remedy jobs hold no GPU (they run outside "
            f"--resources gpu=N and on CPU nodes of a cluster); use cpu or auto"
        )
    return resolved


def class_balanced_indices(y: np.ndarray, size: int, generator) -> np.ndarray:
    """``size`` instance indices drawn class-balanced: a class uniformly among the classes
    present in ``y``, then an instance uniformly within it (with replacement).
    ``generator`` is a seeded ``torch.Generator``; returns a torch int64 tensor."""
    y = np.asarray(y, dtype=np.int64)
    order = np.argsort(y, kind="stable")
    classes, starts, sizes = np.unique(y[order], return_index=True, return_counts=True)
    order_t = torch.as_tensor(order)
    starts_t, sizes_t = torch.as_tensor(starts), torch.as_tensor(sizes)
    cls = torch.randint(len(classes), (int(size),), generator=generator)
    offset = (torch.rand(int(size), generator=generator, dtype=torch.float64) * sizes_t[cls]).long()
    offset = torch.minimum(offset, sizes_t[cls] - 1)
    return order_t[starts_t[cls] + offset]


def _step_rates(lr: float, total: int, schedule: str) -> list[float]:
    """The learning rate of each of ``total`` steps: constant, or cosine-decayed from ``lr``
    to 0 over them (``CosineAnnealingLR(T_max=total)``'s closed form)."""
    if schedule == "constant":
        return [lr] * total
    return [lr * (1 + math.cos(math.pi * k / max(total, 1))) / 2 for k in range(total)]


def _initial_head(n_classes: int, width: int, init, gen):
    """``(W (C, H), b (C,))`` torch tensors: a copy of ``init``, else U(-1/sqrt(H), 1/sqrt(H))
    like ``nn.Linear``, drawn from ``gen``."""
    if init is None:
        bound = 1.0 / float(np.sqrt(width))
        weight = (torch.rand(n_classes, width, generator=gen) * 2 - 1) * bound
        bias = (torch.rand(n_classes, generator=gen) * 2 - 1) * bound
        return weight, bias
    weight = torch.tensor(np.asarray(init[0], dtype=np.float32))
    bias = torch.tensor(np.asarray(init[1], dtype=np.float32))
    if weight.shape != (n_classes, width) or bias.shape != (n_classes,):
        raise ValueError(f"init must be ((C, H), (C,)) = (({n_classes}, {width}), ...)")
    return weight, bias


def fit_linear_head(
    fe: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    epochs: int = 10,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 2e-4,
    batch_size: int = 128,
    seed: int = 0,
    sampler: str = "uniform",
    init: tuple[np.ndarray, np.ndarray] | None = None,
    schedule: str = "cosine",
    device: str = "cpu",
    on_epoch_end: Callable | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Train a linear head ``logits = fe @ W.T + bias`` with CE and SGD; ``(W, b)`` float32.

    ``sampler="uniform"`` shuffles the data every epoch (each instance once per epoch);
    ``"class_balanced"`` (cRT) draws each minibatch with :func:`class_balanced_indices`, the
    same number of steps per epoch (ceil(N / batch_size)). The learning rate follows a cosine
    decay over all steps (``schedule="cosine"``, as RQ1's re-training) or stays constant
    (``"constant"``). Initialisation: ``init=(W, b)`` copies, else U(-1/sqrt(H), 1/sqrt(H)) like
    ``nn.Linear`` from a ``torch.Generator`` seeded with ``seed``, which also drives the
    sampling: the same seed gives the same head (on the same device).

    ``on_epoch_end(epoch, weight, bias)``, if given, is called after each epoch (1-based) with
    the current ``(C, H)`` and ``(C,)`` torch tensors; it must not modify them.
    """
    if sampler not in ("uniform", "class_balanced"):
        raise ConfigError(f"sampler must be 'uniform' or 'class_balanced', got {sampler!r}")
    if schedule not in ("cosine", "constant"):
        raise ConfigError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    dev = head_device(device)
    gen = torch.Generator().manual_seed(int(seed))
    x = torch.tensor(np.asarray(fe, dtype=np.float32), device=dev)  # a copy: Arrow is read-only
    labels = np.asarray(y, dtype=np.int64)
    t = torch.as_tensor(labels, device=dev)
    n, width = x.shape
    weight, bias = (v.to(dev) for v in _initial_head(n_classes, width, init, gen))
    steps = (n + batch_size - 1) // batch_size
    rates = _step_rates(lr, epochs * steps, schedule)
    # Plain SGD with momentum and weight decay on the analytic CE gradient
    # ((softmax - onehot) / B): the same updates as autograd + torch.optim.SGD, ~3x faster
    # because each step is tiny (B x H x C) and the per-call overhead dominated.
    buf_w, buf_b = torch.zeros_like(weight), torch.zeros_like(bias)
    step = 0
    with torch.no_grad():
        for epoch in range(epochs):
            if sampler == "uniform":
                order = torch.randperm(n, generator=gen)
            else:
                order = class_balanced_indices(labels, steps * batch_size, gen)
            # one gather per epoch; the minibatches are then views, not per-step copies
            order = order.to(dev)
            x_epoch, targets = x[order], torch.nn.functional.one_hot(t[order], n_classes)
            for i in range(steps):
                xb = x_epoch[i * batch_size : (i + 1) * batch_size]
                grad = torch.softmax(torch.addmm(bias, xb, weight.T), dim=1)
                grad.sub_(targets[i * batch_size : (i + 1) * batch_size]).div_(len(xb))
                grad_w = torch.addmm(weight, grad.T, xb, beta=weight_decay)
                grad_b = grad.sum(0).add_(bias, alpha=weight_decay)
                if step == 0:
                    buf_w.copy_(grad_w)
                    buf_b.copy_(grad_b)
                else:
                    buf_w.mul_(momentum).add_(grad_w)
                    buf_b.mul_(momentum).add_(grad_b)
                weight.add_(buf_w, alpha=-rates[step])
                bias.add_(buf_b, alpha=-rates[step])
                step += 1
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, weight, bias)
    return (
        weight.detach().cpu().numpy().astype(np.float32),
        bias.detach().cpu().numpy().astype(np.float32),
    )
