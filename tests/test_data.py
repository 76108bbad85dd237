"""Tests for fragility.data.datasets: every loader on tiny files written in the real on-disk format."""

from __future__ import annotations

import gzip
import pickle
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fragility.data import datasets as D
from fragility.data.datasets import Canonical
from fragility.errors import ConfigError, DatasetNotFound, FragilityError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


# --- generators for the on-disk formats ---------------------------------------------------


def write_idx(path: Path, arr: np.ndarray, compress: bool = True) -> None:
    raw = bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape)
    raw += arr.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def make_fashion(folder: Path, n_train: int = 12, n_test: int = 6, compress: bool = True):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = np.arange(n, dtype=np.uint8) % 10
        write_idx(folder / f"{prefix}-images-idx3-ubyte", x, compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", y, compress)
        arrays[prefix] = (x, y)
    return arrays


def cifar_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def dump(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def make_cifar10(root: Path) -> dict[str, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rows = {}
    for i in range(1, 6):
        rows[f"data_batch_{i}"] = cifar_rows(4, i)
        labels = [(i + j) % 3 for j in range(4)]
        key = (lambda k: k.encode()) if i == 1 else (lambda k: k)  # bytes keys, as in py2 pickles
        dump(
            folder / f"data_batch_{i}",
            {key("data"): rows[f"data_batch_{i}"], key("labels"): labels},
        )
    rows["test_batch"] = cifar_rows(3, 9)
    dump(folder / "test_batch", {"data": rows["test_batch"], "labels": [2, 1, 0]})
    dump(folder / "batches.meta", {"label_names": ["airplane", b"automobile", "bird"]})
    return rows


def make_cifar100(root: Path) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    dump(
        folder / "train",
        {"data": cifar_rows(6, 1), "fine_labels": [0, 1, 2, 3, 4, 4], "coarse_labels": [0] * 6},
    )
    dump(
        folder / "test", {"data": cifar_rows(2, 2), "fine_labels": [4, 0], "coarse_labels": [0, 0]}
    )
    dump(folder / "meta", {"fine_label_names": ["apple", "bear", "cloud", "dolphin", "elephant"]})


def make_svhn(root: Path) -> np.ndarray:
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(0).integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)
    savemat(root / "train_32x32.mat", {"X": x, "y": np.array([[10], [1], [2], [10], [9]])})
    savemat(root / "test_32x32.mat", {"X": x[..., :2], "y": np.array([[3], [10]])})
    return x


CELEBA_ATTRS = [f"Attr{i}" for i in range(40)]
CELEBA_ATTRS[8], CELEBA_ATTRS[20] = "Black_Hair", "Male"  # their places in the real file
# filename, Black_Hair, Male, partition, colour
CELEBA_ROWS = [
    ("000001.jpg", 1, -1, 0, (255, 0, 0)),
    ("000002.jpg", 1, 1, 0, (0, 255, 0)),
    ("000003.jpg", -1, 1, 0, (0, 0, 255)),
    ("000004.jpg", 1, 1, 1, (255, 255, 0)),
    ("000005.jpg", 1, -1, 2, (0, 255, 255)),
    ("000006.jpg", -1, -1, 2, (255, 0, 255)),
    ("000007.jpg", 1, 1, 2, (255, 255, 255)),
]


def make_celeba(root: Path) -> Path:
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    attr_lines = [str(len(CELEBA_ROWS)), " ".join(CELEBA_ATTRS)]
    for fname, hair, male, _part, colour in CELEBA_ROWS:
        values = [-1] * 40
        values[8], values[20] = hair, male
        attr_lines.append(fname + "  " + " ".join(f"{v:2d}" for v in values))
        img = Image.new("RGB", (30, 12), (0, 0, 0))  # wide: black sides, coloured centre
        img.paste(colour, (6, 0, 24, 12))  # the 12x12 centre crop is 9..21
        img.save(folder / "img_align_celeba" / fname, quality=95)
    (folder / "list_attr_celeba.txt").write_text("\n".join(attr_lines) + "\n")
    (folder / "list_eval_partition.txt").write_text(
        "".join(f"{r[0]} {r[3]}\n" for r in CELEBA_ROWS)
    )
    return folder


def make_image_folder(root: Path, classes=("dog", "cat", "bird"), per_class: int = 2) -> None:
    for split in ("train", "test"):
        for ci, cls in enumerate(classes):
            d = root / split / cls
            d.mkdir(parents=True)
            for j in range(per_class):
                Image.new("RGB", (10, 6), (40 * ci, 100, 10 * j)).save(d / f"img{j}.png")
            (d / "notes.txt").write_text("not an image")


def tiny_canonical() -> Canonical:
    rng = np.random.default_rng(1)
    return Canonical(
        rng.integers(0, 256, (5, 4, 4, 3), dtype=np.uint8),
        np.array([0, 1, 2, 0, 1], dtype=np.int64),
        rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8),
        np.array([2, 0], dtype=np.int64),
        ["a", "b/c", "é"],
        "tiny",
    )


# --- loaders -------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_idx(tmp_path, compress):
    arrays = make_fashion(tmp_path, compress=compress)
    d = D.load_raw("fashion_mnist", root=tmp_path)
    assert d.x_train.shape == (12, 28, 28, 1) and d.x_test.shape == (6, 28, 28, 1)
    assert d.x_train.dtype == np.uint8 and d.y_train.dtype == np.int64
    np.testing.assert_array_equal(d.x_train[..., 0], arrays["train"][0])
    np.testing.assert_array_equal(d.y_test, arrays["t10k"][1])
    assert (
        d.classes[0] == "T-shirt/top" and d.classes[9] == "Ankle boot" and d.name == "fashion_mnist"
    )


def test_fashion_mnist_torchvision_layout(tmp_path):
    make_fashion(tmp_path / "FashionMNIST" / "raw")
    assert len(D.load_raw("fashion_mnist", root=tmp_path).y_train) == 12


def test_fashion_mnist_bad_magic_names_file(tmp_path):
    make_fashion(tmp_path, compress=False)
    bad = tmp_path / "train-labels-idx1-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x03" + bad.read_bytes()[4:])
    with pytest.raises(FragilityError, match="train-labels-idx1-ubyte"):
        D.load_raw("fashion_mnist", root=tmp_path)


