import numpy as np
import pytest

from fragility.errors import ConfigError, FragilityError
from fragility.splits import Imbalance, class_counts, make_split, subset_indices


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


def test_n_max_larger_than_the_data_says_so():
    y_train, y_test = _labels(per_class_train=60)
    with pytest.raises(FragilityError, match="fewer than n_max=50 \\+ n_val=20"):
        make_split(y_train, y_test, "balanced", n_max=50, seed=0, n_val=20)
    with pytest.raises(FragilityError, match="n_test=30"):
        make_split(y_train, y_test, "balanced", n_max=10, seed=0, n_test=30)
