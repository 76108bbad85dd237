"""The study's outputs, each declared once: the per-run tables of every research question,
the tables over the study's runs, and the figures with their captions.

The workflow's rules (``rules/*.smk``), its targets and the report are generated from these
declarations. Each entry names the function that makes it by import path
(``"package.module:function"``, :func:`fragility.catalog.resolve`), so adding an output is
one entry here and one function there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunTables:
    """The tables one research question writes for a model folder (``{rq}/{table}.{csv,
    parquet}``), the model files it reads, and ``build``, the function that makes them:
    ``build(inputs, *, ks, k_fe) -> {table: pa.Table}`` on the folder's
    :class:`~fragility.analysis.inputs.RunInputs`."""

    tables: tuple[str, ...]
    reads: tuple[str, ...]
    what: str
    build: str


_MODEL = ("classifier", "metrics")  # class count, names and training class sizes
RUN_TABLES: dict[str, RunTables] = {
    "rq2": RunTables(
        ("per_class_accuracy", "table2", "accuracy_over_epochs", "training_dynamics"),
        ("train", "test", *_MODEL, "history"),
        "train and test accuracy per class, over epochs, and the training dynamics",
        build="fragility.analysis.rq2:run_tables",
    ),
    "rq3": RunTables(
        ("topk_coverage", "smallest_k", "group_coverage"),
        ("train", *_MODEL),
        "how many classification embeddings decide a prediction",
        build="fragility.analysis.rq3:run_tables",
    ),
    "rq4": RunTables(
        ("class_mean_ce_top10", "table3", "topk_logit_share", "table4"),
        ("train", *_MODEL),
        "size of the largest classification embeddings and their share of the logit",
        build="fragility.analysis.rq4:run_tables",
    ),
    "rq5": RunTables(
        ("top_weights", "weight_sums"),
        ("train", *_MODEL),
        "the classifier's largest weights against the class-mean ce",
        build="fragility.analysis.rq5:run_tables",
    ),
    "rq6": RunTables(
        ("class_topk_members", "members_to_cover", "class_mean_fe_top10", "diversity"),
        ("train", *_MODEL),
        "which feature embeddings describe a class's instances",
        build="fragility.analysis.rq6:run_tables",
    ),
    "rq7": RunTables(
        ("fe_means_top10", "generalization_gap", "top_feature_overlap"),
        ("train", "test", *_MODEL),
        "training FE means against the test true and false positives'",
        build="fragility.analysis.rq7:run_tables",
    ),
}
# RQ1 re-trains a classifier on the pool FE of an imbalanced run (rq1/retrained.*)
RETRAIN_READS = ("pool", "test", "classifier")
# the research questions run on every remedied model by default (any other is a target too)
REMEDY_RQS = ("rq3", "rq4", "rq7")
# per-run tables made from the training history: empty for a model trained elsewhere, so its
# targets leave out the figures drawn from them
HISTORY_TABLES = ("rq2/accuracy_over_epochs", "rq2/training_dynamics")


def history_figure(name: str) -> bool:
    """Whether per-run figure ``name`` draws only tables of the training history."""
    spec = RUN_FIGURES[name]
    return all(f"{spec.rq}/{table}" in HISTORY_TABLES for table in spec.tables)


def bootstrap_reads(imbalanced: bool) -> tuple[str, ...]:
    """The model files one run's bootstrap reads (the balanced partner's test embeddings
    come on top for Table 1's claim)."""
    base = ("train", "test", "classifier", "metrics")
    return (*base, "retrained_predictions") if imbalanced else base


# -- cross-run tables (results/tables/{name}.*, {name}_by_seed.*) -----------------------------


@dataclass(frozen=True)
class CrossRunTable:
    """A table over the study's runs: the files it reads of every run it covers (all runs,
    or the imbalanced ones), of every balanced run (Table 1's balanced models), the keys
    beyond (dataset, imbalance, loss) its summary over seeds groups by, and ``build``, the
    function that makes its by-seed table: ``build(entry, runs, all_runs) -> pa.Table``, one
    row per run it covers (:data:`fragility.analysis.runs.RunFiles`), given this entry and
    every run of the study."""

    reads: tuple[str, ...]
    description: str
    build: str = "fragility.analysis.runs:stack_reads"  # the first table it reads, stacked
    imbalanced_only: bool = False
    balanced_reads: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()