def test_fashion_mnist_size_mismatch_names_file(tmp_path):
    make_fashion(tmp_path, compress=False)
    bad = tmp_path / "t10k-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-5])
    with pytest.raises(FragilityError, match="t10k-images-idx3-ubyte"):
        D.load_raw("fashion_mnist", root=tmp_path)


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_debian_package():
    d = D.load_raw("fashion_mnist")  # default root is the Debian package's folder
    assert d.x_train.shape == (60000, 28, 28, 1) and d.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(d.y_train).tolist() == [6000] * 10
    assert np.bincount(d.y_test).tolist() == [1000] * 10


def test_cifar10(tmp_path):
    rows = make_cifar10(tmp_path)
    d = D.load_raw("cifar10", root=tmp_path)
    assert d.x_train.shape == (20, 32, 32, 3) and d.x_test.shape == (3, 32, 32, 3)
    assert d.classes == ["airplane", "automobile", "bird"]
    assert d.y_train[:4].tolist() == [1, 2, 0, 1] and d.y_test.tolist() == [2, 1, 0]
    # pixel (row 1, col 2) of image 0 of batch 2 (= train image 4): R, G, B planes of 1024
    r = rows["data_batch_2"][0]
    assert d.x_train[4, 1, 2].tolist() == [r[34], r[1024 + 34], r[2048 + 34]]
    np.testing.assert_array_equal(d.x_test[2].transpose(2, 0, 1).ravel(), rows["test_batch"][2])


def test_cifar10_folder_as_root_and_bad_batch(tmp_path):
    make_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    assert len(D.load_raw("cifar10", root=folder).y_train) == 20
    dump(folder / "data_batch_3", {"data": cifar_rows(4, 0)[:, :100], "labels": [0] * 4})
    with pytest.raises(FragilityError, match="data_batch_3"):
        D.load_raw("cifar10", root=folder)


