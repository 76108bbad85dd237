import hashlib

import numpy as np
import pytest

from fragility.data.splits import (
    Imbalance,
    class_counts,
    make_split,
    resolve_class_order,
    seeded_class_order,
    subset_indices,
)
from fragility.errors import ConfigError, FragilityError


def test_cifar10_exp100_counts_are_the_papers():
    counts = class_counts("exp100", 5000, 10)
    assert counts == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(counts) == 12406


def test_step_and_balanced_counts():
    assert class_counts("step10", 500, 10) == [500] * 5 + [50] * 5
    assert class_counts("balanced", 7, 3) == [7, 7, 7]
    assert class_counts("exp10", 100, 2) == [100, 10]


@pytest.mark.parametrize("bad", ["exp", "exp-3", "step", "ratio100", "exp0.5", "", "EXP100"])
def test_malformed_imbalance_is_one_clear_error(bad):
    with pytest.raises(ConfigError, match="malformed imbalance"):
        Imbalance.parse(bad)


def _labels(per_class_train=60, per_class_test=20, n_classes=4):
    rng = np.random.default_rng(123)
    y_train = rng.permutation(np.repeat(np.arange(n_classes), per_class_train))
    y_test = rng.permutation(np.repeat(np.arange(n_classes), per_class_test))
    return y_train, y_test


def test_split_counts_subsets_and_disjointness():
    y_train, y_test = _labels()
    split = make_split(y_train, y_test, "exp10", n_max=40, seed=0, n_val=5, n_test=10)
    assert split.column_names == ["index", "label", "subset"]
    train_idx, train_y = subset_indices(split, "train")
    pool_idx, _ = subset_indices(split, "pool")
    val_idx, val_y = subset_indices(split, "val")
    test_idx, test_y = subset_indices(split, "test")
    # exp10 over 4 classes: 40 * 10^(-i/3) -> 40, 18, 8, 4
    assert np.bincount(train_y).tolist() == [40, 18, 8, 4]
    assert np.bincount(val_y).tolist() == [5] * 4
    assert np.bincount(test_y).tolist() == [10] * 4
    assert len(pool_idx) == 4 * 40 - (40 + 18 + 8 + 4)
    # train, pool and val are disjoint rows of the training array; labels are the array's
    assert len(set(train_idx) | set(pool_idx) | set(val_idx)) == len(train_idx) + len(
        pool_idx
    ) + len(val_idx)
    assert np.array_equal(y_train[train_idx], train_y)
    assert np.array_equal(y_test[test_idx], test_y)


def test_same_seed_same_split_other_seed_other_split():
    y_train, y_test = _labels()
    a = make_split(y_train, y_test, "exp10", n_max=40, seed=7)
    b = make_split(y_train, y_test, "exp10", n_max=40, seed=7)
    c = make_split(y_train, y_test, "exp10", n_max=40, seed=8)
    assert a.equals(b)
    assert not a.equals(c)


def test_pool_and_test_are_shared_by_all_imbalances_of_a_seed():
    # RQ1 compares models on the same test set and re-trains on the same balanced pool
    y_train, y_test = _labels()
    bal = make_split(y_train, y_test, "balanced", n_max=40, seed=3, n_test=10)
    imb = make_split(y_train, y_test, "exp10", n_max=40, seed=3, n_test=10)
    pool = np.sort(np.concatenate([subset_indices(imb, s)[0] for s in ("train", "pool")]))
    assert np.array_equal(pool, np.sort(subset_indices(bal, "train")[0]))
    assert np.array_equal(subset_indices(bal, "test")[0], subset_indices(imb, "test")[0])


def test_class_order_moves_the_majority():
    y_train, y_test = _labels()
    split = make_split(y_train, y_test, "exp10", n_max=40, seed=0, class_order=[3, 2, 1, 0])
    assert np.bincount(subset_indices(split, "train")[1]).tolist() == [4, 8, 18, 40]
    with pytest.raises(ConfigError, match="class_order"):
        make_split(y_train, y_test, "exp10", n_max=40, seed=0, class_order=[0, 1, 2])


def _digest(split) -> str:
    """A split table's rows, labels and subsets as one short hash."""
    h = hashlib.sha256()
    for column in ("index", "label"):
        h.update(split.column(column).to_numpy().astype(np.int64).tobytes())
    h.update("|".join(split.column("subset").to_pylist()).encode())
    return h.hexdigest()[:16]


