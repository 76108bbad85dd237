"""What each job asks a batch scheduler for: memory and wall time, from the job's own work.

Snakemake hands these to SLURM as ``mem_mb`` and ``runtime`` (minutes). Locally nothing reads
them. A job's numbers follow from what it does (its dataset's size and image shape, the
architecture, epochs and batch size of its run, the device it trains on, the analyses'
settings) through a cost model calibrated on this project's measurements, with margin:

* **time** = start-up + ``SAFETY`` x work; work is images / rate for training and embedding
  (:data:`RATES`: ResNet-32 images per second at 32 x 32, scaled by the architecture's
  convolutions and the image's pixels), and a per-row cost for the analyses;
* **memory** = the process (Python, torch; a CUDA context on a GPU) + the canonical dataset
  twice (loaded, and the split's subsets copied out of it) + what the job holds at its peak
  (a CPU training's activations, a bootstrap's replicate counts), times ``SAFETY_MEM``;
* a retry asks for more: both are multiplied by the attempt (1, then 2, then 3).

Under ``profiles/slurm`` a run's jobs travel in group jobs, whose jobs the SLURM plugin runs
one after another. Each grouped job holds the group's one ``group_slot``
(a resource of local scope: every group job has a pool of one), so Snakemake sizes a group as
that sequence: the largest CPUs and memory of any one of its jobs, and the sum of their times.
Each job therefore asks for its own time, and a group never asks for CPUs it will not use.

The calibration (2-core AMD EPYC VM, 2 torch threads; ``bench/README.md``, README
"Measured"): ResNet-32 trains 288 images/s at 28 x 28 (220 at 32 x 32), ResNet-8 1,358 at
28 x 28; a default-study exp100 training (2,478 images, 20 epochs) took 28-81 s, the balanced
one (10,000 images) 139 s; RQ1's re-training 1.7 s on a 50,000-row pool, a run's bootstrap
(B = 1000, 13,000 rows) 0.24 s. The GPU rate is a deliberate under-estimate (an H100 is
expected at about 20,000 images/s: the 2-minute target of a 200-epoch CIFAR-10 exp100 run),
so that older GPUs fit in the same request.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from fragility.data.splits import class_counts
from fragility.training.settings import ARCHITECTURES

# images per second of a ResNet-32 training pass at 32 x 32 (evaluation: EVAL_SPEEDUP x that)
RATES = {"cpu": 220.0, "cuda": 3000.0}
EVAL_SPEEDUP = 3.0
# activations a CPU training keeps per image (MB) for ResNet-32 at 32 x 32: 31 layers of
# 16-64 channels, float32, forward values and their gradients
ACTIVATION_MB = 3.5
PROCESS_MB = {"cpu": 1500, "cuda": 3000, "analysis": 900}
# start-up of a job on a compute node (Snakemake, Python, imports from a shared filesystem):
# a training or embedding job also reads its data and initialises CUDA
STARTUP_S = {"model": 60.0, "analysis": 20.0}
READ_MB_S = 100.0  # reading the canonical .npz
SAFETY, SAFETY_MEM = 2.0, 1.5
MIN_RUNTIME, MIN_MEM_MB = 1, 1024

# loader -> (height, width, channels, train images, test images, classes) where known
# without the files (celeba: its black-haired subset, partitions 0+1 and 2, about)
SHAPES = {
    "fashion_mnist": (28, 28, 1, 60_000, 10_000, 10),
    "cifar10": (32, 32, 3, 50_000, 10_000, 10),
    "cifar100": (32, 32, 3, 50_000, 10_000, 100),
    "svhn": (32, 32, 3, 73_257, 26_032, 10),
    "digits": (8, 8, 1, 1_437, 360, 10),
    "celeba": (32, 32, 3, 43_700, 4_800, 2),
    "image_folder": (32, 32, 3, 50_000, 10_000, 10),  # a guess until the .npz is built
}


def arch_cost(arch: str | None) -> float:
    """Training compute per image of ``arch`` relative to ResNet-32 (1 for a model trained
    elsewhere, whose architecture this package does not know)."""
    return ARCHITECTURES[arch].cost if arch in ARCHITECTURES else 1.0


@dataclass(frozen=True)
class Size:
    """One job's request: memory in MB and wall time in minutes."""

    mem_mb: int
    runtime: int

    @classmethod
    def of(cls, mem_mb: float, seconds: float) -> Size:
        mem = max(MIN_MEM_MB, 256 * math.ceil(mem_mb / 256))
        return cls(mem, max(MIN_RUNTIME, math.ceil(seconds / 60)))

    def scaled(self, attempt: int = 1, time_factor: float = 1.0) -> Size:
        """The request of try ``attempt`` (1-based), its time also times ``time_factor``."""
        return Size(self.mem_mb * attempt, math.ceil(self.runtime * time_factor) * attempt)


