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
                caption="../report/curve_table.rst",
                category="Fragility curves",
                subcategory="tables",
            ),
            LAYOUT.table(f"curves/{source}"),
        log:
            LAYOUT.log("tables", "curves", source),
        params:
            source=source,
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
            caption="../report/curve_table_all.rst",
            category="Fragility curves",
            subcategory="tables",
        ),
        LAYOUT.table("curves/all_statistics"),
    log:
        LAYOUT.log("tables", "curves", "all_statistics"),
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
            caption="../report/curve_smallest_ratio.rst",
            category="Fragility curves",
            subcategory="tables",
        ),
        LAYOUT.table("curves/claims_smallest_ratio"),
    log:
        LAYOUT.log("tables", "curves", "claims_smallest_ratio"),
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
            caption="../report/curve_figure.rst",
            category="Fragility curves",
            subcategory="{dataset} {loss}",
            labels={"figure": "{curve}", "curve": "{dataset}/{loss}"},
        ),
    log:
        LAYOUT.log("figures", "curves", "{dataset}", "{loss}", "{curve}"),
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
