"""The GPU check: what a machine with an NVIDIA GPU measures of this project, in one JSON.

    bash bench/gpu_check.sh [--out gpu_check.json] [--budget 470]   # on the GPU machine
    bash bench/gpu_check.sh --tiny --out /tmp/gpu_check.json        # anywhere: CPU, seconds

Parts, each a subprocess with its own time limit, in this order (the whole within
``--budget`` seconds, 470 by default: under 8 minutes with start-up):

1. ``machine``: ``nvidia-smi``, torch's CUDA build and the devices it sees;
2. ``cuda_tests``: the tests that need a GPU (``tests/test_training.py``,
   ``tests/test_gpus.py``: no host sync per training step, the device a job records, two jobs
   on two GPUs where there are two) with the slot picker's own tests, as JUnit counts;
3. ``train_speed``: the engine against the usual DataLoader loop (``bench/train_speed.py``:
   Fashion-MNIST exp100 where its files are, else CIFAR-10-shaped synthetic data);
4. ``full_run``: one whole 200-epoch ResNet-32 training on CIFAR-10 exp100 (the real
   CIFAR-10 where ``data/raw/cifar10`` holds it, else random data of its shape);
5. ``multi_gpu``: with two or more GPUs, two workflow trainings started together under
   ``--resources gpu=2`` (digits, device cuda): the devices their ``metrics.json`` record.

The JSON is rewritten after every part, so a part that hangs or a machine taken away leaves
the parts before it: each has ``status`` (ok, failed, timeout, skipped), ``seconds``, the
part's own numbers (``result``) and the end of its output (``tail``). ``--tiny`` runs every
part on the CPU at toy size (digits, ResNet-8, 2 epochs): it checks the script, not a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
# part -> seconds it may take at most (the budget may leave it less)
LIMITS = {"machine": 30, "cuda_tests": 100, "train_speed": 150, "full_run": 200, "multi_gpu": 90}


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
    (a function of the part's stdout) gives its numbers. Returns the record."""
    t0 = time.monotonic()
    status, out, stdout, code = "ok", "", "", None
    try:
        done = subprocess.run(
            cmd, cwd=cwd, capture_output=True, text=True, timeout=limit,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
        out, stdout, code = done.stdout + done.stderr, done.stdout, done.returncode
        status = "ok" if code == 0 else "failed"
    except subprocess.TimeoutExpired as expired:
        status = "timeout"
        out = "".join(
            part.decode(errors="replace") if isinstance(part, bytes) else (part or "")
            for part in (expired.stdout, expired.stderr)
        )
    except OSError as error:
        status, out = "failed", str(error)
    record = {"status": status, "seconds": round(time.monotonic() - t0, 1), "returncode": code}
    if result is not None:
        try:
            record["result"] = result(stdout)
        except (OSError, ValueError, KeyError, ET.ParseError) as error:
            record["result"] = None
            record["result_error"] = f"{type(error).__name__}: {error}"
    record["tail"] = out[-3000:]
    report.part(name, **record)
    return record


def skip(report: Report, name: str, why: str) -> None:
    report.part(name, status="skipped", seconds=0.0, reason=why)


def _json(path: Path):
    return lambda stdout: json.loads(path.read_text())


def _junit(path: Path):
    def counts(stdout: str) -> dict:
        suite = ET.parse(path).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        cases = suite.findall("testcase")
        outcome = {}
        for case in cases:
            kind = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
            outcome[f"{case.get('classname')}::{case.get('name')}"] = kind
        return {
            "tests": len(cases),
            **{
                k: sum(v == k for v in outcome.values())
                for k in ("passed", "failure", "error", "skipped")
            },
            "outcomes": outcome,
        }

    return counts


MACHINE = """
import json, torch
info = {"torch": torch.__version__, "cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(), "devices": []}
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    info["devices"].append({"index": i, "name": p.name, "memory_gb": round(p.total_memory / 2**30, 1),
                            "capability": f"{p.major}.{p.minor}"})
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
    from fragility.data import missing_raw_files

    if missing_raw_files("fashion_mnist") is None:
        return ["--dataset", "fashion_mnist"]
    return ["--synthetic-cifar"]


def full_run_data(tiny: bool) -> list[str]:
    if tiny:
        return ["--dataset", "digits", "--arch", "resnet8", "--device", "cpu", "--epochs", "2"]
    from fragility.data import missing_raw_files

    cifar = missing_raw_files("cifar10") is None
    data = (
        ["--dataset", "cifar10", "--n-max", "5000", "--n-test", "0"]
        if cifar
        else ["--synthetic-cifar"]
    )
    return [*data, "--arch", "resnet32", "--epochs", "200"]


def multi_gpu(report: Report, limit: float, tiny: bool, n_gpus: int, out_dir: Path) -> None:
    """Two digits trainings of the workflow side by side (``--resources gpu=2``)."""
    if n_gpus < 2 and not tiny:
        skip(report, "multi_gpu", f"{n_gpus} GPU(s): nothing to spread over")
        return
    config = yaml.safe_load((REPO / "presets" / "smoke.yaml").read_text())
    config.update(device="cpu" if tiny else "cuda", check_inputs=False)
    if tiny:  # two fake devices: the claims are real, the training runs on the CPU
        config["gpus"] = [0, 1]
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
        metrics = [json.loads((work / run / "metrics.json").read_text()) for run in runs]
        keys = ("device", "device_index", "device_name", "gpu_slot", "wall_seconds")
        rows = [{k: m.get(k) for k in keys} for m in metrics]
        slots = {r["gpu_slot"] for r in rows}
        return {"runs": rows, "distinct_slots": len(slots) == len(rows) and None not in slots}

    env = {"CUDA_VISIBLE_DEVICES": ""} if tiny else {}
    run_part(report, "multi_gpu", cmd, limit, devices, env=env)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="gpu_check.json", help="the JSON (rewritten after each part)")
    p.add_argument("--budget", type=float, default=470.0, help="seconds for all parts together")
    p.add_argument("--tiny", action="store_true", help="every part at toy size on the CPU")
    p.add_argument("--only", nargs="*", help="run only these parts")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    report = Report(Path(args.out).resolve(), args.tiny)
    deadline = time.monotonic() + args.budget
    wanted = set(args.only or LIMITS)

    def limit(name: str) -> float:
        return max(1.0, min(LIMITS[name], deadline - time.monotonic()))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        info = machine(report, limit("machine")) if "machine" in wanted else {}
        n_gpus = len(info.get("devices", []))
        if "cuda_tests" in wanted:
            junit = tmp / "cuda_tests.xml"
            tests = ["tests/test_training.py", "tests/test_gpus.py"]
            cmd = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
            cmd += ["-k", "gpu or cuda or slot or claim", f"--junitxml={junit}"]
            run_part(report, "cuda_tests", cmd, limit("cuda_tests"), _junit(junit))
        if "train_speed" in wanted:
            out = tmp / "train_speed.json"
            rounds = (
                ["--rounds", "1", "--epochs", "1"]
                if args.tiny
                else ["--rounds", "3", "--epochs", "2"]
            )
            workers = [] if args.tiny else ["--workers", "0,2,4", "--n-test", "0"]
            cmd = [PY, "bench/train_speed.py", *speed_data(args.tiny), *rounds, *workers]
            run_part(
                report, "train_speed", [*cmd, "--json", str(out)], limit("train_speed"), _json(out)
            )
        if "full_run" in wanted:
            out = tmp / "full_run.json"
            cmd = [
                PY,
                "bench/train_speed.py",
                "--full-run",
                "--rounds",
                "1",
                *full_run_data(args.tiny),
            ]
            run_part(report, "full_run", [*cmd, "--json", str(out)], limit("full_run"), _json(out))
        if "multi_gpu" in wanted:
            multi_gpu(report, limit("multi_gpu"), args.tiny, n_gpus, tmp)
    report.write(finished=True)
    statuses = {k: v["status"] for k, v in report.data["parts"].items()}
    print(json.dumps(statuses))
    print(f"wrote {report.path}")
    return 0 if all(s in ("ok", "skipped") for s in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
