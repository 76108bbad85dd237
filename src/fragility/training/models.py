"""CIFAR-style ResNets (He et al. 2016, as used by LDAM-DRW) with an exposed feature extractor.

=========  =============  ========
name       blocks/stage   params*
=========  =============  ========
resnet8    [1, 1, 1]      ~0.08 M
resnet20   [3, 3, 3]      ~0.27 M
resnet32   [5, 5, 5]      ~0.46 M
resnet56   [9, 9, 9]      ~0.85 M
=========  =============  ========
*three input channels, ten classes.

``model.features(x)`` is **FE**: the output after the last ReLU and global average
pooling, ``(N, 64)``. ``model.classifier`` maps FE to logits: a ``Linear`` layer, or a
``NormedLinear`` (cosine classifier scaled by ``s``) for LDAM.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from fragility.errors import ConfigError
from fragility.training.settings import ARCHITECTURES

FEATURE_DIM = 64


class NormedLinear(nn.Module):
    """Cosine classifier: ``s * normalize(x) @ normalize(W).T`` (no bias).

    ``effective_weight()`` returns ``s * normalize(W)`` so that
    ``logits = normalize(x) @ effective_weight().T`` (used by the CE decomposition).
    """

    def __init__(self, in_features: int, out_features: int, scale: float = 30.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-1, 1))
        self.weight.data.renorm_(2, 0, 1e-5).mul_(1e5)
        self.scale = scale

    def effective_weight(self) -> torch.Tensor:
        return self.scale * F.normalize(self.weight, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) @ self.effective_weight().t()


class _ShortcutA(nn.Module):
    """Option-A shortcut: stride-2 subsampling plus zero-padded channels (parameter-free)."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        needs_projection = stride != 1 or in_planes != planes
        self.shortcut = _ShortcutA((planes - in_planes) // 2) if needs_projection else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    """ResNet for small images; any input size and 1 or 3 channels."""

    def __init__(
        self,
        blocks: tuple[int, int, int],
        n_classes: int,
        in_channels: int = 3,
        normed_classifier: bool = False,
        scale: float = 30.0,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, in_planes = [], 16
        for planes, n, stride in zip((16, 32, 64), blocks, (1, 2, 2)):
            for i in range(n):
                stages.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.layers = nn.Sequential(*stages)
        # index in ``layers`` of each stage's last block (a plain attribute: not in the weights)
        self.stage_ends = {f"stage{i + 1}": sum(blocks[: i + 1]) - 1 for i in range(3)}
        self.classifier = (
            NormedLinear(FEATURE_DIM, n_classes, scale)
            if normed_classifier
            else nn.Linear(FEATURE_DIM, n_classes)
        )
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """FE, ``(N, 64)``: post-ReLU, globally average-pooled activations."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        return out.mean(dim=(2, 3))

    def features_mixed(
        self, x: torch.Tensor, mix: Callable[[torch.Tensor], torch.Tensor], at: str
    ) -> torch.Tensor:
        """FE ``(N, 64)`` with ``mix`` applied to the activations ``(N, c, h, w)`` after
        stage ``at`` (``stage1`` ... ``stage3``), or to FE itself (``fe``); MFW's forward."""
        out = F.relu(self.bn1(self.conv1(x)))
        end = self.stage_ends.get(at)
        for i, block in enumerate(self.layers):
            out = block(out)
            if i == end:
                out = mix(out)
        fe = out.mean(dim=(2, 3))
        return mix(fe) if at == "fe" else fe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    @property
    def normed(self) -> bool:
        return isinstance(self.classifier, NormedLinear)

    def classifier_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W (C, H), bias (C,))`` such that ``logits = fe' @ W.T + bias``.

        fe' is FE for a linear classifier and FE/‖FE‖ for a normed one (W carries the scale).
        """
        if self.normed:
            w = self.classifier.effective_weight()
            return w, torch.zeros(w.shape[0], device=w.device, dtype=w.dtype)
        return self.classifier.weight, self.classifier.bias


def build_model(
    arch: str, n_classes: int, in_channels: int, normed_classifier: bool = False
) -> ResNetCifar:
    """Build a model by registry name; an unknown name lists the valid ones."""
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown arch {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    return ResNetCifar(ARCHITECTURES[arch].blocks, n_classes, in_channels, normed_classifier)
