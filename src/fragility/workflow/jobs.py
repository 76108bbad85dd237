"""What every workflow script shares: logging to the rule's log and one-line errors."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable

from fragility.errors import FragilityError
from fragility.training.gpus import check_gpu_visible, claim_for_job


class _Tee:
    """A text stream writing to several streams (the rule's log and the terminal)."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()

    def isatty(self) -> bool:
        return False


def run_logged(log_path: str, stage: Callable[[], object]) -> None:
    """Run ``stage`` with stderr copied into ``log_path``.

    A :class:`FragilityError` ends the job with its one-line message (in the log and on the
    terminal); anything else is a bug and keeps its traceback in the log.
    """
    log = open(log_path, "w", buffering=1)  # noqa: SIM115 (closed in the finally below)
    sys.stderr = _Tee(log, sys.__stderr__)
    try:
        stage()
    except FragilityError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except Exception:
        traceback.print_exc(file=log)
        raise
    finally:
        sys.stderr = sys.__stderr__
        log.close()


def run_device_job(
    log_path: str,
    device: str,
    stage: Callable[[], object],
    *,
    gpu_requested: bool = False,
    job: str = "job",
) -> None:
    """A training or embedding job: a GPU of its own, claimed before ``stage`` can initialise
    CUDA (:func:`fragility.training.gpus.claim_for_job`), then ``stage``, logged as
    :func:`run_logged` logs it. A GPU job (``gpu_requested`` by its rule, on a machine or node
    that advertises a GPU) whose torch sees no GPU ends at once with one line naming ``job``
    (:func:`fragility.training.gpus.check_gpu_visible`), instead of running ``stage`` on the
    CPU."""

    def claimed_stage():
        claim_for_job(device)  # inside the log: a job's log says which slot it took
        check_gpu_visible(device, gpu_requested, job)
        return stage()

    run_logged(log_path, claimed_stage)


def job_name(rule: str, wildcards) -> str:
    """``rule dataset/imbalance/loss/seedN`` for a run's job (the rule alone otherwise)."""
    parts = [wildcards.get(k) for k in ("dataset", "imbalance", "loss", "seed")]
    if None in parts:
        return rule
    return f"{rule} {'/'.join(map(str, parts[:3]))}/seed{parts[3]}"


def files_of_runs(runs) -> list[str]:
    """Every file the run dicts of a cross-run rule name (its own and its remedied models'):
    what the rule declares as input."""
    files = [p for run in runs for p in run.get("files", {}).values()]
    return files + [
        p for run in runs for model in run.get("remedies", {}).values() for p in model.values()
    ]


def declared_runs(runs, declared_inputs) -> list[dict]:
    """The ``runs`` a rule's params hand a cross-run stage, after checking that every file
    they name is among the rule's declared inputs (so Snakemake tracks each one)."""
    runs = [dict(run) for run in runs]
    undeclared = sorted(set(map(str, files_of_runs(runs))) - set(map(str, declared_inputs)))
    if undeclared:
        raise RuntimeError(f"the rule hands its stage files it did not declare: {undeclared}")
    return runs
