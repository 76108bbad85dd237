# Fragility curves (docs/metrics-and-claims.md): every claim statistic and every remedy's gain against the
# imbalance ratio R, for runs that differ only in R (balanced = 1; exp and step are two
# families). Built for any study with a curve (get_curve_targets); each table and figure is a
# target of its own, and a figure reads only the by-seed tables of its statistics.


# One rule per curve table: a by-seed cross-run table -> mean and 95 % t-interval over seeds.
for source in curve_sources():

    rule:
        name:
            f"curve_table_{source}"
        input:
            LAYOUT.table(f"{source}_by_seed"),
        output:
            report(
                LAYOUT.table(f"curves/{source}", "csv"),
                caption="../report/curves.rst",
                category="Fragility curves",
                subcategory="tables",
            ),
            LAYOUT.table(f"curves/{source}"),
        log:
            LAYOUT.log("tables", "curves", source),
        params:
            source=source,
            caption=f"Fragility curve table of {source}: one row per dataset, imbalance family, ratio R and loss.",
            what="Each statistic's mean over seeds (column suffix _mean), its 95 % t-interval (_ci_low, _ci_high) and the number of seeds it was measured in (_n); R = 1 is the balanced model.",
        conda:
            "../envs/fragility.yaml"
        shadow:
            SHADOW
        threads: 1
        localrule: True
        script:
            "../workflow_scripts/curve_table.py"


# Every curve table side by side: one row per dataset, family, R and loss, every statistic.
rule curve_table_all:
    input:
        [LAYOUT.table(f"curves/{source}") for source in curve_sources()],
    output:
        report(
            LAYOUT.table("curves/all_statistics", "csv"),
            caption="../report/curves.rst",
            category="Fragility curves",
            subcategory="tables",
        ),
        LAYOUT.table("curves/all_statistics"),
    log:
        LAYOUT.log("tables", "curves", "all_statistics"),
    params:
        caption="Fragility curves: every claim statistic and every remedy's gain, one row per dataset, imbalance family, ratio R and loss (R = 1 is the balanced model).",
        what="Each statistic's mean over seeds (column suffix _mean), its 95 % t-interval (_ci_low, _ci_high) and the number of seeds it was measured in (_n); null where the statistic does not exist for that row (e.g. a remedy's gain on the balanced run).",
    shadow:
        SHADOW
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/curve_table_all.py"


rule curve_claims_smallest_ratio:
    input:
        LAYOUT.table("claims"),
    output:
        report(
            LAYOUT.table("curves/claims_smallest_ratio", "csv"),
            caption="../report/curves.rst",
            category="Fragility curves",
            subcategory="tables",
        ),
        LAYOUT.table("curves/claims_smallest_ratio"),
    log:
        LAYOUT.log("tables", "curves", "claims_smallest_ratio"),
    params:
        caption="Where each claim starts to hold: per claim, dataset, loss and imbalance family, the smallest ratio R whose verdict is 'holds' (its 95 % interval of the difference lies wholly on the claimed side), or 'never in the range'.",
        what="verdicts lists the verdict at every ratio tested; holds_at_every_larger_ratio says whether it keeps holding above that R.",
    shadow:
        SHADOW
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/curve_smallest_ratio.py"


rule plot_curve_figure:
    input:
        unpack(get_curve_figure_tables),
    output:
        report(
            LAYOUT.figure("curves/{dataset}/{loss}/{curve}"),
            caption="../report/curves.rst",
            category="Fragility curves",
            subcategory="{dataset} {loss}",
            labels={"figure": "{curve}", "curve": "{dataset}/{loss}"},
        ),
    log:
        LAYOUT.log("figures", "curves", "{dataset}", "{loss}", "{curve}"),
    params:
        caption=get_curve_caption,
        what="Curves of the runs of this dataset and loss that differ only in the imbalance ratio R.",
    wildcard_constraints:
        curve="|".join(CURVE_FIGURES),
    shadow:
        SHADOW
    conda:
        "../envs/fragility.yaml"
    threads: 1
    localrule: True
    script:
        "../workflow_scripts/plot_curve_figure.py"


# `snakemake curves`: the curve tables and figures and only what they need (no per-run
# figures, no remedied models' RQ analyses): the sweep preset's quickest route.
rule curves:
    input:
        get_curve_targets(),
