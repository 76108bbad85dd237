"""What each job asks a cluster for (fragility.workflow.resources), against the cost model worked out
by hand for the default study's dataset (Fashion-MNIST, resnet8, 20 epochs, on a CPU) and
the paper's (CIFAR-10, ResNet-32, 200 epochs, on a GPU). The studies are written here, not read
from config.yaml or the presets, so that a change of the shipped settings changes nothing."""

import numpy as np
import pytest
from snakemake.utils import validate

from fragility.workflow.config import SCHEMA_PATH, Study
from fragility.workflow.resources import JobSizes, Size, dataset_size, expected_device

FMNIST = {
    "fashion_mnist": {
        "download": True,  # no raw files needed to plan
        "split": {"n_max": 1000, "n_val": 50, "n_test": 300},
    }
}
CIFAR = {"cifar10": {"download": True, "split": {"n_max": 5000}}}


def _study(datasets, training, imbalances=("exp100",), group_training=None) -> Study:
    name = next(iter(datasets))
    group = {"dataset": name, "imbalance": list(imbalances), "loss": ["ce"]}
    config = {
        "training": dict(training),  # the validation fills in defaults
        "datasets": datasets,
        "losses": {"ce": {"loss": "ce"}},
        "runs": [{**group, "training": dict(group_training or {})}],
    }
    validate(config, str(SCHEMA_PATH))
    return Study(config)


def _wildcards(dataset, imbalance="exp100"):
    return {"dataset": dataset, "imbalance": imbalance, "loss": "ce", "seed": "0"}


@pytest.fixture
def default_study():
    return _study(FMNIST, {"arch": "resnet8", "epochs": 20, "batch_size": 128})


@pytest.fixture
def paper_study():
    return _study(CIFAR, {"arch": "resnet32", "epochs": 200}, ("exp100", "balanced"))


def test_a_default_study_training_on_a_cpu(default_study, tmp_path):
    sizes = JobSizes(default_study, tmp_path, device="cpu")
    # 2,478 training images (exp100 of n_max 1000) and 3,500 evaluated every epoch, at
    # 220 / (7/31 * 784/1024) = 1,272.5 images/s: 20 * (1.947 + 0.917) = 57.3 s of work;
    # 60 s start-up + 0.5 s reading 54.9 MB + 2 x 57.3 s = 175 s -> 3 minutes
    # memory: 1,500 MB + 128 images x 0.605 MB of activations + 2 x 54.9 MB, x 1.5 -> 2,560
    assert sizes.of("train", _wildcards("fashion_mnist")) == Size(mem_mb=2560, runtime=3)


def test_a_paper_study_training_on_a_gpu(paper_study, tmp_path):
    sizes = JobSizes(paper_study, tmp_path, device="cuda")
    # 12,406 training images and 10,000 test images evaluated every epoch at 3,000 images/s
    # (9,000 for evaluation): 200 * (4.135 + 1.111) = 1,049 s; 60 + 1.8 + 2 x 1,049 s = 36.0 min
    # -> 37; memory: 3,000 MB (CUDA) + 2 x 184.3 MB of CIFAR-10, x 1.5 -> 5,120
    assert sizes.of("train", _wildcards("cifar10")) == Size(mem_mb=5120, runtime=37)
    # the balanced run trains on 50,000 images: 200 * (16.667 + 1.111) s x 2 + 62 s = 119.5 min
    assert sizes.of("train", _wildcards("cifar10", "balanced")).runtime == 120
    # extraction: one pass over 12,406 + 50,000 (pool) + 10,000 images at 9,000 images/s
    assert sizes.of("embed", _wildcards("cifar10")) == Size(mem_mb=5120, runtime=2)


