"""Losses for imbalanced training (after Cao et al.'s LDAM-DRW, without its globals).

Every loss takes ``logits (N, C)``, ``target (N,)`` and optional per-class ``weight (C,)``
(set by the trainer when deferred re-weighting switches on).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ConfigError


class CrossEntropy(nn.Module):
    def forward(self, logits, target, weight=None):
        return F.cross_entropy(logits, target, weight=weight)


class FocalLoss(nn.Module):
    """``mean_n w_{y_n} (1 - p_n)^γ (−log p_n)`` with p_n the softmax probability of the target.

    As in LDAM-DRW, the weighted cross-entropy is computed per instance and then focused.
    """

    def __init__(self, gamma: float = 1.0):
        super().__init__()
        self.gamma = gamma

    def forward(self, logits, target, weight=None):
        ce = F.cross_entropy(logits, target, weight=weight, reduction="none")
        p = torch.exp(-F.cross_entropy(logits, target, reduction="none"))
        return ((1 - p) ** self.gamma * ce).mean()


class LDAMLoss(nn.Module):
    """Label-distribution-aware margin loss: subtract ``Δ_y ∝ n_y^(-1/4)`` from the target
    logit (largest margin ``max_margin``) and scale by ``s`` before cross-entropy.

    The logits should come from a normed classifier *without* its own scale, so the model's
    ``NormedLinear`` (which already multiplies by s) is divided back here: ``s`` is applied
    once, on the margin-shifted cosine.
    """

    def __init__(self, class_counts, max_margin: float = 0.5, scale: float = 30.0):
        super().__init__()
        margins = 1.0 / np.sqrt(np.sqrt(np.asarray(class_counts, dtype=np.float64)))
        margins = margins * (max_margin / margins.max())
        self.register_buffer("margins", torch.tensor(margins, dtype=torch.float32))
        self.scale = scale

    def forward(self, logits, target, weight=None):
        cosine = logits / self.scale
        shift = F.one_hot(target, cosine.shape[1]).to(cosine.dtype) * self.margins[target, None]
        return F.cross_entropy(self.scale * (cosine - shift), target, weight=weight)


def class_balanced_weights(class_counts, beta: float = 0.9999) -> torch.Tensor:
    """Cui et al.'s effective-number weights ``(1-β)/(1-β^n_c)``, normalised to sum to C."""
    counts = np.asarray(class_counts, dtype=np.float64)
    w = (1.0 - beta) / (1.0 - np.power(beta, counts))
    w = w / w.sum() * len(counts)
    return torch.tensor(w, dtype=torch.float32)


def build_loss(
    name: str, class_counts, *, gamma: float = 1.0, max_margin: float = 0.5, scale: float = 30.0
) -> nn.Module:
    """Build a loss by its config name; an unknown name lists the valid ones."""
    builders = {
        "ce": lambda: CrossEntropy(),
        "focal": lambda: FocalLoss(gamma),
        "ldam": lambda: LDAMLoss(class_counts, max_margin, scale),
    }
    if name not in builders:
        raise ConfigError(f"unknown loss {name!r}; choose one of {sorted(builders)}")
    return builders[name]()
