"""How a study lands on a cluster: batch submissions and login-node jobs, from a dry run.

    python bench/cluster_jobs.py [--configfile presets/paper.yaml] [--json out.json] [TARGET ...]

Plans the study under ``--profile profiles/slurm`` as a dry run in an empty temporary folder
(every job is planned; nothing is submitted, no SLURM is needed) and counts:

* **submissions**: the ``sbatch`` calls Snakemake would make: one per group job (the profile's
  ``groups:``) plus one per job outside every group that is not local;
* **local**: jobs that would run on the login node beside Snakemake (``localrule`` without a
  group); rules that run nothing (``all``, ``curves``) are not counted;
* each group job's kind (the group name up to its first ``_``), rules, resources.

It runs Snakemake in this process through its own command-line parser and reads the planned
DAG afterwards, so the count is Snakemake's own grouping, not a re-implementation of it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def plan(configfiles: list[str], targets: list[str], profile: str | None, workdir: Path):
    """The dry run's workflow object (its ``dag`` holds the planned jobs and groups)."""
    import snakemake.api
    from snakemake.cli import args_to_api, parse_args

    captured = {}
    original = snakemake.api.DAGApi.execute_workflow

    def execute_and_keep(self, *args, **kwargs):
        try:
            return original(self, *args, **kwargs)
        finally:
            captured["workflow"] = self.workflow_api._workflow

    argv = [  # targets (and options) first: --configfile takes every value up to the next option
        *targets, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
        "--dry-run", "--quiet", "all",
        *(["--profile", profile] if profile else []),
    ]  # fmt: skip
    if configfiles:
        argv += ["--configfile", *(str(Path(f).resolve()) for f in configfiles)]
    snakemake.api.DAGApi.execute_workflow = execute_and_keep
    try:
        parser, args = parse_args(argv)
        with contextlib.redirect_stdout(io.StringIO()):
            ok = args_to_api(args, parser)
    finally:
        snakemake.api.DAGApi.execute_workflow = original
    if not ok or "workflow" not in captured:
        raise SystemExit("the dry run failed (run it by hand to see why)")
    return captured["workflow"]


def job_summary(job) -> dict:
    return {"rule": job.rule.name, "wildcards": dict(job.wildcards_dict)}


def submitted_resources(group, workflow) -> dict:
    """What the group job's sbatch asks for. A dry run sizes group jobs as if they ran
    locally (every dependency level's needs added up); a submitted one takes the largest
    level's CPUs and memory and the levels' summed runtime."""
    from snakemake.resources import GroupResources

    return GroupResources.basic_layered(
        toposorted_jobs=group.toposorted,
        constraints=workflow.global_resources,
        run_local=False,
        additive_resources=["runtime"],
        sortby=["runtime"],
    )


def count(workflow) -> dict:
    """Submissions, local jobs and every group job of the planned DAG."""
    dag = workflow.dag
    groups, ungrouped, local = {}, [], []
    for job in dag.needrun_jobs(exclude_finished=False):
        group = dag.get_job_group(job)
        if group is not None:
            groups.setdefault(group.jobid, group)
        elif job.rule.norun:
            continue
        elif job.rule.name in workflow._localrules:  # is_local() says yes to all in a dry run
            local.append(job)
        else:
            ungrouped.append(job)
    group_rows = []
    for group in groups.values():
        resources = {
            k: v
            for k, v in submitted_resources(group, workflow).items()
            if k in ("mem_mb", "runtime", "cpus_per_task", "gres")
        }
        group_rows.append(
            {
                "group": group.groupid,
                "kind": group.groupid.split("_")[0],
                "rules": dict(sorted(Counter(j.rule.name for j in group.jobs).items())),
                "jobs": [job_summary(j) for j in group.jobs],
                "resources": resources,
            }
        )
    return {
        "submissions": len(groups) + len(ungrouped),
        "group_jobs": len(groups),
        "ungrouped_submissions": len(ungrouped),
        "local": len(local),
        "jobs": sum(len(g.jobs) for g in groups.values()) + len(ungrouped) + len(local),
        "groups_by_kind": dict(sorted(Counter(r["kind"] for r in group_rows).items())),
        "ungrouped_by_rule": dict(sorted(Counter(j.rule.name for j in ungrouped).items())),
        "local_by_rule": dict(sorted(Counter(j.rule.name for j in local).items())),
        "groups": group_rows,
    }


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("targets", nargs="*", help="targets (default: the study's `all`)")
    p.add_argument("--configfile", action="append", default=[], help="presets (repeatable)")
    p.add_argument("--profile", default=str(REPO / "profiles" / "slurm"), help="'' for none")
    p.add_argument(
        "--base-config",
        default=str(REPO / "config.yaml"),
        help="the study without --configfile, as the Snakefile reads config.yaml ('' for none)",
    )
    p.add_argument("--cores", type=int, help="Snakemake's --cores (default: the profiles')")
    p.add_argument("--json", help="write the counts (and every group job) to this file")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # a preset is the whole study (it names any base it extends); config.yaml only without one
    configfiles = args.configfile or ([args.base_config] if args.base_config else [])
    options = ["--cores", str(args.cores)] if args.cores else []
    with tempfile.TemporaryDirectory() as tmp:
        workflow = plan(configfiles, [*args.targets, *options], args.profile or None, Path(tmp))
        result = count(workflow)
    result["configfiles"] = args.configfile
    name = " + ".join(args.configfile) or "config.yaml"
    print(
        f"{name}: {result['jobs']} jobs -> {result['submissions']} submissions "
        f"({result['group_jobs']} group jobs {result['groups_by_kind']}, "
        f"{result['ungrouped_submissions']} single jobs {result['ungrouped_by_rule']}), "
        f"{result['local']} on the login node"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
