"""The paper's claims, its five trained models and the numbers it prints, each declared once.

Every claim is a :class:`ClaimSpec` in :data:`CLAIMS`: the paper's sentence, the statistic
that tests it (a signed difference, positive when the claim holds), what "holds" means, the
function that measures it and the paper's own value of the same statistic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_MINORITY_GAP = 0.10  # "far below": the minority's train-test gap is at least 10 points
PREMISE_TRAIN_ACC = 0.90  # "almost perfectly memorize the training data" (§5.2), every class
FEW_FEATURES_COVERAGE = 0.90  # RQ3 "K << H": the smallest K covering 90 % of the instances ...
FEW_FEATURES_SHARE = 0.2  # ... is at most H / 5 (K = 7 of 64 for CE, 11 for focal: §5.3)
MIN_RATIO = 2.0  # Tables 3 and 4: "at least 2X smaller", "2-4 times less" (§5.4)
FAR_LARGER = 2.0  # RQ5: the largest class-mean ce is "far" larger than the largest weight
N_MATCHED_DRAWS = 32  # seeded draws of every size-matched comparison


@dataclass(frozen=True)
class PaperModel:
    """One of the paper's trained models: its dataset, imbalance and loss (as this workflow
    names them) and how the paper's tables label it."""

    dataset: str
    imbalance: str
    loss: str
    label: str


# The five models whose numbers the paper prints (§5, Tables 1-4, the text of §5.3-5.7)
PAPER_MODELS: dict[str, PaperModel] = {
    "cifar10/ce": PaperModel("cifar10", "exp100", "ce", "CIFAR-10 CE"),
    "cifar10/focal": PaperModel("cifar10", "exp100", "focal", "CIFAR-10 focal"),
    "cifar10/ldam": PaperModel("cifar10", "exp100", "ldam", "CIFAR-10 LDAM"),
    "svhn/ce": PaperModel("svhn", "exp100", "ce", "SVHN CE"),
    "celeba/ce": PaperModel("celeba", "exp20", "ce", "CelebA CE"),
}

