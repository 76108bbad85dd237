"""LDAM-DRW's on-disk formats, written by our own code: its CIFAR ResNet, its checkpoints and
CIFAR-10's python batches, so that the tests and the README's worked example can produce a
checkpoint "trained elsewhere" without downloading one. Its functions are commands, as the
package's stages are for ``python -m fragility``: ``python examples/ldam_drw.py --help``.

The module follows the structure LDAM-DRW documents in ``models/resnet_cifar.py``
(``ResNet_s``): ``conv1`` (3x3, 16), ``bn1``, ``layer1``-``layer3`` of option-A BasicBlocks
(16, 32, 64 planes), global average pooling and ``linear``, an ``nn.Linear`` or (``use_norm``,
its LDAM runs) a ``NormedLinear`` with weight ``(in, out)`` whose logits are cosines. Its
``cifar_train.py`` wraps the model in ``DataParallel`` and saves ``{"epoch", "arch",
"state_dict", "best_acc1", "optimizer"}`` with ``torch.save``; :func:`save_checkpoint` does
the same. Training here is a plain SGD loop: a stand-in for training elsewhere, not a
reproduction of LDAM-DRW's schedule.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from fragility.cli import main
from fragility.data.datasets import load_canonical, load_raw
from fragility.data.splits import ldam_drw_indices, ldam_drw_parameters
from fragility.embeddings.external import LDAM_DRW_NORMALIZATION, CosineHead
from fragility.training.losses import LDAMLoss
from fragility.training.models import FEATURE_DIM, BasicBlock
from fragility.training.settings import LDAM_DRW_ARCHS


class LdamResNet(nn.Module):
    """LDAM-DRW's ``ResNet_s``: ``resnet32`` is ``LdamResNet(5, n_classes, use_norm)``."""

    def __init__(self, blocks: int, n_classes: int = 10, use_norm: bool = False, in_channels=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_planes = 16
        for stage, (planes, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
            layer = []
            for i in range(blocks):
                layer.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            setattr(self, f"layer{stage}", nn.Sequential(*layer))
        if use_norm:  # LDAM-DRW's init: uniform(-1, 1), columns renormed to unit length
            weight = torch.empty(FEATURE_DIM, n_classes).uniform_(-1, 1)
            self.linear = CosineHead(weight.renorm_(2, 1, 1e-5).mul_(1e5))
        else:
            self.linear = nn.Linear(FEATURE_DIM, n_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


def save_checkpoint(
    model: LdamResNet,
    path: str | Path,
    *,
    arch: str = "resnet32",
    epoch: int = 1,
    best_acc1: float = 0.0,
    data_parallel: bool = True,
    optimizer: torch.optim.Optimizer | None = None,
) -> None:
    """Save ``model`` as LDAM-DRW's ``cifar_train.py`` does (``data_parallel``: through
    ``nn.DataParallel``, so every key starts with ``module.``)."""
    wrapped = nn.DataParallel(model) if data_parallel else model
    state = {
        "epoch": epoch,
        "arch": arch,
        "state_dict": wrapped.state_dict(),
        "best_acc1": torch.tensor(best_acc1),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def train(
    model: LdamResNet,
    x_uint8: np.ndarray,
    y: np.ndarray,
    normalization: dict,
    *,
    epochs: int,
    seed: int = 0,
    lr: float = 0.1,
    batch_size: int = 128,
) -> torch.optim.Optimizer:
    """A few epochs of SGD (cross-entropy; LDAM's margins and scale ``s = 30`` on a normed
    head) on uint8 images ``(N, H, W, C)`` with labels ``(N,)``; returns the optimiser."""
    torch.manual_seed(seed)
    mean = torch.tensor(normalization["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(normalization["std"]).view(1, -1, 1, 1)
    images = (torch.tensor(x_uint8).permute(0, 3, 1, 2).float() / 255 - mean) / std
    labels = torch.tensor(y, dtype=torch.int64)
    normed = isinstance(model.linear, CosineHead)
    counts = np.bincount(y, minlength=model.linear.weight.shape[1 if normed else 0])
    loss_fn = LDAMLoss(np.maximum(counts, 1)) if normed else nn.CrossEntropyLoss()
    scale = 30.0 if normed else 1.0
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=2e-4)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(labels)).split(batch_size):
            optimizer.zero_grad()
            loss = loss_fn(scale * model(images[batch]), labels[batch])
            loss.backward()
            optimizer.step()
    model.eval()
    return optimizer


def train_ldam_checkpoint(
    root: str | None,
    out_path: str,
    *,
    dataset: str = "cifar10",
    imbalance: str = "exp100",
    rand_number: int = 0,
    arch: str = "resnet32",
    use_norm: bool = True,
    epochs: int = 2,
    data_parallel: bool = True,
    normalization: dict | None = None,
) -> None:
    """Train LDAM-DRW's ``arch`` briefly on its ``IMBALANCECIFAR10/100`` subset of the raw
    files of ``dataset`` under ``root`` (CIFAR-10's python batches by default; ``imbalance``
    -> ``imb_type``, ``imb_factor``; ``rand_number`` its sampling seed) and save it as
    LDAM-DRW saves it, to ``out_path``. ``normalization``: mean and std per channel
    (default LDAM-DRW's CIFAR constants)."""
    data = load_raw(dataset, root=root)
    imb_type, imb_factor = ldam_drw_parameters(imbalance)
    rows = ldam_drw_indices(data.y_train, len(data.classes), imb_type, imb_factor, rand_number)
    model = LdamResNet(LDAM_DRW_ARCHS[arch], len(data.classes), use_norm, data.x_train.shape[3])
    norm = normalization or LDAM_DRW_NORMALIZATION
    optimizer = train(model, data.x_train[rows], data.y_train[rows], norm, epochs=epochs)
    save_checkpoint(
        model, out_path, arch=arch, epoch=epochs, data_parallel=data_parallel, optimizer=optimizer
    )


# -- CIFAR-10's python batches -------------------------------------------------------------------


def write_cifar10(
    folder: str | Path,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    classes: list[str],
) -> Path:
    """Write uint8 images ``(N, 32, 32, 3)`` as torchvision's ``cifar-10-batches-py``
    under ``folder``: ``data_batch_1`` ... ``data_batch_5`` (the training images in order),
    ``test_batch`` and ``batches.meta``, each a pickled dict with rows of 1024 red, 1024
    green and 1024 blue values."""
    out = Path(folder) / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)

    def dump(name: str, obj: dict) -> None:
        with open(out / name, "wb") as f:
            pickle.dump(obj, f, protocol=2)

    def batch(name: str, x: np.ndarray, y: np.ndarray) -> None:
        rows = np.ascontiguousarray(np.asarray(x, np.uint8).transpose(0, 3, 1, 2)).reshape(-1, 3072)
        labels = [int(v) for v in y]
        files = [f"{name}_{i}.png" for i in range(len(labels))]
        dump(name, {"batch_label": name, "labels": labels, "data": rows, "filenames": files})

    parts = np.array_split(np.arange(len(y_train)), 5)
    for i, part in enumerate(parts, start=1):
        batch(f"data_batch_{i}", x_train[part], y_train[part])
    batch("test_batch", x_test, y_test)
    dump("batches.meta", {"label_names": list(classes), "num_cases_per_batch": len(parts[0])})
    return out


def _as_cifar_images(x: np.ndarray, size: int = 32) -> np.ndarray:
    """uint8 ``(N, H, W, C)`` -> ``(N, size, size, 3)``: bilinear resize, grey copied to RGB."""
    out = np.empty((len(x), size, size, 3), dtype=np.uint8)
    for i, image in enumerate(x):
        img = Image.fromarray(image[..., 0] if image.shape[2] == 1 else image)
        out[i] = np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
    return out


def write_cifar_format(
    canonical_path: str, out_root: str, *, train_per_class: int, test_per_class: int
) -> None:
    """Write the first ``train_per_class`` / ``test_per_class`` images of every class of a
    canonical dataset (e.g. Fashion-MNIST), resized to 32x32 RGB, in CIFAR-10's python format
    under ``out_root`` (the ``cifar10`` loader's ``root``)."""
    data = load_canonical(canonical_path)

    def firsts(y: np.ndarray, n: int) -> np.ndarray:
        return np.sort(np.concatenate([np.flatnonzero(y == c)[:n] for c in np.unique(y)]))

    train, test = firsts(data.y_train, train_per_class), firsts(data.y_test, test_per_class)
    write_cifar10(
        out_root,
        _as_cifar_images(data.x_train[train]),
        data.y_train[train],
        _as_cifar_images(data.x_test[test]),
        data.y_test[test],
        data.classes,
    )


if __name__ == "__main__":  # the worked example's commands: python examples/ldam_drw.py --help
    sys.exit(main(modules=("__main__",), prog="examples/ldam_drw.py"))