# The digits splits of the smoke preset's settings (n_max 100, n_val 20, n_test 30), seeds
# 0-4, as the code made them before the class order had modes (commit fdb2f8d).
LABEL_ORDER_DIGESTS = {
    "balanced": ["e0da8e3d981faa0d", "fae93ae196238e37", "b190e99874d69e67",
                 "07131df69441a718", "0f781e8f0ca50d4e"],
    "exp10": ["12ad4f6119777e23", "ca7e51ce2d57b3ab", "3cb82853ca8be03b",
              "76e12e26187a3460", "2342783aa5e8ec29"],
}  # fmt: skip


@pytest.mark.parametrize("imbalance", sorted(LABEL_ORDER_DIGESTS))
def test_label_order_draws_the_same_splits_as_before(imbalance):
    from fragility.data.datasets import load_raw

    digits = load_raw("digits")
    draw = {"n_val": 20, "n_test": 30}
    for seed, digest in enumerate(LABEL_ORDER_DIGESTS[imbalance]):
        split = make_split(digits.y_train, digits.y_test, imbalance, 100, seed, **draw)
        assert _digest(split) == digest, seed
        for order in ("label", list(range(10))):
            again = make_split(digits.y_train, digits.y_test, imbalance, 100, seed, **draw,
                               class_order=order)  # fmt: skip
            assert again.equals(split)
    counts = np.bincount(subset_indices(split, "train")[1]).tolist()
    assert counts == class_counts(imbalance, 100, 10)  # 100, 77, 59, ..., 10 for exp10


def test_the_seeded_order_is_the_seed_s_own_and_differs_between_seeds():
    orders = [seeded_class_order(10, seed) for seed in range(5)]
    assert orders == [seeded_class_order(10, seed) for seed in range(5)]
    assert all(sorted(order) == list(range(10)) for order in orders)
    # the draw of seed 0, pinned: a results folder's seeded splits stay reproducible
    assert orders[0] == [3, 8, 9, 4, 6, 7, 2, 0, 1, 5]
    assert len({order[-1] for order in orders}) > 1  # not always the same smallest class
    assert len({order[0] for order in orders}) > 1
    assert resolve_class_order("seeded", 10, 3) == (orders[3], "seeded")
    assert resolve_class_order(None, 3, 3) == resolve_class_order("label", 3, 9) == (
        [0, 1, 2], "label")  # fmt: skip
    assert resolve_class_order([2, 0, 1], 3, 0) == ([2, 0, 1], "explicit")


@pytest.mark.parametrize(
    ("order", "message"),
    [
        ("random", "class_order 'random': use label or seeded or a list of the class indices"),
        ([0, 0, 1, 2], "class_order [0, 0, 1, 2] must list every class 0..3 exactly once"),
    ],
)
def test_an_invalid_class_order_is_one_line(order, message):
    y_train, y_test = _labels()
    with pytest.raises(ConfigError) as info:
        make_split(y_train, y_test, "exp10", n_max=40, seed=0, class_order=order)
    assert str(info.value) == message


def test_a_class_order_changes_only_how_many_images_each_class_keeps():
    # same seed, two orders: the same pool, validation and test images; every class trains
    # on the first n of the same shuffled pool, n given by its position in the order
    y_train, y_test = _labels()
    draw = {"n_max": 40, "seed": 5, "n_val": 5, "n_test": 10}
    label = make_split(y_train, y_test, "exp10", **draw)
    seeded = make_split(y_train, y_test, "exp10", **draw, class_order="seeded")
    order = seeded_class_order(4, 5)
    assert order != [0, 1, 2, 3]
    for subset in ("val", "test"):
        assert np.array_equal(subset_indices(label, subset)[0], subset_indices(seeded, subset)[0])

    def pool(split):
        return np.sort(np.concatenate([subset_indices(split, s)[0] for s in ("train", "pool")]))

    assert np.array_equal(pool(label), pool(seeded))
    counts = class_counts("exp10", 40, 4)
    for cls in range(4):
        rows = {name: set(subset_indices(s, "train")[0][subset_indices(s, "train")[1] == cls])
                for name, s in (("label", label), ("seeded", seeded))}  # fmt: skip
        assert len(rows["label"]) == counts[cls]
        assert len(rows["seeded"]) == counts[order.index(cls)]
        small, large = sorted(rows.values(), key=len)
        assert small <= large


def test_n_max_larger_than_the_data_says_so():
    y_train, y_test = _labels(per_class_train=60)
    with pytest.raises(FragilityError, match="fewer than n_max=50 \\+ n_val=20"):
        make_split(y_train, y_test, "balanced", n_max=50, seed=0, n_val=20)
    with pytest.raises(FragilityError, match="n_test=30"):
        make_split(y_train, y_test, "balanced", n_max=10, seed=0, n_test=30)