# The paper's own numbers (percentages as fractions), by model and table; the claims'
# paper values below are computed from these, and cross-run tables print them beside ours.
PAPER_NUMBERS: dict[str, dict[str, dict[str, float]]] = {
    "cifar10/ce": {
        "table1": {"balanced": 0.9265, "imbalanced": 0.7256, "retrained": 0.7860},
        "table2": {"train_acc_majority": 0.9822, "test_acc_majority": 0.9410,
                   "train_acc_minority": 0.9600, "test_acc_minority": 0.6230},
        "rq3": {"smallest_k": 7},
        "rq5": {"majority_top_abs_w_sum": 7.54, "minority_top_abs_w_sum": 4.50,
                "largest_abs_w": 1.2, "largest_mean_ce": 8.0},
        "rq7": {"frobenius_train_vs_tp": 2.36, "frobenius_train_vs_fp": 12.42,
                "overlap_ce_tp": 0.95, "overlap_ce_fp": 0.39,
                "overlap_fe_tp": 0.96, "overlap_fe_fp": 0.70},
    },
    "cifar10/focal": {
        "table1": {"balanced": 0.9265, "imbalanced": 0.7020, "retrained": 0.8044},
        "table2": {"train_acc_majority": 0.9948, "test_acc_majority": 0.9600,
                   "train_acc_minority": 0.9800, "test_acc_minority": 0.3930},
        "rq3": {"smallest_k": 11},
        "table3": {"majority_largest_mean_ce": 0.8553, "others_mean_largest_mean_ce": 3.4335},
        "table4": {"majority_largest_share": 0.1267, "others_mean_largest_share": 0.3844},
        "rq5": {"majority_top_abs_w_sum": 4.89, "minority_top_abs_w_sum": 3.48,
                "largest_abs_w": 1.29, "largest_mean_ce": 8.77},
        "rq7": {"frobenius_train_vs_tp": 1.73, "frobenius_train_vs_fp": 9.00},
    },
    "cifar10/ldam": {
        "table1": {"balanced": 0.9265, "imbalanced": 0.7780, "retrained": 0.8030},
        "table2": {"train_acc_majority": 0.9842, "test_acc_majority": 0.9410,
                   "train_acc_minority": 1.0, "test_acc_minority": 0.7290},
        "rq3": {"smallest_k": 2},
        "table3": {"majority_largest_mean_ce": 4.3578, "others_mean_largest_mean_ce": 12.5248},
        "table4": {"majority_largest_share": 6.121, "others_mean_largest_share": 12.01},
        "rq5": {"majority_top_abs_w_sum": 11.68, "minority_top_abs_w_sum": 5.80,
                "largest_abs_w": 2.36, "largest_mean_ce": 13.32},
        "rq7": {"frobenius_train_vs_tp": 4.01, "frobenius_train_vs_fp": 21.16},
    },
    "svhn/ce": {
        "table1": {"balanced": 0.9491, "imbalanced": 0.8329, "retrained": 0.8560},
        "table2": {"train_acc_majority": 0.9978, "test_acc_majority": 0.9813,
                   "train_acc_minority": 1.0, "test_acc_minority": 0.6147},
        "rq3": {"smallest_k": 3},
        "table3": {"majority_largest_mean_ce": 1.4899, "others_mean_largest_mean_ce": 3.4955},
        "table4": {"majority_largest_share": 0.1191, "others_mean_largest_share": 0.2774},
        "rq5": {"majority_top_abs_w_sum": 7.12, "minority_top_abs_w_sum": 3.94,
                "largest_abs_w": 1.25, "largest_mean_ce": 6.50},
        "rq7": {"frobenius_train_vs_tp": 4.67, "frobenius_train_vs_fp": 17.58},
    },
    "celeba/ce": {
        "table1": {"balanced": 0.9690, "imbalanced": 0.8765, "retrained": 0.9270},
        "table2": {"train_acc_majority": 0.9988, "test_acc_majority": 0.9910,
                   "train_acc_minority": 0.9440, "test_acc_minority": 0.7620},
        "rq3": {"smallest_k": 2},
        "table3": {"majority_largest_mean_ce": 0.5897, "others_mean_largest_mean_ce": 1.4945},
        "table4": {"majority_largest_share": 0.1191, "others_mean_largest_share": 0.5220},
        "rq5": {"majority_top_abs_w_sum": 5.51, "minority_top_abs_w_sum": 4.38,
                "largest_abs_w": 1.04, "largest_mean_ce": 1.49},
        "rq7": {"frobenius_train_vs_tp": 0.64, "frobenius_train_vs_fp": 2.75},
    },
}  # fmt: skip


@dataclass(frozen=True)
class PaperValue:
    """A claim's statistic computed from the paper's numbers, and those numbers as printed.
    ``printed`` is False where the paper gives no number for it but a bound or an estimate
    read off a figure ("about 60 %", "over 90 %", "approx. half")."""

    value: float | None
    reported: str
    printed: bool = True