CROSS_RUN_TABLES: dict[str, CrossRunTable] = {
    "table1": CrossRunTable(
        ("metrics", "retrained", "bootstrap"),
        "RQ1: test BAC of the balanced, the imbalanced and the re-trained-classifier model",
        imbalanced_only=True,
        balanced_reads=("metrics", "bootstrap"),
        build="fragility.analysis.rq1:table1_by_seed",
    ),
    "table2": CrossRunTable(
        ("rq2/table2", "bootstrap"),
        "RQ2: train and test accuracy of the largest and the smallest class",
        build="fragility.analysis.rq2:table2_by_seed",
    ),
    "rq3_coverage": CrossRunTable(
        ("rq3/group_coverage",),
        "RQ3: mean class top-K coverage ratio of the majority and the minority group (the "
        "largest and the smallest 40 % of the classes), per K, bias-free and with the bias",
        group_by=("k",),
    ),
    "rq3_smallest_k": CrossRunTable(
        ("rq3/smallest_k",),
        "RQ3: the smallest K whose top-K ce cover the threshold share of all instances",
    ),
    "table3": CrossRunTable(
        ("rq4/table3",),
        "RQ4: largest class-mean ce of the majority class against the other classes",
    ),
    "table4": CrossRunTable(
        ("rq4/table4",),
        "RQ4: largest share of the logit from one ce, majority against the other classes",
    ),
    "rq5_weight_sums": CrossRunTable(
        ("rq5/weight_sums",),
        "RQ5: sums of the ten largest absolute weights of the majority and the minority "
        "class, and the largest weight against the largest class-mean ce",
    ),
    "fig9_members_to_cover": CrossRunTable(
        ("rq6/members_to_cover",),
        "RQ6 / Fig 9: class top-K members needed to cover every instance, majority vs minority",
        group_by=("role",),
        build="fragility.analysis.rq6:members_by_seed",
    ),
    "rq6_diversity": CrossRunTable(
        ("rq6/diversity",),
        "RQ6 / Figs 8-9: share of instances holding the class's most frequent top-K feature "
        "(majority and minority group) and top-K members needed (majority, minority class)",
    ),
    "rq7_generalization": CrossRunTable(
        ("rq7/generalization_gap",),
        "RQ7: Frobenius distance of train FE means to test TP and FP means; feature overlap",
    ),
    "training_dynamics": CrossRunTable(
        ("rq2/training_dynamics",),
        "The lecture's training progress of every run side by side: majority, minority and "
        "mean over classes per epoch",
        group_by=("epoch", "role"),
        build="fragility.analysis.dynamics:dynamics_by_seed",
    ),
}

# The remedies comparison: every treated run and each of its remedied models
REMEDY_TABLE = "remedies"
CLAIMS_TABLE = "claims"  # every claim on every imbalanced run group (tables/claims.*)
REMEDY_READS = ("metrics", "test")  # of every run and of every remedied model


@dataclass(frozen=True)
class Figure:
    """A figure: the research question it belongs to, the tables it draws (per-run tables of
    ``rq`` for a per-run figure, cross-run tables for a cross-run one), its caption (what it
    shows and which claim of the paper it tests) and ``plot``, the function that draws it:
    ``plot(tables, out_png, title)``, ``tables`` by name."""

    rq: str
    tables: tuple[str, ...]
    caption: str
    plot: str


