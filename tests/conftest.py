import numpy as np
import pytest

from fragility.training.engine import Subset


def pytest_collection_modifyitems(config, items):
    """Run the SLURM tests last. Once their cluster is stopped, every Snakemake start pays the
    slurm plugin's 10 s `scontrol show config` timeout (it runs at import when slurm-client
    is installed), which would slow every workflow test after them."""
    items.sort(key=lambda item: item.get_closest_marker("slurm") is not None)


@pytest.fixture(scope="session")
def digit_subsets():
    """A small real learning problem: 8x8 digits, 3 classes, 30 train / 15 test per class."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * 255 / 16).astype(np.uint8)[..., None]
    y = d.target.astype(np.int64)
    train_idx, test_idx = [], []
    for c in range(3):
        rows = np.flatnonzero(y == c)
        train_idx += rows[:30].tolist()
        test_idx += rows[30:45].tolist()
    return Subset(x[train_idx], y[train_idx]), Subset(x[test_idx], y[test_idx])