@dataclass(frozen=True)
class ClaimSpec:
    """A claim of the paper, declared once.

    ``statement`` is the paper's sentence (quoted or closely paraphrased), ``source`` where it
    says it, ``statistic`` its signed difference in words (positive when the claim holds),
    ``threshold`` what "holds" means in the paper's units, ``label`` a few words for tables.

    ``compute`` names the function that measures it on one imbalanced run
    (``"package.module:function"``, resolved when a job runs): it takes
    :class:`fragility.analysis.inputs.ClaimInputs` and returns
    :class:`~fragility.analysis.inputs.Measured`. ``detail`` is the plain-words reading of
    one seed, a format string over the function's named parts (a missing value reads
    "n/a"). ``resampled`` names the images its bootstrap redraws: ``test``, ``train``,
    ``partner`` (the training images of the run and of its balanced partner) or ``model``
    (none: a property of the weights).

    ``heads`` are the classifier heads the statistic means something on; on any other head
    the claim is n/a for ``head_reason``. ``partner``: it compares the run with its balanced
    partner (same dataset, loss, head, architecture and epochs).

    ``paper`` is the paper's own value by :data:`PAPER_MODELS` key. Whether a claim that holds
    is also "as large as the paper's" follows one rule for every claim
    (:meth:`comparable`): the paper prints the value, it is positive, the statistic is
    ``dimensionless`` (a log ratio, a share or coverage difference; not a count or a
    difference in raw units) and ours is not ``size_matched``."""

    statement: str
    source: str
    statistic: str
    threshold: str
    label: str
    compute: str
    detail: str
    resampled: str
    paper: dict[str, PaperValue]
    dimensionless: bool = True
    size_matched: bool = False
    heads: tuple[str, ...] = ("linear", "normed")
    head_reason: str = ""
    partner: bool = False

    def comparable(self, paper: PaperValue | None) -> bool:
        """Whether our difference and ``paper``'s can be compared in size."""
        return (
            paper is not None
            and paper.printed
            and paper.value is not None
            and paper.value > 0
            and self.dimensionless
            and not self.size_matched
        )


def _log_excess(ratio: float, bound: float) -> float:
    return math.log(ratio) - math.log(bound)


def _paper_values(table: str, value, reported, printed=lambda model: True) -> dict[str, PaperValue]:
    """``{model: PaperValue}`` for every paper model that prints ``table``: ``value`` and
    ``reported`` turn that table's numbers (a dict) into the statistic and its text;
    ``printed(model)`` is False where those numbers are the paper's estimates."""
    return {
        model: PaperValue(value(numbers[table]), reported(numbers[table]), printed(model))
        for model, numbers in PAPER_NUMBERS.items()
        if table in numbers
    }


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _order(t: dict) -> float:
    return min(t["retrained"] - t["imbalanced"], t["balanced"] - t["retrained"])


def _gap(t: dict) -> float:
    minority = t["train_acc_minority"] - t["test_acc_minority"]
    majority = t["train_acc_majority"] - t["test_acc_majority"]
    return min(minority - majority, minority - MIN_MINORITY_GAP)


def _ratio(prefix: str):
    def value(t: dict) -> float:
        return _log_excess(t[f"others_mean_{prefix}"] / t[f"majority_{prefix}"], MIN_RATIO)

    return value


def _ratio_text(prefix: str):
    def text(t: dict) -> str:
        majority, others = t[f"majority_{prefix}"], t[f"others_mean_{prefix}"]
        return f"majority {majority:g}, others' mean {others:g} (ratio {others / majority:.2f})"

    return text


_K_PAPER = {"cifar10/ce": "K = 7 covers over 94 %", "cifar10/focal": "K = 11 covers over 90 %",
            "cifar10/ldam": "K = 2 covers 100 %", "svhn/ce": "K = 3 covers over 94 %",
            "celeba/ce": "K = 2 covers 100 %"}  # fmt: skip
PAPER_WIDTH = 64  # ResNet-32 and ResNet-56 both end in 64 features


def _few_features_paper() -> dict[str, PaperValue]:
    """The paper gives the K that covers "over" 90 or 94 %: a bound on the smallest K."""
    bound = FEW_FEATURES_SHARE * PAPER_WIDTH
    return {
        model: PaperValue(
            bound - n["rq3"]["smallest_k"], f"{_K_PAPER[model]} of {PAPER_WIDTH}", printed=False
        )
        for model, n in PAPER_NUMBERS.items()
    }


_CE = "cifar10/ce"
_PARTNER = "against the balanced partner {partner}"
_COSINE_SCALE = (
    "a cosine head's ce are fe/||fe|| times its weights, so no class-mean ce can exceed its "
    "largest weight: the statistic is at most -log 2 for every such model"
)
_COSINE_ROWS = (
    "every weight row of a cosine head has the norm of its scale, so no class's weights can "
    "be larger than another's"
)

