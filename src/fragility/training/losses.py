"""Losses for imbalanced training (after Cao et al.'s LDAM-DRW, without its globals).

Every loss takes ``logits (N, C)``, ``target (N,)`` and optional per-class ``weight (C,)``
(set by the trainer when deferred re-weighting switches on, or throughout with
``reweight``); a weighted loss is torch's weighted mean ``Σ_n w_{y_n} ℓ_n / Σ_n w_{y_n}``,
except focal (see there).

The losses that change the logits during training only (balanced softmax, the logit-adjusted
loss, CDT) are evaluated on the model's raw logits, as their papers do: the trainer's and the
embeddings' predictions are ``argmax`` of the classifier's output, with no prior or
temperature applied.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fragility.catalog import resolve
from fragility.errors import ConfigError
from fragility.training.settings import LOSSES


class WeightedMeanLoss(nn.Module):
    """A loss reduced as torch's weighted mean ``Σ_n w_{y_n} ℓ_n / Σ_n w_{y_n}`` (plain mean
    without ``weight``)."""

    def instance_scale(self, target: torch.Tensor, weight: torch.Tensor | None):
        """The factor from the batch loss's gradient to instance n's own weighted term
        ``w_{y_n} ℓ_n``: ``Σ_n w_{y_n}`` (a device tensor), or N without weights."""
        return len(target) if weight is None else weight[target].sum()


class CrossEntropy(WeightedMeanLoss):
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

    def instance_scale(self, target: torch.Tensor, weight: torch.Tensor | None) -> int:
        """A plain mean over the batch, weighted or not: N."""
        return len(target)


class LDAMLoss(WeightedMeanLoss):
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


def _log_prior(class_counts) -> torch.Tensor:
    counts = np.asarray(class_counts, dtype=np.float64)
    return torch.tensor(np.log(counts / counts.sum()), dtype=torch.float32)


class LogitAdjustedLoss(WeightedMeanLoss):
    """Menon et al.'s logit-adjusted loss (ICLR 2021, eq. 10): cross-entropy on
    ``logits + τ·log π`` with ``π_c = n_c / N`` the training class prior.

    With ``τ = 1`` this is Ren et al.'s balanced softmax (NeurIPS 2020), whose
    ``n_c·exp(z_c) / Σ_j n_j·exp(z_j)`` differs from it only by the constant ``log N``.
    Prediction uses the raw logits (the adjustment is a training-time device).
    """

    def __init__(self, class_counts, tau: float = 1.0):
        super().__init__()
        self.register_buffer("adjustment", tau * _log_prior(class_counts))
        self.tau = tau

    def forward(self, logits, target, weight=None):
        return F.cross_entropy(logits + self.adjustment, target, weight=weight)


class BalancedSoftmax(LogitAdjustedLoss):
    """Ren et al.'s balanced softmax: the logit-adjusted loss with ``τ = 1``."""

    def __init__(self, class_counts):
        super().__init__(class_counts, tau=1.0)


class CDTLoss(WeightedMeanLoss):
    """Ye et al.'s class-dependent temperatures (arXiv 2001.01385): cross-entropy on
    ``z_c / a_c`` with ``a_c = (n_max / n_c)^γ`` (1 for the majority, larger for minority
    classes). Prediction uses the raw logits (``a_c = 1``), as in the paper.
    """

    def __init__(self, class_counts, gamma: float = 0.2):
        super().__init__()
        counts = np.asarray(class_counts, dtype=np.float64)
        temps = (counts.max() / counts) ** gamma
        self.register_buffer("temperatures", torch.tensor(temps, dtype=torch.float32))
        self.gamma = gamma

    def forward(self, logits, target, weight=None):
        return F.cross_entropy(logits / self.temperatures, target, weight=weight)


def class_balanced_weights(class_counts, beta: float = 0.9999) -> torch.Tensor:
    """Cui et al.'s effective-number weights ``(1-β)/(1-β^n_c)``, normalised to sum to C."""
    counts = np.asarray(class_counts, dtype=np.float64)
    w = (1.0 - beta) / (1.0 - np.power(beta, counts))
    w = w / w.sum() * len(counts)
    return torch.tensor(w, dtype=torch.float32)


def build_loss(
    name: str,
    class_counts,
    *,
    gamma: float = 1.0,
    max_margin: float = 0.5,
    scale: float = 30.0,
    la_tau: float = 1.0,
    cdt_gamma: float = 0.2,
) -> nn.Module:
    """Build a loss by its config name (:data:`fragility.training.settings.LOSSES` names its
    builder); an unknown name lists the valid ones.

    ``class_counts`` are the training subset's images per class (the prior, margins and
    temperatures come from them); ``gamma`` is focal's, ``max_margin`` and ``scale`` LDAM's,
    ``la_tau`` the logit-adjusted loss's and ``cdt_gamma`` CDT's.
    """
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    options = {"gamma": gamma, "max_margin": max_margin, "scale": scale, "la_tau": la_tau,
               "cdt_gamma": cdt_gamma}  # fmt: skip
    return resolve(LOSSES[name])(class_counts, **options)


# -- the builders LOSSES names: builder(class_counts, **options) -> nn.Module ----------------


def cross_entropy(class_counts, **options) -> nn.Module:
    return CrossEntropy()


def focal(class_counts, *, gamma: float, **options) -> nn.Module:
    return FocalLoss(gamma)


def ldam(class_counts, *, max_margin: float, scale: float, **options) -> nn.Module:
    return LDAMLoss(class_counts, max_margin, scale)


def balanced_softmax(class_counts, **options) -> nn.Module:
    return BalancedSoftmax(class_counts)


def logit_adjusted(class_counts, *, la_tau: float, **options) -> nn.Module:
    return LogitAdjustedLoss(class_counts, tau=la_tau)


def cdt(class_counts, *, cdt_gamma: float, **options) -> nn.Module:
    return CDTLoss(class_counts, cdt_gamma)
