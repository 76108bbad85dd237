# Cluster runs: before the first sbatch, every planned submission is checked against its SLURM
# partition (fragility.workflow.cluster). A request no node can satisfy would wait in the queue forever
# while Snakemake says nothing; it stops the run here with one line instead.
from fragility.workflow import cluster


def planned_submission(unit):
    """What a group job or a single job will ask SLURM for, read as the slurm plugin reads
    it: cpus_per_task (else the threads), mem_mb (or mem_mb_per_cpu x CPUs), runtime."""
    resources = unit.resources
    cpus = resources.get("cpus_per_task")
    cpus = unit.threads if cpus is None else (None if int(cpus) < 0 else max(1, int(cpus)))
    per_cpu = resources.get("mem_mb_per_cpu")
    mem_mb = per_cpu * cpus if per_cpu and cpus else resources.get("mem_mb")
    if unit.is_group():
        rules = sorted({job.rule.name for job in unit.jobs})
        jobs = f"{len(unit.jobs)} job{'s' if len(unit.jobs) != 1 else ''}"
        name = f"group job {unit.groupid} ({jobs}: {', '.join(rules)})"
    else:
        name = f"job {unit.rule.name} ({', '.join(f'{k}={v}' for k, v in unit.wildcards.items())})"
    return cluster.Request(
        job=name,
        partition=resources.get("slurm_partition") or None,
        cpus=cpus,
        mem_mb=mem_mb,
        minutes=resources.get("runtime"),
    )


def planned_submissions():
    """Every submission this run will make (group jobs, and jobs outside groups that are
    not local), from the planned DAG."""
    seen = set()
    for job in workflow.dag.needrun_jobs():
        unit = workflow.dag.get_job_group(job) or job
        if id(unit) in seen or unit.is_local:
            continue
        seen.add(id(unit))
        yield planned_submission(unit)


onstart:
    plugin = workflow.executor_plugin
    if plugin is not None and plugin.name == "slurm":
        problem = cluster.unfit_line(planned_submissions())
        if problem:
            sys.exit(problem)
