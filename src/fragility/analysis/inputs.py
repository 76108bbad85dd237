"""One model folder as every analysis reads it (:class:`RunInputs`), and what a claim's
statistic reads of a run and gives back (:class:`ClaimInputs`, :class:`Measured`).

A run's files are loaded once into a :class:`RunInputs`: its per-run tables are built from
it, and a claim of the paper is computed on it by one function (named in its
:class:`fragility.catalog.claims.ClaimSpec`) that takes :class:`ClaimInputs` (the run and the
bootstrap multiplicities of its images) and returns :class:`Measured`: the signed difference
under the data as observed and under every bootstrap replicate, the named values its
plain-words detail quotes, and why it is *n/a* where it cannot be measured.

Two conventions every statistic shares:

- **The paper's logit** is ``LG = Σ_h CE`` without the bias, and the paper's prediction its
  argmax (:meth:`RunInputs.paper_pred`). Statistics of the training set that group instances
  by their predicted class use it; accuracy statistics (RQ1, RQ2) and RQ7's true and false
  positives use the head's own decisions, bias included (the embeddings' ``pred``).
- **Size matching** (:mod:`fragility.analysis.matching`): a statistic that moves with the
  number of instances it is computed on compares a small group with a large one only after
  the large one is drawn down to the small one's size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from fragility.catalog.layout import model_file
from fragility.embeddings.files import prepare_fe, read_classifier, read_embeddings
from fragility.errors import FragilityError
from fragility.io import read_json, read_table

N_TOP = 10  # the paper's "ten largest" (Figs 4, 7, 8, 10 and RQ7's top-10 identities)
HEADS = ("linear", "normed")  # a plain linear classifier, and a cosine one (LDAM's)


def majority_minority(n_per_class: np.ndarray) -> tuple[int, int]:
    """``(majority, minority)`` class indices from the training class sizes (C,).

    Majority = the largest class (first on ties), minority = the smallest class (*last* on
    ties), so a balanced run gives class 0 vs class C-1 as in the paper's Fig 2.
    """
    n = np.asarray(n_per_class)
    majority = int(np.argmax(n))
    minority = int(len(n) - 1 - np.argmin(n[::-1]))
    return majority, minority


GROUP_SHARE = 0.40  # the paper contrasts classes 0-3 with 6-9 of CIFAR-10's ten


def class_groups(n_per_class: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(majority group, minority group)``: class indices of the largest and the smallest
    40 % of the classes by training count, at least one class each.

    Classes are ranked by count, largest first, ties in class order (as
    :func:`majority_minority`): on ten classes of an exp or step split that is 0-3 and 6-9,
    on two classes one each. Both groups are returned in class order.
    """
    n = np.asarray(n_per_class)
    size = max(1, int(np.floor(GROUP_SHARE * len(n) + 1e-9)))
    ranked = np.argsort(-n, kind="stable")
    return np.sort(ranked[:size]), np.sort(ranked[len(n) - size :])


