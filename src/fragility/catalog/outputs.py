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

# The remedies comparison (SPEC section 5): every treated run and each of its remedied models
REMEDY_TABLE = "remedies"
REMEDY_READS = ("metrics", "test")  # of every run and of every remedied model


@dataclass(frozen=True)
class Figure:
    """A figure: the research question it belongs to, the tables it draws (per-run tables of
    ``rq`` for a per-run figure, cross-run tables for a cross-run one) and its caption (what
    it shows and which claim of the paper it tests)."""

    rq: str
    tables: tuple[str, ...]
    caption: str


RUN_FIGURES: dict[str, Figure] = {
    "fig2_class_accuracy": Figure(
        "rq2",
        ("per_class_accuracy",),
        "Training and test accuracy of every class of the kept checkpoint, with the number of "
        "training images per class (dashed, right axis). Tests the paper's Fig 2 claim that an "
        "imbalanced model nearly memorises every training class but generalises much worse to "
        "the test images of minority classes.",
    ),
    "accuracy_over_epochs": Figure(
        "rq2",
        ("accuracy_over_epochs",),
        "Per-class accuracy of the majority and the minority class, and the mean over all "
        "classes, at every training epoch (train = running accuracy on augmented batches). "
        "Shows when the minority class's train-test gap of Fig 2 opens and which epoch was kept.",
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
    ),
    "fig3_topk_coverage": Figure(
        "rq3",
        ("topk_coverage", "smallest_k"),
        "Share of each predicted class's training instances whose K largest classification "
        "embeddings already beat the strongest other class's logit, for several K, with the "
        "paper's bias-free logits (sum of ce, no bias). Tests the paper's Fig 3 claims that a "
        "few features decide (K = 7 of 64 covers over 94 % of predictions) and that minority "
        "classes need fewer.",
    ),
    "fig4_class_mean_ce": Figure(
        "rq4",
        ("class_mean_ce_top10",),
        "The ten largest class-mean classification embeddings of each class (own-class row, "
        "training set), largest first. The paper's Figs 4 (balanced) and 5 (imbalanced): "
        "minority classes should show fewer but larger values than the majority class.",
    ),
    "fig6_topk_logit_share": Figure(
        "rq4",
        ("topk_logit_share",),
        "Mean share of an instance's own-class logit contributed by its largest, second "
        "largest, ... classification embedding, per class (training set). Tests the paper's "
        "Fig 6 / Table 4 claim that minority-class logits rest on fewer, larger contributions.",
    ),
    "fig7_top_weights": Figure(
        "rq5",
        ("top_weights",),
        "The ten largest classifier weight magnitudes of each class. Tests the paper's Fig 7 "
        "claim that majority classes have more large weights than minority classes, while "
        "weights stay far smaller than the class-mean ce of Fig 4.",
    ),
    "fig8_member_frequency": Figure(
        "rq6",
        ("class_topk_members",),
        "For each predicted class, the share of its training instances whose top-K feature "
        "embeddings contain each of the class's ten most frequent features. Tests the paper's "
        "Fig 8 claim that minority classes are described by a few features present in nearly "
        "all their instances, the majority class by more varied ones.",
    ),
    "fig9_members_to_cover": Figure(
        "rq6",
        ("members_to_cover",),
        "How many of a class's most frequent top-K features are needed before every training "
        "instance of the class holds at least one, per predicted class, with the training "
        "class sizes (dashed). The per-run view of the paper's Fig 9: the majority class "
        "should need more than the minority class.",
    ),
    "fig10a_class_mean_fe": Figure(
        "rq6",
        ("class_mean_fe_top10",),
        "The ten largest class-mean feature embeddings of each class (training set). The "
        "paper's Fig 10a: their scale follows the class-mean ce of Fig 4 rather than the "
        "weights of Fig 7, so features, not weights, drive the large minority ce.",
    ),
    "fig10_fe_means": Figure(
        "rq7",
        ("fe_means_top10",),
        "Mean feature embeddings at each class's ten largest training-set features, over "
        "training instances (a), test true positives (b) and test false positives (c). Tests "
        "the paper's Fig 10 claim that true positives keep the training magnitudes while "
        "false positives fall well below them.",
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
    ),
    "table1_bac": Figure(
        "rq1",
        ("table1",),
        "Test balanced accuracy (mean over seeds, whiskers the 95 % interval named under the "
        "figure) of the balanced model, the imbalanced model, and the imbalanced model's "
        "feature extractor with a classifier re-trained on balanced data. Tests the paper's "
        "Table 1 claim: imbalanced < re-trained < balanced, i.e. the extractor, not only the "
        "classifier, is damaged by imbalance.",
    ),
    "fig9_members_to_cover": Figure(
        "rq6",
        ("fig9_members_to_cover",),
        "How many of a class's most frequent top-K features are needed before every training "
        "instance of the class holds one of them, for the majority and the minority class of "
        "each run group (mean over seeds, whiskers a t-interval where there are 2 or more). "
        "The paper's Fig 9: the majority class needs more, its instances are described by "
        "more varied features.",
    ),
}
REMEDY_FIGURE = "remedies_bac_vs_cost"
