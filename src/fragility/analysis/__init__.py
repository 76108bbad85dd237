"""Pure-numpy analyses behind the seven research questions (no I/O, no plotting).

Inputs are the arrays stored in the embedding Parquet files: ``fe`` (N, H), ``logits``
(N, C), ``labels``/``preds`` (N,), classifier ``W`` (C, H) and ``bias`` (C,), plus
``normed`` for a cosine (LDAM) classifier.
"""

from fragility.analysis.ce import (
    class_means,
    classification_embeddings,
    own_class_ce,
    prepare_fe,
    reconstruct_logits,
    reference_and_alternative,
    top_n_per_row,
)
from fragility.analysis.inputs import majority_minority
from fragility.analysis.rq1 import evaluate_linear, retrain_classifier, retrained_bac, table1
from fragility.analysis.rq2 import per_class_train_test_accuracy, table2
from fragility.analysis.rq3 import (
    CoverageResult,
    class_topk_coverage,
    rq3_coverage,
    smallest_k,
    topk_coverage_matrix,
)
from fragility.analysis.rq4 import (
    class_mean_own_ce,
    table3,
    table4,
    top_class_mean_ce,
    topk_logit_share,
)
from fragility.analysis.rq5 import largest_weight_vs_ce, top_abs_weights, weight_sums
from fragility.analysis.rq6 import (
    class_topk_members,
    instance_topk_fe,
    member_counts,
    member_order,
    members_to_cover,
    top_class_mean_fe,
)
from fragility.analysis.rq7 import (
    Rq7Result,
    frobenius_gap,
    identity_overlap,
    rq7_generalization,
    top_identities,
)
from fragility.analysis.tables import TABLES, RunInputs, rq_tables

__all__ = [
    "TABLES",
    "RunInputs",
    "CoverageResult",
    "Rq7Result",
    "class_mean_own_ce",
    "class_means",
    "class_topk_coverage",
    "class_topk_members",
    "classification_embeddings",
    "evaluate_linear",
    "frobenius_gap",
    "identity_overlap",
    "instance_topk_fe",
    "largest_weight_vs_ce",
    "majority_minority",
    "member_counts",
    "member_order",
    "members_to_cover",
    "own_class_ce",
    "per_class_train_test_accuracy",
    "prepare_fe",
    "reconstruct_logits",
    "reference_and_alternative",
    "retrain_classifier",
    "retrained_bac",
    "rq3_coverage",
    "rq_tables",
    "rq7_generalization",
    "smallest_k",
    "table1",
    "table2",
    "table3",
    "table4",
    "top_abs_weights",
    "top_class_mean_ce",
    "top_class_mean_fe",
    "top_identities",
    "top_n_per_row",
    "topk_coverage_matrix",
    "topk_logit_share",
    "weight_sums",
]