RUN_FIGURES: dict[str, Figure] = {
    "fig2_class_accuracy": Figure(
        "rq2",
        ("per_class_accuracy",),
        "Training and test accuracy of every class of the kept checkpoint, with the number of "
        "training images per class (dashed, right axis). Tests the paper's Fig 2 claim that an "
        "imbalanced model nearly memorises every training class but generalises much worse to "
        "the test images of minority classes.",
        plot="fragility.plotting.run_figures:plot_class_accuracy",
    ),
    "accuracy_over_epochs": Figure(
        "rq2",
        ("accuracy_over_epochs",),
        "Per-class accuracy of the majority and the minority class, and the mean over all "
        "classes, at every training epoch (train = running accuracy on augmented batches). "
        "Shows when the minority class's train-test gap of Fig 2 opens and which epoch was kept.",
        plot="fragility.plotting.run_figures:plot_accuracy_over_epochs",
    ),
    "training_dynamics": Figure(
        "rq2",
        ("training_dynamics",),
        "The lecture's training progress: train accuracy, test accuracy and the mean norm of "
        "the loss gradient with respect to FE (log scale) of the majority and the minority "
        "class, and the mean over classes, per epoch. Look for the majority fitted first and "
        "the minority under-fitted early, then a peak of the minority's gradient as it is "
        "pushed across the boundary, followed by train accuracy far above test accuracy "
        "(over-fitting); a balanced training progress (MFW) keeps the curves together.",
        plot="fragility.plotting.dynamics:plot_training_dynamics",
    ),
    "fig3_topk_coverage": Figure(
        "rq3",
        ("topk_coverage", "smallest_k"),
        "Share of each predicted class's training instances whose K largest classification "
        "embeddings already beat the strongest other class's logit, for several K, with the "
        "paper's bias-free logits (sum of ce, no bias). Tests the paper's Fig 3 claims that a "
        "few features decide (K = 7 of 64 covers over 94 % of predictions) and that minority "
        "classes need fewer.",
        plot="fragility.plotting.run_figures:plot_topk_coverage",
    ),
    "fig4_class_mean_ce": Figure(
        "rq4",
        ("class_mean_ce_top10",),
        "The ten largest class-mean classification embeddings of each class (own-class row, "
        "training set), largest first. The paper's Figs 4 (balanced) and 5 (imbalanced): "
        "minority classes should show fewer but larger values than the majority class.",
        plot="fragility.plotting.run_figures:plot_class_mean_ce",
    ),
    "fig6_topk_logit_share": Figure(
        "rq4",
        ("topk_logit_share",),
        "Mean share of an instance's own-class logit contributed by its largest, second "
        "largest, ... classification embedding, per class (training set). Tests the paper's "
        "Fig 6 / Table 4 claim that minority-class logits rest on fewer, larger contributions.",
        plot="fragility.plotting.run_figures:plot_topk_logit_share",
    ),
    "fig7_top_weights": Figure(
        "rq5",
        ("top_weights",),
        "The ten largest classifier weight magnitudes of each class. Tests the paper's Fig 7 "
        "claim that majority classes have more large weights than minority classes, while "
        "weights stay far smaller than the class-mean ce of Fig 4.",
        plot="fragility.plotting.run_figures:plot_top_weights",
    ),
    "fig8_member_frequency": Figure(
        "rq6",
        ("class_topk_members",),
        "For each predicted class, the share of its training instances whose top-K feature "
        "embeddings contain each of the class's ten most frequent features. Tests the paper's "
        "Fig 8 claim that minority classes are described by a few features present in nearly "
        "all their instances, the majority class by more varied ones.",
        plot="fragility.plotting.run_figures:plot_member_frequency",
    ),
    "fig9_members_to_cover": Figure(
        "rq6",
        ("members_to_cover",),
        "How many of a class's most frequent top-K features are needed before every training "
        "instance of the class holds at least one, per predicted class, with the training "
        "class sizes (dashed). The per-run view of the paper's Fig 9: the majority class "
        "should need more than the minority class.",
        plot="fragility.plotting.run_figures:plot_members_to_cover",
    ),
    "fig10a_class_mean_fe": Figure(
        "rq6",
        ("class_mean_fe_top10",),
        "The ten largest class-mean feature embeddings of each class (training set). The "
        "paper's Fig 10a: their scale follows the class-mean ce of Fig 4 rather than the "
        "weights of Fig 7, so features, not weights, drive the large minority ce.",
        plot="fragility.plotting.run_figures:plot_class_mean_fe",
    ),
    "fig10_fe_means": Figure(
        "rq7",
        ("fe_means_top10",),
        "Mean feature embeddings at each class's ten largest training-set features, over "
        "training instances (a), test true positives (b) and test false positives (c). Tests "
        "the paper's Fig 10 claim that true positives keep the training magnitudes while "
        "false positives fall well below them.",
        plot="fragility.plotting.run_figures:plot_fe_means",
    ),
}

