"""Pipeline overhead: how long ``snakemake -n`` takes on the default config (target < 3 s).

Times, in one run, the command users type (``snakemake -n`` with ``config.yaml``, the
workflow profile loaded as usual) against two references measured alongside it:

* ``snakemake --version``: Python plus Snakemake's own import, the floor of any call;
* ``snakemake -n`` on a one-rule Snakefile: Snakemake's fixed cost of parsing a workflow
  and building a DAG, without ours.

Each command runs ``--repeats`` times, interleaved so that load on the machine hits all
three alike, and the median is reported. ``ratio = median dry run / 3 s``: PASS below 1.
``--directory DIR`` times a folder that already holds results (for instance after the
default pipeline ran there: the "nothing to be done" case); the default is a fresh empty
folder, where the dry run plans every job of the study.

    python bench/dryrun_speed.py
    python bench/dryrun_speed.py --directory . --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 3.0
ONE_RULE = 'rule all:\n    output: "done.txt"\n    shell: "touch {output}"\n'


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configfile", default=str(REPO / "config.yaml"))
    p.add_argument("--directory", help="working folder to plan in (default: a fresh empty one)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", help="write the numbers to this file")
    return p.parse_args(argv)


def snakemake() -> str:
    return str(Path(sys.executable).with_name("snakemake"))


def timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return seconds, done


def planned_jobs(output: str) -> int | None:
    """The total of the 'Job stats' table a dry run prints (None when nothing is to be done)."""
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "total" and parts[1].isdigit():
            return int(parts[1])
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        workdir = Path(args.directory).resolve() if args.directory else scratch / "study"
        workdir.mkdir(exist_ok=True)
        (scratch / "one_rule").mkdir()
        (scratch / "one_rule" / "Snakefile").write_text(ONE_RULE)
        commands = {
            "snakemake --version": ([snakemake(), "--version"], scratch),
            "one-rule workflow -n": ([snakemake(), "-n", "--cores", "1"], scratch / "one_rule"),
            "our workflow -n": (
                [
                    snakemake(), "-n",
                    "--snakefile", str(REPO / "Snakefile"),
                    "--configfile", str(Path(args.configfile).resolve()),
                    "--directory", str(workdir),
                    "--cores", "4", "--resources", "gpu=1",
                ],
                REPO,
            ),
        }  # fmt: skip
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        jobs = None
        for _ in range(max(args.repeats, 1)):
            for name, (cmd, cwd) in commands.items():
                s, done = timed(cmd, cwd)
                seconds[name].append(s)
                if name == "our workflow -n":
                    jobs = planned_jobs(done.stdout + done.stderr)

    medians = {name: statistics.median(v) for name, v in seconds.items()}
    ours = medians["our workflow -n"]
    print(f"config: {args.configfile}; folder: {args.directory or 'fresh, empty'}; "
          f"jobs planned: {jobs if jobs is not None else 'none (nothing to be done)'}")  # fmt: skip
    print(f"{'':24s} {'median s':>9s} {'min s':>7s} {'max s':>7s}")
    for name, v in seconds.items():
        print(f"{name:24s} {medians[name]:9.2f} {min(v):7.2f} {max(v):7.2f}")
    ratio = ours / TARGET_SECONDS
    verdict = "PASS" if ratio < 1 else "FAIL"
    print(f"\nratio = our dry run / {TARGET_SECONDS:g} s = {ratio:.2f} ({verdict})")
    print(
        f"ours beyond Snakemake's own fixed cost (one-rule workflow): "
        f"{ours - medians['one-rule workflow -n']:.2f} s"
    )
    if args.json:
        report = {
            "args": vars(args),
            "jobs_planned": jobs,
            "seconds": seconds,
            "medians": medians,
            "target_seconds": TARGET_SECONDS,
            "ratio": ratio,
            "verdict": verdict,
        }
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