@dataclass(frozen=True)
class Data:
    """A dataset's size as jobs see it."""

    height: int
    width: int
    channels: int
    n_train: int  # images in the canonical training array
    n_test: int
    n_classes: int

    @property
    def mb(self) -> float:
        return (self.n_train + self.n_test) * self.height * self.width * self.channels / 1e6

    @property
    def pixels(self) -> float:
        """Pixels relative to 32 x 32 (the rates' image)."""
        return self.height * self.width / 1024


def _npz_shapes(path: Path) -> dict[str, tuple]:
    """The array shapes of an .npz, read from the headers only."""
    shapes = {}
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            with z.open(name) as f:
                version = np.lib.format.read_magic(f)
                read = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, _ = read(f)
            shapes[name.removesuffix(".npy")] = shape
    return shapes


def dataset_size(loader: str, options: dict, canonical: str | Path | None = None) -> Data:
    """From the canonical file's headers when it is built, else from :data:`SHAPES` and the
    loader's options (``image_size``, ``grayscale``). A damaged canonical file counts as not
    built: the first job that reads it says what is wrong with it, in one line."""
    if canonical is not None and Path(canonical).is_file():
        try:
            shapes = _npz_shapes(Path(canonical))
            n, h, w, c = shapes["x_train"]
            return Data(h, w, c, n, shapes["x_test"][0], shapes["classes"][0])
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile):
            pass
    h, w, c, n_train, n_test, n_classes = SHAPES.get(loader, SHAPES["image_folder"])
    if "image_size" in options:
        h = w = int(options["image_size"])
    if options.get("grayscale"):
        c = 1
    return Data(h, w, c, n_train, n_test, n_classes)


@dataclass(frozen=True)
class RunWork:
    """What one run's jobs process."""

    data: Data
    arch: str
    epochs: int
    batch_size: int
    n_train: int  # images per training epoch (over-sampling included)
    n_pool: int
    n_eval: int  # test + validation images evaluated after every epoch (and embedded)