CROSS_RUN_FIGURES: dict[str, Figure] = {
    "training_dynamics": Figure(
        "rq2",
        ("training_dynamics",),
        "The lecture's training progress for ERM (ce) and every loss-level remedy of the same "
        "dataset and imbalance, side by side: train accuracy, test accuracy and FE-gradient "
        "norm per epoch of the majority and the minority class and the mean over classes "
        "(mean over seeds). Compare how far the minority lags in train accuracy early, how "
        "high its gradient peaks, and how wide its train-test gap ends.",
        plot="fragility.plotting.dynamics:plot_cross_dynamics",
    ),
    "table1_bac": Figure(
        "rq1",
        ("table1",),
        "Test balanced accuracy (mean over seeds, whiskers the 95 % interval named under the "
        "figure) of the balanced model, the imbalanced model, and the imbalanced model's "
        "feature extractor with a classifier re-trained on balanced data. Tests the paper's "
        "Table 1 claim: imbalanced < re-trained < balanced, i.e. the extractor, not only the "
        "classifier, is damaged by imbalance.",
        plot="fragility.plotting.cross_run:plot_cross_bac",
    ),
    "fig9_members_to_cover": Figure(
        "rq6",
        ("fig9_members_to_cover",),
        "How many of a class's most frequent top-K features are needed before every training "
        "instance of the class holds one of them, for the majority and the minority class of "
        "each run group (mean over seeds, whiskers a t-interval where there are 2 or more). "
        "The paper's Fig 9: the majority class needs more, its instances are described by "
        "more varied features.",
        plot="fragility.plotting.cross_run:plot_cross_members",
    ),
}
REMEDY_FIGURE = "remedies_bac_vs_cost"


# -- fragility curves: a statistic against the imbalance ratio R ------------------------------


@dataclass(frozen=True)
class CurveFigure:
    """One fragility-curve figure: a panel per ``(statistic, panel title)`` in ``panels``
    (statistics of :data:`fragility.analysis.curves.STATISTICS`), or per statistic of the
    table ``every_stat_of``, sharing the y axis ``ylabel``; ``caption`` says what it shows and
    which claim it tests; ``plot`` draws it: ``plot(entry, tables, dataset, loss, out_png)``
    from the curve tables of its sources."""

    panels: tuple[tuple[str, str], ...]
    ylabel: str
    caption: str
    balanced_stat: str | None = None  # the statistic whose R = 1 level every panel shows
    # a source whose every statistic is a panel, compared with 0 (``zero``, its legend label)
    # rather than with the balanced model: the remedies' gains, the claims' differences
    every_stat_of: str | None = None
    zero: str = ""
    share_y: bool = True  # False when panels measure different things
    plot: str = "fragility.plotting.curves:draw_curves"


_BAND = (
    "Lines are means over seeds, bands their 95 % t-intervals; the dashed line and grey band "
    "are the balanced model (R = 1; cross-entropy's when the loss has no balanced run)."
)


_ROLES = "minority class", "majority class"


_GROUPS = "minority group", "majority group"


_OTHERS = "other classes (mean)", "majority class"