def test_analysis_jobs_ask_for_their_own_time(paper_study, tmp_path):
    sizes = JobSizes(paper_study, tmp_path, device="cuda")
    # the bootstrap: B = 1000 replicates of 72,406 rows (train + pool + test): 3.6 s x 2, 20 s
    # start-up -> 1 minute (its group adds up its jobs' times: they run one after another);
    # memory: 900 MB + 2 x 1000 x 72,406 x 8 bytes = 2,058 MB, x 1.5 -> 3,328
    assert sizes.of("bootstrap", _wildcards("cifar10")) == Size(mem_mb=3328, runtime=1)
    assert sizes.of("remedy", _wildcards("cifar10")).runtime == 1
    assert sizes.of("train", _wildcards("cifar10")).runtime == 37


def test_a_retry_asks_for_more(paper_study, tmp_path):
    sizes = JobSizes(paper_study, tmp_path, device="cuda")
    first, second, third = (sizes.of("train", _wildcards("cifar10"), attempt=a) for a in (1, 2, 3))
    assert (second.mem_mb, second.runtime) == (2 * first.mem_mb, 2 * first.runtime)
    assert (third.mem_mb, third.runtime) == (3 * first.mem_mb, 3 * first.runtime)


def test_requests_follow_the_settings(tmp_path):
    def train(training, device="cpu", datasets=FMNIST):
        sizes = JobSizes(_study(datasets, training), tmp_path, device=device)
        return sizes.of("train", _wildcards(next(iter(datasets))))

    base = {"arch": "resnet8", "epochs": 200, "batch_size": 128}
    work = train(base).runtime
    assert 1.8 * work < train({**base, "epochs": 400}).runtime <= 2 * work  # the start-up once
    assert train({**base, "arch": "resnet32"}).runtime > 4 * work  # 31 convolutions, not 7
    assert train(base, device="cuda").runtime < work / 5  # the GPU rate (start-up aside)
    assert train(base, device="cuda").mem_mb > train(base).mem_mb  # the CUDA context
    assert train({**base, "batch_size": 1024}).mem_mb > train(base).mem_mb  # CPU activations
    svhn = {"svhn": {"download": True, "split": {"n_max": 4600}}}
    assert train(base, datasets=svhn).mem_mb > train(base).mem_mb  # 99,289 images of 3 KB


def test_a_built_canonical_file_gives_the_dataset_s_real_size(tmp_path):
    x = np.zeros((7, 12, 10, 3), np.uint8)
    np.savez(
        tmp_path / "mine.npz", x_train=x, y_train=np.zeros(7, np.int64), x_test=x[:2],
        y_test=np.zeros(2, np.int64), classes=np.array(["a", "b", "c"]), name=np.array("mine"),
    )  # fmt: skip
    data = dataset_size("image_folder", {}, tmp_path / "mine.npz")
    assert (data.height, data.width, data.channels) == (12, 10, 3)
    assert (data.n_train, data.n_test, data.n_classes) == (7, 2, 3)
    # not built yet: the loader's known shape, or its options
    assert dataset_size("image_folder", {"image_size": 64, "grayscale": True}).height == 64
    assert dataset_size("image_folder", {"image_size": 64, "grayscale": True}).channels == 1


def test_the_device_a_job_is_sized_for():
    assert expected_device("auto", gpu_requested=True) == "cuda"  # profiles/slurm's gres
    assert expected_device("auto", gpu_requested=False) == "cpu"  # a cluster without GPUs
    assert expected_device("cuda:1", gpu_requested=False) == "cuda"
    assert expected_device("cpu", gpu_requested=True) == "cpu"


def test_preparing_image_files_takes_longer_than_unpickling_arrays(tmp_path):
    celeba = {"celeba": {"download": True, "split": {"n_max": 5000, "n_test": 1000}}}
    cifar = JobSizes(_study(CIFAR, {"epochs": 1}), tmp_path).of("prepare", {"dataset": "cifar10"})
    faces = JobSizes(_study(celeba, {"epochs": 1}, ("exp20",)), tmp_path)
    # 48,500 JPEGs at 5 ms on 4 threads: 61 s, x 2, + 20 s start-up -> 3 minutes; CIFAR-10's
    # 184 MB of pickles at 25 MB/s: 7.4 s -> 1 minute
    assert (faces.of("prepare", {"dataset": "celeba"}).runtime, cifar.runtime) == (3, 1)


