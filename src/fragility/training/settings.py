"""What determines a trained model, and the schedule derived from it, without torch.

The workflow reads these names at start-up (config validation, ``snakemake -n``), so this
module must stay importable without torch: the losses are named here by the import path of
their builders (resolved when a training builds one), the architectures by their shape.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from fragility.errors import ConfigError

# loss-level methods by name, each with its builder ``builder(class_counts, **options) ->
# nn.Module`` (:func:`fragility.training.losses.build_loss`): ce, focal and ldam (Cao et al.),
# then balanced softmax (Ren et al. 2020), the logit-adjusted loss (Menon et al. 2021) and
# class-dependent temperatures (Ye et al. 2020); any of them composes with ``drw`` or
# ``reweight``
LOSSES: dict[str, str] = {
    "ce": "fragility.training.losses:cross_entropy",
    "focal": "fragility.training.losses:focal",
    "ldam": "fragility.training.losses:ldam",
    "balanced_softmax": "fragility.training.losses:balanced_softmax",
    "logit_adjusted": "fragility.training.losses:logit_adjusted",
    "cdt": "fragility.training.losses:cdt",
}


@dataclass(frozen=True)
class Architecture:
    """A CIFAR ResNet of this package: residual blocks per stage (depth = 6 * blocks + 2), and
    ``cost``, its training compute per image relative to ResNet-32 (its convolutions, 6n + 1
    for n blocks a stage), by which the workflow sizes a job for a cluster."""

    blocks: tuple[int, int, int]
    cost: float


ARCHITECTURES: dict[str, Architecture] = {
    "resnet8": Architecture((1, 1, 1), 7 / 31),
    "resnet20": Architecture((3, 3, 3), 19 / 31),
    "resnet32": Architecture((5, 5, 5), 1.0),
    "resnet56": Architecture((9, 9, 9), 55 / 31),
}
# LDAM-DRW's CIFAR ResNets (its models/resnet_cifar.py), blocks per stage, for its checkpoints
LDAM_DRW_ARCHS = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18}
SELECTIONS = ("test_bac", "val_bac", "last")
# where Major Feature Weakening mixes features: after a residual stage, or FE itself
MFW_LAYERS = ("stage1", "stage2", "fe")


@dataclass(frozen=True)
class MFWSettings:
    """Major Feature Weakening (Ye, Zhan and Chao, ICCV 2021; the lecture's Solution 5).

    Within each mini-batch an instance of class c has its features (after ``layer``) mixed
    with those of another instance of the batch, ``f <- (1 - lam_c) f + lam_c f_other``,
    label kept, with ``lam_c = strength * ((n_c - n_min) / (n_max - n_min)) ** power``:
    ``strength`` for the largest class, 0 for the smallest (and for every class of a
    balanced subset). The schedule is our reading; the seeds give only its shape.
    """

    strength: float = 0.5
    power: float = 1.0
    layer: str = "stage2"

    def __post_init__(self):
        if self.layer not in MFW_LAYERS:
            raise ConfigError(f"unknown mfw layer {self.layer!r}; choose one of {list(MFW_LAYERS)}")
        if not 0 <= self.strength <= 1:
            raise ConfigError(f"mfw strength must lie in [0, 1], got {self.strength}")
        if self.power <= 0:
            raise ConfigError(f"mfw power must be positive, got {self.power}")

    def strengths(self, counts) -> list[float]:
        """``lam_c`` for a training subset with ``counts`` images per class."""
        n_min, n_max = min(counts), max(counts)
        if n_max == n_min:
            return [0.0] * len(counts)
        return [self.strength * ((n - n_min) / (n_max - n_min)) ** self.power for n in counts]


@dataclass
class TrainConfig:
    """Everything that determines a trained model (besides the data and the split)."""

    arch: str = "resnet32"
    loss: str = "ce"
    drw: bool = False  # deferred class-balanced re-weighting from ``drw_start`` of training
    reweight: bool = False  # class-balanced re-weighting throughout (from epoch 0)
    oversample: bool = False  # random over-sampling of every class to the majority's count
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 2e-4
    warmup_epochs: int | None = None  # None: 5 epochs per 200, at least 1
    focal_gamma: float = 1.0
    ldam_max_margin: float = 0.5
    ldam_scale: float = 30.0
    la_tau: float = 1.0  # logit-adjusted loss: logits + tau * log(prior)
    cdt_gamma: float = 0.2  # CDT: logits / (n_max / n_c)^gamma
    cb_beta: float = 0.9999
    drw_start: float = 0.8  # fraction of epochs
    lr_milestones: tuple[float, float] = (0.8, 0.9)  # fractions of epochs: lr ×0.01, ×0.0001
    select: str = "test_bac"
    # fraction of the epochs after which a checkpoint may be kept: 0 = any epoch (the paper's
    # "the epoch with the best BAC"), 0.8 = from the first learning-rate decay on
    select_from: float = 0.0
    augment: bool = True
    flip: bool = True
    crop_padding: int = 4
    seed: int = 0
    eval_batch_size: int | None = None  # None: 256 on CPU (cache-friendly), 2048 on GPU
    # test images per class evaluated after every epoch (checkpoint selection and the
    # history), a seeded balanced draw; None: all. The kept checkpoint's metrics use all.
    epoch_test_per_class: int | None = None
    mfw: MFWSettings | None = None  # Major Feature Weakening; a dict from the config

    def __post_init__(self):
        if self.select not in SELECTIONS:
            raise ConfigError(f"unknown select {self.select!r}; choose one of {list(SELECTIONS)}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if not 0 <= self.select_from < 1:
            raise ConfigError(f"select_from must lie in [0, 1), got {self.select_from}")
        if self.epoch_test_per_class is not None and self.epoch_test_per_class < 1:
            raise ConfigError(
                f"epoch_test_per_class must be at least 1 (or null: all), got "
                f"{self.epoch_test_per_class}"
            )
        self.lr_milestones = tuple(self.lr_milestones)
        if isinstance(self.mfw, dict):
            unknown = set(self.mfw) - {f.name for f in dataclasses.fields(MFWSettings)}
            if unknown:
                raise ConfigError(f"unknown mfw settings {sorted(unknown)}")
            self.mfw = MFWSettings(**self.mfw)

    def hash(self) -> str:
        fields = dataclasses.asdict(self)
        for optional, default in (("mfw", None), ("epoch_test_per_class", None),
                                  ("select_from", 0.0)):  # fmt: skip
            if fields[optional] == default:
                # a run without the option keeps the hash it had before the option existed,
                # so its resume state and its files' metadata still match
                del fields[optional]
        blob = json.dumps(fields, sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# -- the schedule: every epoch-dependent choice is derived here, from the config alone --------


def warmup_epochs(cfg: TrainConfig) -> int:
    if cfg.warmup_epochs is not None:
        return cfg.warmup_epochs
    return max(1, round(5 * cfg.epochs / 200))


def learning_rate(cfg: TrainConfig, epoch: int) -> float:
    """LR for 0-based ``epoch``: linear warm-up, then ×0.01 and ×0.0001 at the milestones."""
    warm = warmup_epochs(cfg)
    if epoch < warm:
        return cfg.lr * (epoch + 1) / warm
    first, second = (int(f * cfg.epochs) for f in cfg.lr_milestones)
    if epoch >= second:
        return cfg.lr * 1e-4
    if epoch >= first:
        return cfg.lr * 1e-2
    return cfg.lr


def selectable(cfg: TrainConfig, epoch: int) -> bool:
    """Whether 0-based ``epoch``'s checkpoint may be kept (``select_from``; the last epoch
    always may)."""
    return epoch >= min(int(cfg.select_from * cfg.epochs), cfg.epochs - 1)


def drw_active(cfg: TrainConfig, epoch: int) -> bool:
    return cfg.drw and epoch >= int(cfg.drw_start * cfg.epochs)


def class_weights_active(cfg: TrainConfig, epoch: int) -> bool:
    """Whether 0-based ``epoch`` trains with the class-balanced weights: from epoch 0 with
    ``reweight``, from ``drw_start`` with ``drw`` (both on: from epoch 0)."""
    return cfg.reweight or drw_active(cfg, epoch)