class JobSizes:
    """Every job's :class:`Size` for one study (a :class:`fragility.workflow.config.Study`)."""

    def __init__(self, study, data_dir: str, device: str = "cpu"):
        """``device``: where training and embedding jobs run ("cpu" or "cuda", see
        :func:`expected_device`)."""
        self.study = study
        self.data_dir = Path(data_dir)
        self.device = device
        self.analysis = study.config.get("analysis", {})

    @cache  # noqa: B019 (one instance per workflow)
    def data(self, dataset: str) -> Data:
        settings = self.study.data_settings(dataset)
        canonical = self.data_dir / f"{dataset}.npz"
        return dataset_size(settings["loader"], settings["options"], canonical)

    @cache  # noqa: B019
    def work(self, run) -> RunWork:
        data = self.data(run.dataset)
        split = self.study.split_settings(run.dataset)
        # a model trained elsewhere (config `models`) is never trained: only its arch counts
        external = self.study.is_external(run)
        train = self.study.external_settings(run) if external else self.study.train_settings(run)
        n_max, c = split["n_max"], data.n_classes
        per_class = (
            [n_max] * c if train.get("oversample") else class_counts(run.imbalance, n_max, c)
        )
        n_test = c * split["n_test"] if split["n_test"] else data.n_test
        per_epoch = train.get("epoch_test_per_class")  # a draw of them after every epoch
        n_test = min(n_test, c * per_epoch) if per_epoch else n_test
        return RunWork(
            data=data,
            arch=train.get("arch", "resnet32"),
            epochs=int(train.get("epochs", 200)),
            batch_size=int(train.get("batch_size", 128)),
            n_train=sum(per_class),
            n_pool=c * n_max,
            n_eval=n_test + c * split["n_val"],
        )

    def _rate(self, work: RunWork) -> float:
        return RATES[self.device] / (arch_cost(work.arch) * work.data.pixels)

    def _model_mem(self, work: RunWork, images: int) -> float:
        if self.device != "cpu":
            return PROCESS_MB["cuda"]  # activations live on the GPU
        per_image = ACTIVATION_MB * arch_cost(work.arch) * work.data.pixels
        return PROCESS_MB["cpu"] + per_image * images

    def train(self, run) -> Size:
        w = self.work(run)
        rate = self._rate(w)
        seconds = w.epochs * (w.n_train / rate + w.n_eval / (EVAL_SPEEDUP * rate))
        mem = self._model_mem(w, max(w.batch_size, 256 // 3)) + 2 * w.data.mb
        return Size.of(
            SAFETY_MEM * mem, STARTUP_S["model"] + w.data.mb / READ_MB_S + SAFETY * seconds
        )

    def embed(self, run) -> Size:
        w = self.work(run)
        images = w.n_train + w.n_pool + w.n_eval
        seconds = images / (EVAL_SPEEDUP * self._rate(w))
        mem = self._model_mem(w, 256 // 3) + 2 * w.data.mb
        return Size.of(
            SAFETY_MEM * mem, STARTUP_S["model"] + w.data.mb / READ_MB_S + SAFETY * seconds
        )

    def analysis_job(self, kind: str, run) -> Size:
        """``kind``: analyze (an RQ's tables), figure, retrain (RQ1), bootstrap, remedy."""
        w = self.work(run)
        c = w.data.n_classes
        rows = w.n_train + w.n_pool + w.n_eval
        row_mb = (64 + 2 * c) * 8 / 1e6  # FE and logits, float64
        n_boot = self.analysis.get("bootstrap", 1000)
        seconds, extra_mb = {
            "analyze": (1e-4 * rows, 3 * rows * row_mb),
            "figure": (5.0, 200.0),
            "retrain": (2e-6 * self.analysis.get("retrain_epochs", 30) * w.n_pool, rows * row_mb),
            "bootstrap": (5e-8 * n_boot * rows, 2 * n_boot * rows * 8 / 1e6),
            # kNN over the training FE in 256 MiB chunks, then a head on the over-sampled set
            "remedy": (1e-8 * w.n_train**2 + 2e-5 * c * w.n_pool, 600 + 4 * rows * row_mb),
        }[kind]
        return Size.of(
            SAFETY_MEM * (PROCESS_MB["analysis"] + extra_mb),
            STARTUP_S["analysis"] + SAFETY * seconds,
        )

    def prepare(self, dataset: str) -> Size:
        data = self.data(dataset)
        images = data.n_train + data.n_test
        # image files are decoded and resized one by one (on up to 8 threads), the other
        # formats parsed as arrays (more slowly than the canonical .npz is read)
        decoded = self.study.data_settings(dataset)["loader"] in ("celeba", "image_folder")
        seconds = data.mb / (READ_MB_S / 4) + (5e-3 * images / 4 if decoded else 0.0)
        return Size.of(
            SAFETY_MEM * (PROCESS_MB["analysis"] + 4 * data.mb),
            STARTUP_S["analysis"] + SAFETY * seconds,
        )

    def split(self, dataset: str) -> Size:
        data = self.data(dataset)
        return Size.of(
            SAFETY_MEM * (PROCESS_MB["analysis"] + 2 * data.mb), STARTUP_S["analysis"] + 10.0
        )

    def of(self, kind: str, wildcards: dict, attempt: int = 1) -> Size:
        """The request of a job of ``kind`` with these wildcards, on try ``attempt``."""
        if kind in ("prepare", "split"):
            size = getattr(self, kind)(wildcards["dataset"])
        else:
            run = self.study.runs_for(
                dataset=wildcards["dataset"],
                imbalance=wildcards["imbalance"],
                loss=wildcards["loss"],
                seed=int(wildcards["seed"]),
            )[0]
            size = (
                getattr(self, kind)(run)
                if kind in ("train", "embed")
                else self.analysis_job(kind, run)
            )
        return size.scaled(attempt)


def expected_device(device: str, gpu_requested: bool) -> str:
    """Where a training or embedding job will run: the config's ``device`` (``auto``: a GPU
    when the scheduler is asked for one)."""
    if device == "cpu" or (device == "auto" and not gpu_requested):
        return "cpu"
    return "cuda" if device.startswith("cuda") or device == "auto" else "cpu"