def group_mean(per_class: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Mean over the classes of ``group`` of ``per_class (..., C)``, classes that are NaN
    (never predicted) left out; NaN when none is measured."""
    part = np.asarray(per_class, dtype=np.float64)[..., np.asarray(group, dtype=np.int64)]
    counted = np.isfinite(part).sum(axis=-1)
    total = np.where(np.isfinite(part), part, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counted > 0, total / counted, np.nan)


@dataclass
class RunInputs:
    """One model folder (a run, or a remedied model under it) as the analyses read it,
    loaded once: the ``train`` and ``test`` embeddings
    (:func:`fragility.embeddings.files.read_embeddings` dicts; ``test`` is empty when not
    read), the classifier ``W (C, H)`` and ``bias (C,)`` in float64 and ``normed`` (a cosine
    head), the training images per class ``counts (C,)``, and what some tables read besides:
    the ``class_names``, the ``pool`` embeddings, the per-epoch ``history`` (None when
    absent) and ``kept_epoch``, the epoch whose checkpoint was embedded (None when unknown).
    """

    train: dict
    test: dict
    W: np.ndarray
    bias: np.ndarray
    normed: bool
    counts: np.ndarray
    class_names: list[str] | None = None
    pool: dict | None = None
    history: pa.Table | None = None
    kept_epoch: int | None = None

    # the kinds of model file it reads (fragility.catalog.layout.MODEL_FILES)
    KINDS = ("train", "test", "pool", "classifier", "history", "metrics")

    def __post_init__(self):
        if self.class_names is None:
            self.class_names = [str(c) for c in range(self.n_classes)]

    @classmethod
    def from_files(cls, files: Mapping[str, str | Path], prefix: str = "") -> RunInputs:
        """Read the files one analysis was handed: ``files`` maps kinds of
        :data:`fragility.catalog.layout.MODEL_FILES`, each after ``prefix`` (``partner_train``
        ...), to paths; other kinds are the caller's. ``train`` and ``classifier`` are
        required; ``test``, ``pool``, ``history`` and ``metrics`` are read when given.
        ``metrics`` (metrics.json) supplies ``classes`` and ``train_class_counts``; without
        it names default to the class index and counts to the labels of the train
        embeddings."""
        own = {kind: Path(files[prefix + kind]) for kind in cls.KINDS if prefix + kind in files}
        required = [prefix + kind for kind in ("train", "classifier") if kind not in own]
        if required:
            raise FragilityError(
                f"the per-run analyses need the {' and '.join(required)} embeddings; "
                f"got only {sorted(files)}"
            )
        missing = [str(path) for path in own.values() if not path.is_file()]
        if missing:
            raise FragilityError(
                f"{', '.join(missing)} missing; produce the embeddings of this run first "
                "(the workflow's embeddings step)"
            )

        def embeddings(kind: str) -> dict | None:
            return read_embeddings(own[kind]) if kind in own else None

        classifier = read_classifier(own["classifier"])
        n_classes = classifier["weight"].shape[0]
        train = embeddings("train")
        metrics = read_json(own["metrics"]) if "metrics" in own else {}
        names = [str(n) for n in metrics.get("classes") or range(n_classes)]
        counts = metrics.get("train_class_counts")
        if counts is None:
            counts = np.bincount(train["label"], minlength=n_classes)
        counts = np.asarray(counts, dtype=np.int64)
        if len(names) != n_classes or len(counts) != n_classes:
            raise FragilityError(
                f"{own.get('metrics')} lists {len(names)} class names and {len(counts)} class "
                f"counts, but the classifier in {own['classifier']} has {n_classes} classes"
            )
        kept = metrics.get("kept_epoch")
        return cls(
            train=train,
            test=embeddings("test") or {},
            W=np.asarray(classifier["weight"], dtype=np.float64),
            bias=np.asarray(classifier["bias"], dtype=np.float64),
            normed=bool(classifier["normed"]),
            counts=counts,
            class_names=names,
            pool=embeddings("pool"),
            history=read_table(own["history"]) if "history" in own else None,
            kept_epoch=None if kept is None else int(kept),
        )

    @classmethod
    def load(cls, run_dir: str | Path, *, pool: bool | None = None) -> RunInputs:
        """Read a run folder (``results/{dataset}/{imbalance}/{loss}/seed{seed}``) laid out
        as :mod:`fragility.catalog.layout` says: a convenience for the Python API (the
        workflow's stages are handed their files, see :meth:`from_files`).

        ``pool``: True requires ``embeddings/pool.parquet``, False skips it, None (default)
        reads it when present; ``history.parquet`` and ``metrics.json`` are read when present.
        """
        run_dir = Path(run_dir)
        required = ["train", "test", "classifier", *(["pool"] if pool else [])]
        optional = [*([] if pool is not None else ["pool"]), "history", "metrics"]
        files = {kind: run_dir / model_file(kind) for kind in required}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise FragilityError(
                f"run {run_dir} lacks {', '.join(missing)}; produce the embeddings of this run "
                "first (the workflow's embeddings step)"
            )
        for kind in optional:
            if (run_dir / model_file(kind)).is_file():
                files[kind] = run_dir / model_file(kind)
        return cls.from_files(files)

    @property
    def n_classes(self) -> int:
        return int(self.W.shape[0])

    @property
    def width(self) -> int:
        """H, the width of the feature embeddings."""
        return int(self.W.shape[1])

    @property
    def head(self) -> str:
        """``"normed"`` for a cosine classifier, else ``"linear"``."""
        return "normed" if self.normed else "linear"

    @property
    def roles(self) -> tuple[int, int]:
        """``(majority, minority)``: the largest and the smallest training class."""
        return majority_minority(self.counts)

    @property
    def majority(self) -> int:
        return self.roles[0]

    @property
    def minority(self) -> int:
        return self.roles[1]

    @property
    def groups(self) -> tuple[np.ndarray, np.ndarray]:
        """``(majority group, minority group)``: the largest and the smallest 40 % of the
        classes (:func:`class_groups`)."""
        return class_groups(self.counts)

    def role_names(self) -> list[str]:
        """Each class's role: ``majority``, ``minority`` or ``other``."""
        out = ["other"] * self.n_classes
        out[self.minority] = "minority"
        out[self.majority] = "majority"
        return out

    def group_names(self) -> list[str]:
        """Each class's group: ``majority``, ``minority`` or ``middle``."""
        majority, minority = self.groups
        out = ["middle"] * self.n_classes
        for c in minority:
            out[c] = "minority"
        for c in majority:
            out[c] = "majority"
        return out

    def bias_free_logits(self, subset: str = "train") -> np.ndarray:
        """``fe' @ W.T`` (N, C): the paper's logit ``Σ_h CE`` of ``subset``'s instances."""
        fe = prepare_fe(getattr(self, subset)["fe"], self.normed)
        return fe @ np.asarray(self.W, dtype=np.float64).T

    def paper_pred(self, subset: str = "train") -> np.ndarray:
        """The paper's prediction (N,): the argmax of the bias-free logit."""
        return np.argmax(self.bias_free_logits(subset), axis=1)

    def observed(self, k_fe: int = 7, ks: Sequence[int] = (2, 3, 5, 7)) -> ClaimInputs:
        """The claims' inputs with the data as observed (no bootstrap replicate): a per-run
        table quotes the same numbers as the claim it shows."""
        n_test = len(self.test["label"]) if self.test else 0
        return ClaimInputs(self, np.ones((1, len(self.train["label"]))), np.ones((1, n_test)),
                           ks=tuple(ks), k_fe=k_fe)  # fmt: skip


@dataclass
class ClaimInputs:
    """Everything a claim's statistic may read of one imbalanced run.

    ``run`` is the run; ``train_w`` and ``test_w`` ``(1 + B, N)`` are the bootstrap
    multiplicities of its training and test images, row 0 the data as observed. RQ1 reads ``retrained_pred`` (the re-trained classifier's
    test predictions) and ``balanced_test`` (``(labels, preds, weights)`` of Table 1's
    balanced model). The balanced-vs-imbalanced claims read ``partner`` (the balanced run of
    the same loss, head, architecture and epochs) with ``partner_train_w``; without one
    ``partner_missing`` says why."""

    run: RunInputs
    train_w: np.ndarray
    test_w: np.ndarray
    ks: tuple[int, ...] = (2, 3, 5, 7)
    k_fe: int = 7
    retrained_pred: np.ndarray | None = None
    balanced_test: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    balanced_name: str = ""  # Table 1's balanced model, in words ("ce seed 0")
    balanced_missing: str = "no balanced run of this dataset"
    partner: RunInputs | None = None
    partner_train_w: np.ndarray | None = None
    partner_name: str = ""  # the balanced partner, in words ("ce seed 0")
    partner_missing: str = "no balanced run of the same loss, head, architecture and epochs"

    @property
    def n_boot(self) -> int:
        return int(self.test_w.shape[0]) - 1


@dataclass
class Measured:
    """A claim's difference ``values (1 + B,)`` (row 0 the data as observed; NaN replicates
    where a replicate cannot measure it), the named values ``parts`` its detail quotes, and
    ``extra`` statistics measured on the way (their own bootstrap rows). ``values`` is None
    when the claim cannot be measured on this run; ``reason`` then says why."""

    values: np.ndarray | None
    parts: dict = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    reason: str = ""

    @classmethod
    def not_measurable(cls, reason: str, **parts) -> Measured:
        return cls(None, parts, {}, reason)


def point(values: np.ndarray) -> float | None:
    """Row 0 (the data as observed) of a replicate array, None where it is not finite."""
    value = float(np.asarray(values, dtype=np.float64).reshape(-1)[0])
    return value if np.isfinite(value) else None


def log_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``log(num / den)`` elementwise, NaN unless both are positive (a ratio of sizes)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    ok = (num > 0) & (den > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, np.log(np.where(ok, num, 1.0) / np.where(ok, den, 1.0)), np.nan)