class _RunsACommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_cifar_batch_that_would_run_code_is_refused(tmp_path):
    make_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    with open(folder / "data_batch_1", "wb") as f:  # protocol 2 writes bytes via _codecs.encode
        pickle.dump({"data": cifar_rows(4, 1), "labels": [0, 1, 2, 0]}, f, protocol=2)
    assert len(D.load_raw("cifar10", root=folder).y_train) == 20
    marker = tmp_path / "MARKER"
    batch = {"data": cifar_rows(4, 0), "labels": [0] * 4, "note": _RunsACommand(marker)}
    dump(folder / "data_batch_2", batch)
    with pytest.raises(FragilityError) as refused:
        D.load_raw("cifar10", root=folder)
    assert str(refused.value) == (
        f"cannot read {folder / 'data_batch_2'}: UnpicklingError: it names posix.system; a "
        "dataset batch holds only arrays, lists and strings"
    )
    assert not marker.exists()


def test_cifar100(tmp_path):
    make_cifar100(tmp_path)
    d = D.load_raw("cifar100", root=tmp_path)
    assert d.x_train.shape == (6, 32, 32, 3) and d.x_test.shape == (2, 32, 32, 3)
    assert d.y_train.tolist() == [0, 1, 2, 3, 4, 4] and d.y_test.tolist() == [4, 0]
    assert d.classes[-1] == "elephant"


def test_svhn_maps_10_to_0(tmp_path):
    x = make_svhn(tmp_path)
    d = D.load_raw("svhn", root=tmp_path)
    assert d.x_train.shape == (5, 32, 32, 3) and d.x_test.shape == (2, 32, 32, 3)
    assert d.y_train.tolist() == [0, 1, 2, 0, 9] and d.y_test.tolist() == [3, 0]
    assert d.x_train[3, 5, 7].tolist() == x[5, 7, :, 3].tolist()
    assert d.classes == [str(i) for i in range(10)]


def test_celeba_filters_and_labels(tmp_path):
    make_celeba(tmp_path)
    d = D.load_raw("celeba", root=tmp_path, image_size=8)
    assert d.classes == ["black_hair_female", "black_hair_male"]
    # black-haired only; partitions 0 and 1 are train, 2 is test; label 1 = male
    assert d.x_train.shape == (3, 8, 8, 3) and d.x_test.shape == (2, 8, 8, 3)
    assert d.y_train.tolist() == [0, 1, 1] and d.y_test.tolist() == [0, 1]
    # the centre crop removed the black sides: every pixel has the image's colour
    colours = [r[4] for r in CELEBA_ROWS if r[1] == 1]
    for img, colour in zip([*d.x_train, *d.x_test], colours):
        assert np.abs(img.astype(int) - colour).max() < 40


def test_celeba_missing_image_names_file(tmp_path):
    folder = make_celeba(tmp_path)
    (folder / "img_align_celeba" / "000004.jpg").unlink()
    with pytest.raises(FragilityError, match="000004.jpg"):
        D.load_raw("celeba", root=tmp_path)


