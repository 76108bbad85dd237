"""The GPU check: what a machine with an NVIDIA GPU measures of this project, in one JSON.

    bash bench/gpu_check.sh [--out gpu_check.json] [--budget 420]   # on the GPU machine
    bash bench/gpu_check.sh --tiny --out /tmp/gpu_check.json        # anywhere: CPU, seconds

Parts, each a subprocess with its own time limit, in this order (the whole within
``--budget`` seconds, 420 by default: 7 minutes, about 8 with the machine's own start):

1. ``machine``: ``nvidia-smi``, torch's CUDA build, the devices it sees and the precision
   the training will use on them;
2. ``cuda_tests``: the tests that need a GPU (``tests/test_training.py``,
   ``tests/test_gpus.py``, ``tests/test_precision.py``: no host sync per training step, the
   device a job records, two jobs on two GPUs where there are two, the precision policy's
   ``sum_h CE + bias = logits`` and metrics.json = test.parquet on CUDA, a CUDA extraction
   against a CPU one) with the slot picker's own tests, as per-test outcomes;
3. ``train_speed``: the engine against the usual DataLoader loop with the same precision,
   memory format and autotuning, and against the plain float32 loop (``bench/train_speed.py``:
   Fashion-MNIST exp100 where its files are, else CIFAR-10-shaped synthetic data);
4. ``full_run``: one whole 200-epoch ResNet-32 training on CIFAR-10 exp100 (the real
   CIFAR-10 where ``data/raw/cifar10`` holds it, else random data of its shape), with every
   epoch's seconds;
5. ``multi_gpu``: with two or more GPUs, two workflow trainings started together under
   ``--resources gpu=2`` (digits, device cuda): the devices their ``metrics.json`` record.

What always reaches the JSON: every part writes its figures as it goes (``train_speed`` after
each round, ``full_run`` after each epoch, ``cuda_tests`` each test's outcome), and the JSON
is rewritten every few seconds while a part runs (status ``running``) and when it ends, so a
part cut off by its limit, or a machine taken away, leaves what was measured until then.
``multi_gpu``'s time is reserved from the start: the parts before it cannot use it up. Each
part has ``status`` (ok, failed, timeout, skipped; running while it runs), ``seconds``, its
numbers (``result``) and the end of its output (``tail``). ``--tiny`` runs every part on the
CPU at toy size (digits, ResNet-8, 2 epochs): it checks the script, not a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
# part -> seconds it may take at most (the budget may leave it less); they add up to the
# default budget. full_run's 200 epochs are expected to take 100-120 s on an H100 (their
# target: under 120 s); past its limit the per-epoch times still give the rate.
LIMITS = {"machine": 20, "cuda_tests": 90, "train_speed": 100, "full_run": 140, "multi_gpu": 70}
BUDGET = 420.0
POLL_S = 5.0  # how often a running part's figures are copied into the JSON
SLACK_S = 5.0  # what ending a part takes past its limit (killing its processes, a last reading)


class Report:
    """The JSON file, rewritten (atomically) whenever a part ends."""

    def __init__(self, path: Path, tiny: bool):
        self.path = path
        self.data = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "tiny": tiny, "parts": {}}
        self.write()

    def part(self, name: str, **fields) -> None:
        self.data["parts"][name] = fields
        self.write()

    def write(self, finished: bool = False) -> None:
        self.data["finished"] = finished
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        os.replace(tmp, self.path)


def run_part(
    report: Report,
    name: str,
    cmd: list[str],
    limit: float,
    result=None,
    env: dict | None = None,
    cwd: Path = REPO,
) -> dict:
    """Run ``cmd`` for at most ``limit`` seconds and record it as part ``name``; ``result``
    (a function of the part's stdout so far) gives its numbers. While it runs, its figures so
    far are recorded every :data:`POLL_S` seconds (status ``running``); past its limit the
    whole process group is killed and what it measured is kept. Returns the record."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile(mode="w+") as stderr:
        try:
            proc = subprocess.Popen(
                cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=stderr, text=True,
                env={**os.environ, **(env or {})}, start_new_session=True,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        except OSError as error:
            record = {"status": "failed", "seconds": 0.0, "returncode": None, "tail": str(error)}
            report.part(name, **record)
            return record
        stdout = _Collected(proc.stdout)
        _RUNNING.add(proc)
        status = None
        while status is None:
            left = limit - (time.monotonic() - t0)
            try:
                proc.wait(timeout=max(0.0, min(POLL_S, left)))
                status = "ok" if proc.returncode == 0 else "failed"
            except subprocess.TimeoutExpired:
                if left <= POLL_S:
                    _kill_group(proc)
                    status = "timeout"
                else:  # what the part measured so far
                    report.part(
                        name, **_record(result, stdout.text(), "running", t0, None, "", limit)
                    )
        _RUNNING.discard(proc)
        stdout.close()
        stderr.seek(0)
        text = stdout.text()
        record = _record(result, text, status, t0, proc.returncode, text + stderr.read(), limit)
    report.part(name, **record)
    return record


class _Collected:
    """A child's stdout, read on a thread as it comes (a pipe left unread would block it)."""

    def __init__(self, stream):
        import threading

        self.parts: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.parts.append(line)

    def text(self) -> str:
        return "".join(self.parts)

    def close(self) -> None:
        self.thread.join(timeout=5)


# A part runs in a session of its own, so that past its limit its whole group can be killed;
# it must not outlive the check either (a killed check's part would train for hours, or hold
# the GPU): SIGKILL reaches it through the parent-death signal, a catchable end through
# _end_running_parts.
_RUNNING: set[subprocess.Popen] = set()
_PR_SET_PDEATHSIG = 1
# looked up here, in the check: a child forked beside the check's reader threads must not
# load libraries between fork and exec, only call what is already resolved
try:
    _PRCTL = ctypes.CDLL(None).prctl
except (OSError, AttributeError):  # no prctl: not Linux
    _PRCTL = None


def _die_with_parent() -> None:
    """In the part's process, before it starts: SIGKILL it when the check's process ends."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _end_running_parts(signum, frame) -> None:
    for proc in list(_RUNNING):
        _kill_group(proc)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _kill_group(proc: subprocess.Popen) -> None:
    """The part and everything it started (pytest's, Snakemake's jobs): none may hold the
    GPU into the next part."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _record(result, stdout: str, status: str, t0: float, code, out: str, limit: float) -> dict:
    record = {"status": status, "seconds": round(time.monotonic() - t0, 1), "returncode": code}
    record["limit"] = round(limit, 1)
    if result is not None:
        try:
            record["result"] = result(stdout)
        except (OSError, ValueError, KeyError, IndexError, ET.ParseError) as error:
            record["result"] = None
            record["result_error"] = f"{type(error).__name__}: {error}"
    record["tail"] = out[-3000:]
    return record


def skip(report: Report, name: str, why: str) -> None:
    report.part(name, status="skipped", seconds=0.0, reason=why)


def _json(path: Path):
    return lambda stdout: json.loads(path.read_text())


# a test's line in pytest's -v output: "tests/test_x.py::test_y[a] PASSED  [ 12%]"
_VERBOSE = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b", re.M)
_KIND = {"PASSED": "passed", "FAILED": "failure", "ERROR": "error", "SKIPPED": "skipped"}


def _junit(path: Path):
    """Per-test outcomes: from pytest's JUnit file once it is written, from its -v lines
    while it runs or when it was cut off."""

    def counts(stdout: str) -> dict:
        outcome = {}
        if path.exists():
            suite = ET.parse(path).getroot()
            suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
            for case in suite.findall("testcase"):
                kinds = ("failure", "error", "skipped")
                kind = next((c.tag for c in case if c.tag in kinds), "passed")
                outcome[f"{case.get('classname')}::{case.get('name')}"] = kind
        else:
            for test, word in _VERBOSE.findall(stdout):
                outcome[test] = _KIND.get(word, word.lower())
        return {
            "tests": len(outcome),
            **{
                k: sum(v == k for v in outcome.values())
                for k in ("passed", "failure", "error", "skipped")
            },
            "complete": path.exists(),
            "outcomes": outcome,
        }

    return counts


MACHINE = """
import json, torch
from fragility.training import precision
from fragility.training.engine import eval_batch_size
info = {"torch": torch.__version__, "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(), "devices": []}
for i in range(torch.cuda.device_count()):
    p, device = torch.cuda.get_device_properties(i), torch.device("cuda", i)
    info["devices"].append({"index": i, "name": p.name, "memory_gb": round(p.total_memory / 2**30, 1),
                            "capability": f"{p.major}.{p.minor}",
                            "training_precision": precision.training(device).name,
                            "eval_batch_32px": eval_batch_size(device, (32, 32)),
                            "eval_batch_224px": eval_batch_size(device, (224, 224))})
print(json.dumps(info))
"""


def machine(report: Report, limit: float) -> dict:
    smi = shutil.which("nvidia-smi")
    gpus = []
    if smi:
        query = "--query-gpu=name,driver_version,memory.total,pci.bus_id"
        done = subprocess.run(
            [smi, query, "--format=csv,noheader"], capture_output=True, text=True, timeout=30
        )
        gpus = [line.strip() for line in done.stdout.splitlines() if line.strip()]

    def parse(stdout: str) -> dict:
        return {**json.loads(stdout.strip().splitlines()[-1]), "nvidia_smi": gpus}

    return run_part(report, "machine", [PY, "-c", MACHINE], limit, parse).get("result") or {}


def speed_data(tiny: bool) -> list[str]:
    if tiny:
        return ["--dataset", "digits", "--arch", "resnet8", "--device", "cpu"]
    from fragility.data.datasets import missing_raw_files

    if missing_raw_files("fashion_mnist") is None:
        return ["--dataset", "fashion_mnist"]
    return ["--synthetic-cifar"]


def full_run_data(tiny: bool, epochs: int | None = None) -> list[str]:
    if tiny:
        epochs = epochs or 2
        return [
            "--dataset",
            "digits",
            "--arch",
            "resnet8",
            "--device",
            "cpu",
            "--epochs",
            str(epochs),
        ]
    from fragility.data.datasets import missing_raw_files

    cifar = missing_raw_files("cifar10") is None
    data = (
        ["--dataset", "cifar10", "--n-max", "5000", "--n-test", "0"]
        if cifar
        else ["--synthetic-cifar"]
    )
    return [*data, "--arch", "resnet32", "--epochs", str(epochs or 200)]


def multi_gpu(report: Report, limit: float, tiny: bool, n_gpus: int, out_dir: Path) -> None:
    """Two digits trainings of the workflow side by side (``--resources gpu=2``)."""
    if n_gpus < 2 and not tiny:
        skip(report, "multi_gpu", f"{n_gpus} GPU(s): nothing to spread over")
        return
    config = yaml.safe_load((REPO / "presets" / "smoke.yaml").read_text())
    config.update(device="cpu" if tiny else "cuda", check_inputs=False)
    if tiny:  # two stand-in devices: the claims are real; CUDA matches neither name (on a
        # GPU machine too), so the training runs on the CPU
        config["gpus"] = ["fake0", "fake1"]
        config["device"] = "auto"
    config["runs"] = [{"dataset": "digits", "imbalance": ["exp10"], "loss": ["ce", "ldam_drw"]}]
    config["training"]["epochs"] = 2 if tiny else 30
    del config["remedies"]
    work = out_dir / "multi_gpu"
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    runs = [f"results/digits/exp10/{loss}/seed0" for loss in ("ce", "ldam_drw")]
    cmd = [
        PY, "-m", "snakemake",
        *[f"{run}/metrics.json" for run in runs],
        "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
        "--configfile", str(work / "config.yaml"),
        "--resources", "gpu=2", "--cores", "4",
    ]  # fmt: skip

    def devices(stdout: str) -> dict:
        """The runs finished so far: the device and slot each recorded."""
        done = [work / run / "metrics.json" for run in runs]
        metrics = [json.loads(path.read_text()) for path in done if path.exists()]
        keys = ("device", "device_index", "device_name", "gpu_slot", "precision", "wall_seconds")
        rows = [{k: m.get(k) for k in keys} for m in metrics]
        slots = {r["gpu_slot"] for r in rows}
        distinct = len(rows) == len(runs) and len(slots) == len(rows) and None not in slots
        return {"runs": rows, "finished": len(rows), "distinct_slots": distinct}

    # tiny: two stand-in GPUs, nothing of the machine's: claims for real, training on the CPU
    env = {"CUDA_VISIBLE_DEVICES": "", "FRAGILITY_GPU_REHEARSAL": "1"} if tiny else {}
    run_part(report, "multi_gpu", cmd, limit, devices, env=env)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="gpu_check.json", help="the JSON (rewritten after each part)")
    p.add_argument("--budget", type=float, default=BUDGET, help="seconds for all parts together")
    p.add_argument("--tiny", action="store_true", help="every part at toy size on the CPU")
    p.add_argument("--only", nargs="*", help="run only these parts")
    p.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="PART=SECONDS",
        help="another time limit for a part (repeatable; a rehearsal of parts cut off)",
    )
    p.add_argument("--full-run-epochs", type=int, help="full_run's epochs (default 200; tiny 2)")
    p.add_argument("--speed-rounds", type=int, help="train_speed's rounds (default 3; tiny 1)")
    args = p.parse_args(argv)
    limits = dict(LIMITS)
    for item in args.limit:
        part, _, seconds = item.partition("=")
        if part not in LIMITS or not seconds:
            p.error(f"--limit {item}: expected PART=SECONDS with PART one of {list(LIMITS)}")
        limits[part] = float(seconds)
    args.limits = limits
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _end_running_parts)
    out = Path(args.out).resolve()
    report = Report(out, args.tiny)
    deadline = time.monotonic() + args.budget
    wanted = set(args.only or LIMITS)
    n_gpus = None  # unknown until `machine` has run

    def limit(name: str) -> float:
        """The part's own limit, within what the budget leaves once multi_gpu's time is set
        aside (until it is known not to run)."""
        multi = "multi_gpu" in wanted and (args.tiny or n_gpus is None or n_gpus >= 2)
        reserve = args.limits["multi_gpu"] + SLACK_S if multi and name != "multi_gpu" else 0.0
        return max(1.0, min(args.limits[name], deadline - time.monotonic() - reserve))

    # the parts' own JSON files sit beside the report: a machine taken away keeps them too
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    if "machine" in wanted:
        n_gpus = len(machine(report, limit("machine")).get("devices", []))
    elif not args.tiny:
        n_gpus = None
    if "cuda_tests" in wanted:
        junit = parts / "cuda_tests.xml"
        junit.unlink(missing_ok=True)
        tests = ["tests/test_training.py", "tests/test_gpus.py", "tests/test_precision.py"]
        cmd = [PY, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-m", "not slow", *tests]
        cmd += ["-k", "gpu or cuda or slot or claim", f"--junitxml={junit}"]
        run_part(report, "cuda_tests", cmd, limit("cuda_tests"), _junit(junit))
    if "train_speed" in wanted:
        result = parts / "train_speed.json"
        result.unlink(missing_ok=True)
        rounds = args.speed_rounds or (1 if args.tiny else 3)
        timing = ["--rounds", str(rounds), "--epochs", "1" if args.tiny else "2"]
        workers = [] if args.tiny else ["--workers", "0,2,4", "--n-test", "0"]
        cmd = [PY, "bench/train_speed.py", *speed_data(args.tiny), *timing, *workers]
        cmd += ["--json", str(result)]
        run_part(report, "train_speed", cmd, limit("train_speed"), _json(result))
    if "full_run" in wanted:
        result = parts / "full_run.json"
        result.unlink(missing_ok=True)
        data = full_run_data(args.tiny, args.full_run_epochs)
        cmd = [PY, "bench/train_speed.py", "--full-run", "--rounds", "1", *data]
        run_part(
            report, "full_run", [*cmd, "--json", str(result)], limit("full_run"), _json(result)
        )
    if "multi_gpu" in wanted:
        multi_gpu(report, limit("multi_gpu"), args.tiny, n_gpus or 0, parts)
    report.write(finished=True)
    statuses = {k: v["status"] for k, v in report.data["parts"].items()}
    print(json.dumps(statuses))
    print(f"wrote {report.path}")
    return 0 if all(s in ("ok", "skipped") for s in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