CLAIMS: dict[str, ClaimSpec] = {
    "bac_order": ClaimSpec(
        "a classifier re-trained on the balanced training set's FE, extracted by the "
        "imbalanced extractor, does not recover the balanced model's BAC: imbalanced < "
        "re-trained < balanced",
        "§5.1, Table 1",
        "min(retrained - imbalanced, balanced - retrained) test BAC",
        "both differences > 0",
        "RQ1: imbalanced < re-trained < balanced BAC",
        "fragility.analysis.rq1:bac_order",
        "imbalanced {imbalanced:.3f}, re-trained {retrained:.3f}, balanced {balanced:.3f} "
        "({partner})",
        "test",
        _paper_values(
            "table1",
            _order,
            lambda t: f"{_pct(t['imbalanced'])} < {_pct(t['retrained'])} < {_pct(t['balanced'])}",
        ),
    ),
    "minority_overfits": ClaimSpec(
        "the models almost perfectly memorise the training data but generalise much worse to "
        "the minority class's test images",
        "§5.2, Table 2",
        f"min(minority gap - majority gap, minority gap - {MIN_MINORITY_GAP:.2f}); "
        "gap = train - test accuracy",
        f"minority gap above the majority's and >= {MIN_MINORITY_GAP:.2f}",
        "RQ2: minority test acc far below train acc",
        "fragility.analysis.rq2:minority_overfits",
        "minority train {train_acc_minority:.3f} / test {test_acc_minority:.3f}; majority "
        "train {train_acc_majority:.3f} / test {test_acc_majority:.3f}",
        "test",
        _paper_values(
            "table2",
            _gap,
            lambda t: (
                f"majority {_pct(t['train_acc_majority'])} / {_pct(t['test_acc_majority'])}"
                f", minority {_pct(t['train_acc_minority'])} / {_pct(t['test_acc_minority'])}"
            ),
        ),
    ),
    "few_features_decide": ClaimSpec(
        "a CNN classifier relies on a limited number of features: K << H",
        "§5.3, Fig 3",
        f"H/5 - smallest K whose top-K ce cover {FEW_FEATURES_COVERAGE:.0%} of the training "
        "instances (the paper's bias-free logit and prediction)",
        f"K <= H/5 at {FEW_FEATURES_COVERAGE:.0%} coverage",
        "RQ3: a few features decide (K << H)",
        "fragility.analysis.rq3:few_features_decide",
        "K covering 90 %: {k} of {width} (coverage {coverage:.3f}; H/5 = {bound:g})",
        "train",
        _few_features_paper(),
        dimensionless=False,
    ),
    "minority_smaller_k": ClaimSpec(
        "a CNN generally uses fewer features (CE) to distinguish minority classes than "
        "majority classes (K = 2 covers classes 0-3 about 60 % of the time, 6-9 over 90 %)",
        "§5.3, Fig 3",
        "minority-group - majority-group mean class top-K coverage at the smallest K (the "
        "paper's bias-free logit and prediction)",
        "> 0",
        "RQ3: minority covered with smaller K",
        "fragility.analysis.rq3:minority_smaller_k",
        "K = {k}: minority group ({minority_group}) covers {minority:.3f}, majority group "
        "({majority_group}) {majority:.3f}; {changed} of {n} training predictions change "
        "class without the bias",
        "train",
        {_CE: PaperValue(0.30, "K = 2: classes 0-3 about 60 %, 6-9 over 90 % (Fig 3)", False)},
    ),
    "fig3_trend": ClaimSpec(
        "the minority-over-majority coverage trend is the imbalance's: on balanced data there "
        "is no clear pattern at K = 2-3, on imbalanced data a clear one (the abstract: the "
        "number of class top-K CE varies with whether the same class is balanced or "
        "imbalanced)",
        "§5.3, Fig 3",
        "(minority-group - majority-group coverage at the smallest K) of the imbalanced model "
        "- the same of its balanced partner, with the imbalanced split's groups",
        "> 0",
        "Fig 3: the coverage trend comes with the imbalance",
        "fragility.analysis.rq3:fig3_trend",
        "K = {k}: minority - majority group coverage {trend:+.3f} imbalanced, "
        f"{{partner_trend:+.3f}} balanced ({_PARTNER})",
        "partner",
        {
            _CE: PaperValue(
                None,
                "imbalanced K = 2: classes 0-3 about 60 %, 6-9 over 90 %; balanced: no clear "
                "pattern at K = 2-3, K = 7 over 97 % for every class (Fig 3)",
                False,
            )
        },
        partner=True,
    ),
    "majority_ce_smaller": ClaimSpec(
        "the majority class's largest class-mean ce is at least 2X smaller than the other classes'",
        "§5.4, Table 3",
        "log(others' mean / majority largest class-mean ce) - log 2, every class drawn down "
        "to the smallest class's size",
        f"ratio >= {MIN_RATIO:g}",
        "RQ4 Table 3: majority's largest mean ce 2x smaller",
        "fragility.analysis.rq4:majority_ce_smaller",
        "majority {majority:.3f}, others' mean {others:.3f} (ratio {ratio:.2f}; all "
        "images: {majority_all:.3f} and {others_all:.3f}, ratio {ratio_all:.2f})",
        "train",
        _paper_values("table3", _ratio("largest_mean_ce"), _ratio_text("largest_mean_ce")),
        size_matched=True,
    ),
    "majority_share_smaller": ClaimSpec(
        "the majority class's largest ce contributes 2-4 times less to its logit than the "
        "other classes' largest",
        "§5.4, Table 4",
        "log(others' mean / majority largest single-ce share of the bias-free logit) - log 2",
        f"ratio >= {MIN_RATIO:g}",
        "RQ4 Table 4: majority's largest logit share 2x smaller",
        "fragility.analysis.rq4:majority_share_smaller",
        "majority {majority:.3f}, others' mean {others:.3f} (ratio {ratio:.2f}; with the "
        "bias: ratio {ratio_with_bias:.2f})",
        "train",
        _paper_values("table4", _ratio("largest_share"), _ratio_text("largest_share")),
    ),
    "fig45_magnitude": ClaimSpec(
        "the largest class-mean ce are about three times larger when the training set is "
        "imbalanced (the largest class ce spans 1.8-9.1 imbalanced, 1.5-3.4 balanced)",
        "§5.4, Figs 4 and 5",
        "log(mean over classes of each class's largest class-mean ce, imbalanced / balanced), "
        "the balanced model's classes drawn down to the imbalanced counts",
        "> 0",
        "Figs 4/5: largest ce larger when imbalanced",
        "fragility.analysis.rq4:fig45_magnitude",
        "mean largest class-mean ce {imbalanced:.3f} (range {imbalanced_range}) imbalanced, "
        "{balanced:.3f} (range {balanced_range}) balanced; as a share of the class's logit "
        f"log ratio {{logit_normalised:+.3f}} ({_PARTNER})",
        "partner",
        {
            _CE: PaperValue(
                None,
                "largest class ce 1.8-9.1 imbalanced, 1.5-3.4 balanced: "
                "'approx. triple' (Figs 4, 5)",
                False,
            )
        },  # fmt: skip
        size_matched=True,
        partner=True,
    ),
    "fig6_shares": ClaimSpec(
        "fewer ce carry more of the logit when the training set is imbalanced: no single ce "
        "above 26 % of the logit balanced, five classes above 35 % imbalanced",
        "§5.4, Fig 6",
        "log(mean over classes of the class-mean top-1 share of the bias-free logit, "
        "instances with logit > 0, imbalanced / balanced)",
        "> 0",
        "Fig 6: top ce's share larger when imbalanced",
        "fragility.analysis.rq4:fig6_shares",
        "mean top-1 share {imbalanced:.3f} imbalanced ({above_35} classes above 35 %), "
        f"{{balanced:.3f}} balanced ({{balanced_above_26}} above 26 %) ({_PARTNER})",
        "partner",
        {
            _CE: PaperValue(
                None,
                "5 of 10 classes above 35 % imbalanced, none above 26 % balanced (Fig 6)",
                False,
            )
        },  # fmt: skip
        partner=True,
    ),
    "minority_ce_larger": ClaimSpec(
        "the single largest ce of the extreme minority classes (6 to 9) average 8.3, those of "
        "the classes with more examples (0 to 5) only 2.6",
        "§5.4",
        "log(minority group's mean largest class-mean ce / the other classes'), every class "
        "drawn down to the smallest class's size",
        "> 0",
        "§5.4: minority's largest ce above the others'",
        "fragility.analysis.rq4:minority_ce_larger",
        "minority group ({minority_group}) {minority:.3f}, other classes {others:.3f} (all "
        "images: {minority_all:.3f} and {others_all:.3f})",
        "train",
        {_CE: PaperValue(math.log(8.3 / 2.6), "8.3 (classes 6-9) vs 2.6 (0-5)")},
        size_matched=True,
    ),
    "majority_weights_larger": ClaimSpec(
        "the sum of the majority class's ten largest weight magnitudes exceeds the minority "
        "class's",
        "§5.5, Fig 7",
        "majority - minority sum of the ten largest |W|",
        "> 0",
        "RQ5: majority's top-10 |W| sum larger",
        "fragility.analysis.rq5:majority_weights_larger",
        "top-10 |W| sum: majority {majority:.3f}, minority {minority:.3f}",
        "model",
        _paper_values(
            "rq5",
            lambda t: t["majority_top_abs_w_sum"] - t["minority_top_abs_w_sum"],
            lambda t: f"{t['majority_top_abs_w_sum']:.2f} vs {t['minority_top_abs_w_sum']:.2f}",
        ),
        dimensionless=False,
        heads=("linear",),
        head_reason=_COSINE_ROWS,
    ),
    "ce_far_above_weights": ClaimSpec(
        "the magnitude of the weights does not account for the large ce: the largest mean ce "
        "is far larger than the largest mean weight",
        "§5.5",
        "log(largest class-mean ce / largest |W|) - log 2",
        f"ratio >= {FAR_LARGER:g}",
        "RQ5: largest mean ce far above largest |W|",
        "fragility.analysis.rq5:ce_far_above_weights",
        "largest class-mean ce {largest_mean_ce:.3f}, largest |W| {largest_abs_w:.3f} "
        "(ratio {ratio:.2f})",
        "train",
        _paper_values(
            "rq5",
            lambda t: _log_excess(t["largest_mean_ce"] / t["largest_abs_w"], FAR_LARGER),
            lambda t: (
                f"largest mean ce {t['largest_mean_ce']:g}, largest mean W {t['largest_abs_w']:g}"
            ),
            printed=lambda model: model != _CE,  # CIFAR-10 CE: "greater than 8.0", "approx. 1.2"
        ),
        heads=("linear",),
        head_reason=_COSINE_SCALE,
    ),
    "minority_features_frequent": ClaimSpec(
        "minority classes have a few top-K features present in nearly all their instances "
        "(over 90 %), the majority class none above 67 %",
        "§5.6, Fig 8",
        "minority-group - majority-group share of a class's instances holding its most "
        "frequent top-K feature, every class drawn down to the smallest predicted class's "
        "size (the paper's prediction)",
        "> 0",
        "RQ6 Fig 8: minority's top feature more frequent",
        "fragility.analysis.rq6:minority_features_frequent",
        "most frequent top-{k} feature in {minority:.2f} of the minority group's instances, "
        "{majority:.2f} of the majority group's ({size} a class; all instances: "
        "{minority_all:.2f} and {majority_all:.2f})",
        "train",
        {
            _CE: PaperValue(
                0.23,
                "class 0: none above 67 %; classes 8, 9: 4-5 features above 90 % (Fig 8)",
                False,
            )
        },  # fmt: skip
        size_matched=True,
    ),
    "majority_needs_more_members": ClaimSpec(
        "it requires significantly more class top-K FE to describe the majority class than "
        "the minority class",
        "§5.6, Fig 9",
        "majority - minority class top-K members needed to cover every instance, the "
        "majority drawn down to the minority's predicted size (the paper's prediction)",
        "> 0",
        "RQ6 Fig 9: majority needs more top-K members",
        "fragility.analysis.rq6:majority_needs_more_members",
        "members needed: majority {majority:.1f} ({size} instances; all {majority_n}: "
        "{majority_all:.0f}), minority {minority:.0f}",
        "train",
        {
            model: PaperValue(None, "more for the majority (Fig 9; no numbers printed)", False)
            for model in PAPER_MODELS
        },  # fmt: skip
        dimensionless=False,
        size_matched=True,
    ),
    "tp_closer_than_fp": ClaimSpec(
        "test true positives keep the training FE means, false positives do not "
        "(FB of training vs TP means far below training vs FP means)",
        "§5.7, Fig 10",
        "FB(FP) - FB(TP subsampled per class to the FP group's size), mean over "
        f"{N_MATCHED_DRAWS} seeded draws",
        "> 0",
        "RQ7: FB(TP) < FB(FP), size-matched",
        "fragility.analysis.rq7:tp_closer_than_fp",
        "FB(FP) {fb_fp:.2f} vs size-matched FB(TP) {fb_tp:.2f} (all TP: {fb_tp_all:.2f})",
        "test",
        _paper_values(
            "rq7",
            lambda t: t["frobenius_train_vs_fp"] - t["frobenius_train_vs_tp"],
            lambda t: (
                f"FB(TP) {t['frobenius_train_vs_tp']:g}, FB(FP) "
                f"{t['frobenius_train_vs_fp']:g} (all TP, not size-matched)"
            ),
        ),
        dimensionless=False,
        size_matched=True,
    ),
    "identity_overlap_ce": ClaimSpec(
        "the top-10 CE identities of train and test TP agree (95 %), of train and FP much "
        "less (39 %)",
        "§5.7",
        "overlap(train, TP) - overlap(train, FP) of the class top-10 CE identities, TP drawn "
        "per class down to the FP count; an overlap divides by the smaller set",
        "> 0",
        "RQ7: CE identities train~TP more than train~FP",
        "fragility.analysis.rq7:identity_overlap_ce",
        "CE top-10 overlap: train~TP {tp:.2f} (size-matched; all TP {tp_all:.2f}), train~FP "
        "{fp:.2f}",
        "test",
        {_CE: PaperValue(0.95 - 0.39, "95 % vs 39 %")},
        size_matched=True,
    ),
    "identity_overlap_fe": ClaimSpec(
        "the top-10 FE identities of train and test TP agree (96 %), of train and FP less (70 %)",
        "§5.7",
        "overlap(train, TP) - overlap(train, FP) of the class top-10 FE identities, TP drawn "
        "per class down to the FP count; an overlap divides by the smaller set",
        "> 0",
        "RQ7: FE identities train~TP more than train~FP",
        "fragility.analysis.rq7:identity_overlap_fe",
        "FE top-10 overlap: train~TP {tp:.2f} (size-matched; all TP {tp_all:.2f}), train~FP "
        "{fp:.2f}",
        "test",
        {_CE: PaperValue(0.96 - 0.70, "96 % vs 70 %")},
        size_matched=True,
    ),
    "fig10_direction": ClaimSpec(
        "on false positives many of the minority classes' top fe means are approx. half their "
        "training values",
        "§5.7, Fig 10",
        "log(TP / FP mean of the minority group's top-10 fe, the features chosen on the "
        "training means); TP and FP are both test images",
        "> 0",
        "Fig 10: minority's top fe lower on false positives",
        "fragility.analysis.rq7:fig10_direction",
        "minority group's top-10 fe mean: TP {tp:.3f}, FP {fp:.3f}, train {train:.3f} "
        "(log train/FP {train_over_fp:+.3f}; {classes} classes with TP and FP)",
        "test",
        {
            _CE: PaperValue(
                None,
                "minority top fe means on false positives approx. half their "
                "training values (Fig 10)",
                False,
            )
        },  # fmt: skip
    ),
}
PREMISE_TABLE = "table2"  # the premise (every class's train accuracy) is read from it