def test_a_smaller_per_epoch_test_draw_shortens_the_training(tmp_path):
    def train(**group):
        training = {"arch": "resnet8", "epochs": 200, "batch_size": 128}
        study = _study(FMNIST, training, group_training=group)
        return JobSizes(study, tmp_path).of("train", _wildcards("fashion_mnist"))

    # 3,500 images evaluated every epoch (3,000 test + 500 validation) against 1,500: 200 x
    # 2,000 / 3,817.5 images/s x 2 = 210 s less
    assert train().runtime - train(epoch_test_per_class=100).runtime == 4


# -- requests a SLURM partition can satisfy (fragility.workflow.cluster) ----------------------------------

SCONTROL = (  # `scontrol show partition gpu -o`, as SLURM 22.05 prints it
    "PartitionName=gpu AllowGroups=ALL Default=NO MaxNodes=UNLIMITED MaxTime=2-00:00:00 "
    "MinNodes=0 Nodes=g[01-02] MaxCPUsPerNode=UNLIMITED MaxMemPerNode=UNLIMITED "
    "TotalCPUs=96 TotalNodes=2 DefMemPerCPU=1000"
)
SINFO_NODES = "48 380000\n32 250000\n"  # `sinfo -h -N -p gpu -o "%c %m"`: two node sizes


def test_a_partition_offers_its_largest_node_within_its_caps():
    from fragility.workflow.cluster import Limits, limits_from, slurm_minutes

    assert limits_from("gpu", SCONTROL, SINFO_NODES) == Limits("gpu", 48, 380000, 2880.0)
    capped = SCONTROL.replace("MaxCPUsPerNode=UNLIMITED", "MaxCPUsPerNode=16").replace(
        "MaxMemPerNode=UNLIMITED", "MaxMemPerNode=64000"
    )
    assert limits_from("gpu", capped, SINFO_NODES) == Limits("gpu", 16, 64000, 2880.0)
    assert limits_from("x", "MaxTime=UNLIMITED", "") == Limits("x", None, None, None)
    assert [slurm_minutes(t) for t in ("30", "30:30", "2:00:00", "1-02:30", "INFINITE")] == [
        30.0, 30.5, 120.0, 1590.0, None,
    ]  # fmt: skip


def test_a_request_no_node_can_satisfy_is_named_in_one_line():
    from fragility.workflow.cluster import Request, unfit_line

    calls = []

    def slurm(cmd):  # a cluster whose default partition is `gpu`
        calls.append(cmd[0])
        return (
            {"sinfo": "cpu\ngpu*\n", "scontrol": SCONTROL}[cmd[0]]
            if "-N" not in cmd
            else (SINFO_NODES)
        )

    fits = Request("group job gpu_a (2 jobs: extract_embeddings, train_model)", None, 2, 5120, 37)
    assert unfit_line([fits], slurm) is None
    too_big = Request("group job gpu_b (2 jobs: extract_embeddings, train_model)", "gpu", 64,
                      400000, 3000)  # fmt: skip
    calls.clear()
    line = unfit_line([fits, too_big, too_big], slurm)
    assert "\n" not in line
    assert line.startswith(
        "cluster error: group job gpu_b (2 jobs: extract_embeddings, train_model) asks "
        "partition gpu for 64 CPUs, 400000 MB, 50:00 h on one node, but its nodes offer at "
        "most 48 CPUs, 380000 MB, 48:00 h (MaxTime), so it would wait in the queue forever "
        "(1 more submissions do not fit either)."
    ), line
    # limits are read once per partition name (the default, then `gpu`)
    assert calls.count("scontrol") == 2


def test_unknown_partition_limits_check_nothing(capsys):
    import subprocess

    from fragility.workflow.cluster import Request, unfit_line

    def no_cluster(cmd):
        raise subprocess.CalledProcessError(1, cmd)

    assert unfit_line([Request("job x", "debug", 99, 1, 1)], no_cluster) is None
    assert "not checked" in capsys.readouterr().out
