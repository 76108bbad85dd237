"""Major Feature Weakening (MFW; Ye, Zhan and Chao, ICCV 2021, the lecture's Solution 5).

Within each mini-batch, instance n of class c has its features mixed with those of another
instance of the same batch, ``f_n <- (1 - lam_c) f_n + lam_c f_partner(n)``, and keeps its
label. ``lam_c`` grows with the class's training count and is 0 for the smallest class
(:meth:`fragility.training.settings.MFWSettings.strengths`), so the major classes cannot be fitted
first while the minority's features stay untouched.

Partners are drawn per epoch on the CPU from their own generator, seeded by
``(seed, epoch)``: the epoch's order and augmentation are the very ones a run without MFW
draws, so an MFW run and its ERM twin see the same batches, and the partners travel to the
device in the epoch's one copy (no host round trip per step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from fragility.training.settings import MFWSettings


def mfw_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of one epoch's partners, apart from the order and augmentation stream."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch + 7_777_777_777)


def draw_partners(bounds: Sequence[tuple[int, int]], generator: torch.Generator) -> torch.Tensor:
    """``(N,)`` int64: for each item of the epoch, the position *within its batch* of its
    partner, uniform over the other members of the batch (itself only in a batch of one)."""
    n = bounds[-1][1] if bounds else 0
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    out = torch.empty(n, dtype=torch.int64)
    for start, stop in bounds:
        size = stop - start
        local = torch.arange(size)
        # an offset uniform on 1..size-1 reaches every other member with equal chance
        offset = 1 + (u[start:stop] * max(size - 1, 0)).long().clamp(max=max(size - 2, 0))
        out[start:stop] = (local + offset) % size if size > 1 else local
    return out


def mix_features(
    h: torch.Tensor, target: torch.Tensor, partner: torch.Tensor, lam: torch.Tensor
) -> torch.Tensor:
    """``(1 - lam[y_n]) h_n + lam[y_n] h_partner(n)`` for a batch of features ``h (B, ...)``,
    labels ``target (B,)``, partner positions ``partner (B,)`` and strengths ``lam (C,)``.
    A class with ``lam_c = 0`` keeps its features exactly. (Under bf16 autocast the mix is
    float32: the next layer casts it back, and no dtype copy is queued per step.)"""
    w = lam[target].view(-1, *([1] * (h.dim() - 1)))
    return (1 - w) * h + w * h[partner]


@dataclass
class FeatureWeakening:
    """MFW of one training run: the per-class strengths ``lam (C,)`` on the device and the
    layer after which the features are mixed."""

    lam: torch.Tensor
    layer: str

    @classmethod
    def build(cls, settings: MFWSettings, counts, device: torch.device) -> FeatureWeakening:
        lam = torch.tensor(settings.strengths(list(counts)), dtype=torch.float32, device=device)
        return cls(lam, settings.layer)

    def features(self, model, x: torch.Tensor, target: torch.Tensor, partner: torch.Tensor):
        """FE ``(B, H)`` of the batch ``x`` with its features weakened after ``self.layer``."""
        return model.features_mixed(
            x, lambda h: mix_features(h, target, partner, self.lam), self.layer
        )