def test_digits_split():
    from sklearn.datasets import load_digits

    d = D.load_raw("digits")
    y = load_digits().target
    counts = np.bincount(y)
    assert d.x_train.shape[1:] == (8, 8, 1) and len(d.y_train) + len(d.y_test) == len(y) == 1797
    assert np.bincount(d.y_train).tolist() == (counts * 4 // 5).tolist()
    assert d.x_train.max() == 255 and d.x_train.dtype == np.uint8
    first3 = np.flatnonzero(y == 3)[0]
    expected = np.round(load_digits().images[first3] * 255 / 16).astype(np.uint8)
    np.testing.assert_array_equal(d.x_train[d.y_train == 3][0, ..., 0], expected)
    again = D.load_raw("digits")
    np.testing.assert_array_equal(again.x_test, d.x_test)
    np.testing.assert_array_equal(again.y_test, d.y_test)


def test_image_folder(tmp_path):
    make_image_folder(tmp_path)
    d = D.load_raw("image_folder", root=tmp_path, image_size=5)
    assert d.classes == ["bird", "cat", "dog"]
    assert d.x_train.shape == (6, 5, 5, 3) and d.y_train.tolist() == [0, 0, 1, 1, 2, 2]
    assert d.x_test[5, 2, 2].tolist() == [0, 100, 10]  # dog (class index 0 when made), img1
    g = D.load_raw("image_folder", root=tmp_path, image_size=4, grayscale=True)
    assert g.x_train.shape == (6, 4, 4, 1)


def test_image_folder_errors(tmp_path):
    make_image_folder(tmp_path)
    (tmp_path / "test" / "extra").mkdir()
    (tmp_path / "test" / "extra" / "a.png").write_bytes(b"")
    with pytest.raises(FragilityError, match="same"):
        D.load_raw("image_folder", root=tmp_path)
    (tmp_path / "train" / "extra").mkdir()
    with pytest.raises(FragilityError, match="no images"):
        D.load_raw("image_folder", root=tmp_path)
    with pytest.raises(ConfigError, match="root"):
        D.load_raw("image_folder")
    with pytest.raises(DatasetNotFound, match=str(tmp_path / "nowhere")):
        D.load_raw("image_folder", root=tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="image_size"):
        D.load_raw("image_folder", root=tmp_path, image_size=0)


def _cut_jpeg(folder: Path) -> Path:
    path = folder / "img2.jpg"
    Image.new("RGB", (16, 16), (200, 10, 10)).save(path, "JPEG")
    path.write_bytes(path.read_bytes()[:300])  # a copy cut short
    return path


def _damaged_png(content: bytes):
    def damage(folder: Path) -> Path:
        path = folder / "img1.png"
        path.write_bytes(content if content else b"")
        return path

    return damage


@pytest.mark.parametrize(
    "damage",
    [_cut_jpeg, _damaged_png(b""), _damaged_png(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)],
    ids=["jpeg cut short", "empty png", "png header only"],
)
def test_a_corrupt_image_is_one_error_naming_it(tmp_path, damage):
    make_image_folder(tmp_path)
    bad = damage(tmp_path / "train" / "cat")
    with pytest.raises(FragilityError) as error:
        D.load_raw("image_folder", root=tmp_path)
    message = str(error.value)
    assert message.startswith(f"cannot read image {bad}: ") and "\n" not in message


def test_an_empty_class_folder_is_named(tmp_path):
    make_image_folder(tmp_path)
    for image in (tmp_path / "test" / "cat").glob("*.png"):
        image.unlink()  # notes.txt stays: not an image
    with pytest.raises(FragilityError) as error:
        D.load_raw("image_folder", root=tmp_path)
    assert str(error.value).startswith(f"image_folder: no images in {tmp_path / 'test' / 'cat'} (")


# --- errors and dispatch -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, hint",
    [
        ("fashion_mnist", "apt-get install dataset-fashion-mnist"),
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("svhn", "train_32x32.mat"),
        ("celeba", "list_attr_celeba.txt"),
    ],
)
def test_missing_root_says_where_and_how(tmp_path, name, hint):
    root = tmp_path / "empty"
    with pytest.raises(DatasetNotFound) as info:
        D.load_raw(name, root=root)
    message = str(info.value)
    assert name in message and str(root) in message and hint in message
    assert "download: true" in message


def test_unknown_name_lists_valid_names():
    with pytest.raises(ConfigError) as info:
        D.load_raw("mnist")
    assert ", ".join(sorted(D.LOADERS)) in str(info.value)


def test_unknown_option():
    with pytest.raises(ConfigError, match="image_size"):
        D.load_raw("digits", image_size=8)


def fake_torchvision(monkeypatch, **classes) -> None:
    """Stand-in torchvision.datasets (real torchvision takes seconds to import)."""
    datasets = types.ModuleType("torchvision.datasets")
    datasets.__dict__.update(classes)
    package = types.ModuleType("torchvision")
    package.datasets = datasets
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)