CURVE_FIGURES: dict[str, CurveFigure] = {
    "rq1_bac": CurveFigure(
        (("bac", "imbalanced model"), ("bac_retrained", "re-trained classifier")),
        "test balanced accuracy",
        "RQ1 (the paper's Table 1) against the imbalance ratio: test BAC of the imbalanced "
        "model and of its feature extractor with a classifier re-trained on balanced data. "
        "Tests 'imbalanced < re-trained < balanced': from which R is the extractor itself "
        f"damaged? {_BAND}",
        balanced_stat="bac",
    ),
    "rq2_gaps": CurveFigure(
        tuple(zip(("minority_gap", "majority_gap"), _ROLES)),
        "train − test accuracy",
        "RQ2 (Table 2) against the imbalance ratio: train minus test accuracy of the minority "
        "and of the majority class. Tests 'minority test accuracy far below its train "
        f"accuracy': does the minority's gap grow smoothly with R or appear at a threshold? "
        f"{_BAND}",
    ),
    "rq3_smallest_k": CurveFigure(
        (("smallest_k", "all training predictions"),),
        "smallest K covering 90 %",
        "RQ3 against the imbalance ratio: the smallest K whose bias-free top-K ce cover 90 % "
        f"of the training predictions. Tests 'a few features decide' (K ≪ H: K ≤ H/5). {_BAND}",
    ),
    "rq3_coverage": CurveFigure(
        tuple(zip(("coverage_minority", "coverage_majority"), _GROUPS)),
        "coverage at smallest K",
        "RQ3 against the imbalance ratio: mean class top-K coverage ratio of the minority and "
        "of the majority group (the smallest and the largest 40 % of the classes) at the "
        "smallest configured K, bias-free logits. Tests 'minority classes are covered with "
        f"smaller K'. {_BAND}",
    ),
    "rq4_largest_ce": CurveFigure(
        tuple(zip(("others_largest_mean_ce", "majority_largest_mean_ce"), _OTHERS)),
        "largest class-mean ce",
        "RQ4 (Table 3) against the imbalance ratio: the majority class's largest class-mean "
        "ce and the mean of the other classes' largest. Tests 'the majority's is at least 2x "
        f"smaller'. {_BAND}",
    ),
    "rq4_logit_share": CurveFigure(
        tuple(zip(("others_largest_share", "majority_largest_share"), _OTHERS)),
        "largest logit share",
        "RQ4 (Table 4) against the imbalance ratio: the largest share of the logit from one "
        "ce, the majority class's and the other classes' mean. Tests 'the majority's is 2-4 "
        f"times smaller'. {_BAND}",
    ),
    "rq5_weight_sums": CurveFigure(
        tuple(zip(("minority_weight_sum", "majority_weight_sum"), _ROLES)),
        "sum of top-10 |W|",
        "RQ5 (Fig 7) against the imbalance ratio: the sum of the ten largest absolute "
        "classifier weights of the minority and of the majority class. Tests 'the majority's "
        f"sum is larger'. {_BAND}",
    ),
    "rq6_top_share": CurveFigure(
        tuple(zip(("top_share_minority", "top_share_majority"), _GROUPS)),
        "share of instances",
        "RQ6 (Fig 8) against the imbalance ratio: the share of a class's training instances "
        "whose top-K features hold the class's most frequent one, minority and majority group "
        f"means. Tests 'minority classes have a few features present in nearly all their "
        f"instances'. {_BAND}",
    ),
    "rq7_fb": CurveFigure(
        (("fb_tp", "FB(TP), size-matched"), ("fb_fp", "FB(FP), false positives")),
        "Frobenius distance",
        "RQ7 against the imbalance ratio: Frobenius distance between the training FE means "
        "and the test false positives' means (FB(FP)) at each class's ten top features, and "
        "the same for true positives drawn per class to the false positives' number (FB(TP), "
        f"mean over draws). Tests 'FB(TP) < FB(FP)' beyond sample size. {_BAND}",
    ),
    "remedy_gains": CurveFigure(
        (),
        "test BAC gain",
        "Each remedy's test-BAC gain over the untreated model of the same run and seed "
        "against the imbalance ratio, feature-space and loss-level alike: does a remedy help "
        "more the more imbalanced the data? Lines are means over seeds, bands their 95 % "
        "t-intervals; the dashed line is no gain.",
        every_stat_of=REMEDY_TABLE,
        zero="no gain",
    ),
    "claims": CurveFigure(
        (),
        "signed difference",
        "Each claim of the paper against the imbalance ratio: its signed difference (positive "
        "on the claimed side) with the 95 % interval its verdict rests on (a t-interval over "
        "seeds from three seeds on, else the stratified bootstrap of one run). The claim holds "
        "at an R where the whole band lies above the dashed zero line: the figure form of "
        "claims_smallest_ratio.",
        every_stat_of=CLAIMS_TABLE,
        zero="claim boundary",
        share_y=False,
    ),
}