def test_download_uses_torchvision_into_root(tmp_path, monkeypatch):
    calls = []

    def fashion(root, download):
        calls.append((root, download))
        make_fashion(Path(root) / "FashionMNIST" / "raw")

    fake_torchvision(monkeypatch, FashionMNIST=fashion)
    d = D.load_raw("fashion_mnist", root=tmp_path / "dl", download=True)
    assert calls == [(str(tmp_path / "dl"), True)] and len(d.y_train) == 12
    D.load_raw("fashion_mnist", root=tmp_path / "dl", download=True)
    assert len(calls) == 1  # files present: no second download


def test_download_svhn_fetches_both_splits(tmp_path, monkeypatch):
    splits = []

    def svhn(root, download, split):
        splits.append(split)
        if split == "test":
            make_svhn(Path(root))

    fake_torchvision(monkeypatch, SVHN=svhn)
    assert len(D.load_raw("svhn", root=tmp_path, download=True).y_test) == 2
    assert splits == ["train", "test"]


def test_download_failure_is_dataset_not_found(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("network unreachable")

    fake_torchvision(monkeypatch, CIFAR10=offline)
    with pytest.raises(DatasetNotFound, match="network unreachable"):
        D.load_raw("cifar10", root=tmp_path, download=True)


# --- canonical files -----------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    data = tiny_canonical()
    path = tmp_path / "sub" / "tiny.npz"
    D.save_canonical(data, path)
    assert [p.name for p in path.parent.iterdir()] == ["tiny.npz"]
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == ["classes", "name", "x_test", "x_train", "y_test", "y_train"]
    back = D.load_canonical(path)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(back, field), getattr(data, field))
        assert getattr(back, field).dtype == getattr(data, field).dtype
    assert back.classes == ["a", "b/c", "é"] and back.name == "tiny"


def test_save_is_atomic(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        D.save_canonical(tiny_canonical(), tmp_path / "tiny.npz")
    assert list(tmp_path.iterdir()) == []


def test_load_canonical_missing_and_corrupt(tmp_path):
    with pytest.raises(DatasetNotFound, match=str(tmp_path / "none.npz")):
        D.load_canonical(tmp_path / "none.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(FragilityError, match="bad.npz"):
        D.load_canonical(tmp_path / "bad.npz")


@pytest.mark.parametrize("keep", [0.5, 0.95], ids=["half", "last bytes missing"])
def test_a_truncated_canonical_file_is_one_error_naming_it(tmp_path, keep):
    path = tmp_path / "tiny.npz"
    D.save_canonical(tiny_canonical(), path)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(FragilityError) as error:
        D.load_canonical(path)
    message = str(error.value)
    assert message.startswith(f"{path} is not a readable canonical dataset file (truncated")
    assert message.endswith("; delete it to have it built again") and "\n" not in message


def test_labels_outside_the_class_range_name_the_file(tmp_path):
    good = tiny_canonical()
    path = tmp_path / "tiny.npz"
    bad = Canonical.__new__(Canonical)  # skip the constructor's check, as a foreign writer
    bad.__dict__.update(vars(good), y_test=np.array([2, 7], dtype=np.int64))
    D.save_canonical(bad, path)
    with pytest.raises(FragilityError) as error:
        D.load_canonical(path)
    assert str(error.value) == (
        f"{path}: tiny: y_test has 1 labels outside the class range 0..2 (e.g. 7); delete it "
        "to have it built again"
    )


def test_canonical_rejects_bad_arrays():
    good = tiny_canonical()
    with pytest.raises(FragilityError, match="x_train"):
        Canonical(
            good.x_train.astype(np.float32),
            good.y_train,
            good.x_test,
            good.y_test,
            good.classes,
            "t",
        )
    with pytest.raises(FragilityError, match="labels outside"):
        Canonical(good.x_train, good.y_train + 5, good.x_test, good.y_test, good.classes, "t")


def test_prepare_dataset(tmp_path):
    out = tmp_path / "data" / "digits.npz"
    d = D.prepare_dataset("digits", out)
    back = D.load_canonical(out)
    np.testing.assert_array_equal(back.x_train, d.x_train)
    assert back.name == "digits" and back.classes == d.classes
