"""Raw datasets -> one canonical form (uint8 NHWC images, int64 labels) that later stages read.

The loaders parse the on-disk formats directly instead of going through torchvision's
dataset classes, which verify md5 sums and so reject local copies and small test files;
torchvision is used only to download (``download=True``).
"""

from __future__ import annotations

import codecs
import gzip
import inspect
import os
import pickle
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

try:  # numpy 2 renamed numpy.core to numpy._core
    from numpy._core import multiarray as numpy_multiarray
except ImportError:  # numpy 1
    from numpy.core import multiarray as numpy_multiarray

from fragility.errors import ConfigError, DatasetNotFound, FragilityError
from fragility.io import atomic_path

DOWNLOAD_ROOT = Path("data/raw")
DEFAULT_ROOTS: dict[str, str] = {
    "fashion_mnist": "/usr/share/datasets/fashion-mnist",
    "cifar10": "data/raw/cifar10",
    "cifar100": "data/raw/cifar100",
    "svhn": "data/raw/svhn",
    "celeba": "data/raw/celeba",
}
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp"}


@dataclass
class Canonical:
    """A dataset in canonical form: uint8 images (N, H, W, C), int64 labels, class names."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    name: str

    def __post_init__(self) -> None:
        self.classes = [str(c) for c in self.classes]
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] not in (1, 3):
                raise FragilityError(
                    f"{self.name}: x_{split} must be uint8 (N, H, W, 1|3), got {x.dtype} {x.shape}"
                )
            if y.dtype != np.int64 or y.shape != (len(x),):
                raise FragilityError(
                    f"{self.name}: y_{split} must be int64 ({len(x)},), got {y.dtype} {y.shape}"
                )
            outside = (y < 0) | (y >= len(self.classes))
            if outside.any():
                raise FragilityError(
                    f"{self.name}: y_{split} has {int(outside.sum())} labels outside the class "
                    f"range 0..{len(self.classes) - 1} (e.g. {int(y[outside][0])})"
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise FragilityError(
                f"{self.name}: train images {self.x_train.shape[1:]} and test "
                f"images {self.x_test.shape[1:]} differ in shape"
            )


# --- locating files (and downloading them) -------------------------------------------------


def _first_with(candidates: list[Path], files: list[str], suffixes: tuple[str, ...]) -> Path | None:
    for folder in candidates:
        if all(any((folder / (f + s)).exists() for s in suffixes) for f in files):
            return folder
    return None


def _locate(
    name: str,
    candidates: list[Path],
    files: list[str],
    how: str,
    download_dir: Path | None = None,
    fetch: Callable[[Path], None] | None = None,
    suffixes: tuple[str, ...] = ("",),
) -> Path:
    """Return the first candidate folder holding all ``files``, downloading first if allowed."""
    found = _first_with(candidates, files, suffixes)
    note = ""
    if found is None and download_dir is not None and fetch is not None:
        try:
            fetch(download_dir)
        except Exception as exc:  # network, disk, checksum: all mean "could not get it"
            raise DatasetNotFound(
                f"{name}: download into {download_dir} failed "
                f"({type(exc).__name__}: {exc}). To get it: {how}"
            ) from exc
        found = _first_with(candidates, files, suffixes)
        note = f" (after downloading into {download_dir})"
    if found is None:
        shown = ", ".join(f + ("(.gz)" if ".gz" in suffixes else "") for f in files)
        looked = ", ".join(str(c) for c in candidates)
        raise DatasetNotFound(
            f"{name}: dataset not found{note}. Looked for {shown} in: {looked}. To get it: {how}"
        )
    return found


def _torchvision_fetch(cls_name: str, *calls: dict) -> Callable[[Path], None]:
    """A fetcher that lets torchvision download (and unpack) a dataset into a folder."""

    def fetch(target: Path) -> None:
        import torchvision.datasets  # here: 3 s to import, and only a download needs it

        target.mkdir(parents=True, exist_ok=True)
        for kwargs in calls or ({},):
            getattr(torchvision.datasets, cls_name)(str(target), download=True, **kwargs)

    return fetch


@dataclass(frozen=True)
class RawFiles:
    """Where a loader's raw files are: all of ``files`` (each with one of ``suffixes``) in
    one folder, a root itself or one of its ``subdirs``, and ``how`` to get them."""

    files: tuple[str, ...]
    how: str
    subdirs: tuple[str, ...] = ("",)
    suffixes: tuple[str, ...] = ("",)

    def candidates(self, roots: list[Path]) -> list[Path]:
        return [r / sub if sub else r for r in roots for sub in self.subdirs]

    def locate(self, name, roots, download_dir=None, fetch=None) -> Path:
        return _locate(
            name, self.candidates(roots), list(self.files), self.how, download_dir, fetch,
            self.suffixes,
        )  # fmt: skip


_CIFAR_HOW = (
    "put torchvision's `{}` folder (the unpacked python version from "
    "https://www.cs.toronto.edu/~kriz/cifar.html) under `root:`, or set `download: true`"
)
# digits is bundled with scikit-learn: it has no raw files
RAW_FILES: dict[str, RawFiles] = {
    "fashion_mnist": RawFiles(
        (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        ),
        "install the Debian package (`apt-get install dataset-fashion-mnist`), or set "
        "`root:` to a folder holding these files, or set `download: true`",
        subdirs=("", "FashionMNIST/raw"),
        suffixes=("", ".gz"),
    ),
    "cifar10": RawFiles(
        (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"),
        _CIFAR_HOW.format("cifar-10-batches-py"),
        subdirs=("cifar-10-batches-py", ""),
    ),
    "cifar100": RawFiles(
        ("train", "test", "meta"),
        _CIFAR_HOW.format("cifar-100-python"),
        subdirs=("cifar-100-python", ""),
    ),
    "svhn": RawFiles(
        ("train_32x32.mat", "test_32x32.mat"),
        "put train_32x32.mat and test_32x32.mat (http://ufldl.stanford.edu/housenumbers/) "
        "in `root:`, or set `download: true`",
    ),
    "celeba": RawFiles(
        ("img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt"),
        "put torchvision's `celeba` folder (img_align_celeba/, list_attr_celeba.txt, "
        "list_eval_partition.txt) under `root:`, or set `download: true` (Google Drive often "
        "refuses automated downloads; then fetch the files by hand)",
        subdirs=("celeba", ""),
    ),
    "image_folder": RawFiles(
        ("train", "test"),
        "arrange your images as root/train/<class>/*.png and root/test/<class>/*.png "
        "(png, jpg, jpeg or bmp; the same class folders in both)",
    ),
}


# --- format readers ------------------------------------------------------------------------


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an IDX file (optionally gzipped) of unsigned bytes with ``ndim`` dimensions."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as exc:
        raise FragilityError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) < 4 + 4 * ndim or raw[:3] != b"\x00\x00\x08" or raw[3] != ndim:
        raise FragilityError(
            f"{path} is not an IDX file of unsigned bytes with {ndim} "
            f"dimension(s) (magic {raw[:4].hex()})"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, ">i4", ndim, 4))
    body = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise FragilityError(
            f"{path}: header says shape {dims} but the file holds {body.size} data bytes"
        )
    return body.reshape(dims)


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that builds plain values and numpy arrays only: CIFAR's python batches
    are pickles, and a full unpickler would call any function a tampered copy names."""

    ALLOWED = {
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    } | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):  # how protocol 2 writes bytes in Python 3
            return codecs.encode
        if (module, name) in self.ALLOWED:
            return getattr(np if module == "numpy" else numpy_multiarray, name)
        raise pickle.UnpicklingError(
            f"it names {module}.{name}; a dataset batch holds only arrays, lists and strings"
        )


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _ArraysOnly(f, encoding="latin1").load()
    except Exception as exc:  # unpickling corrupt data can raise almost anything
        raise FragilityError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, dict):
        raise FragilityError(f"{path} does not hold a dict (got {type(obj).__name__})")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _entry(d: dict, key: str, path: Path):
    if key not in d:
        raise FragilityError(f"{path} has no {key!r} entry (has: {', '.join(map(str, d))})")
    return d[key]


def _cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    data = np.asarray(_entry(d, "data", path), dtype=np.uint8)
    labels = np.asarray(_entry(d, label_key, path), dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise FragilityError(
            f"{path}: expected data (N, 3072) and N labels, got {data.shape} and {labels.shape}"
        )
    # rows are 1024 red, 1024 green, 1024 blue values, each 32x32 row-major
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), labels


def _names(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _read_image(path: Path, size: int, mode: str) -> np.ndarray:
    """Read one image, center-crop it to a square and resize it to ``size`` x ``size``."""
    try:
        with Image.open(path) as img:
            img = img.convert(mode)
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FragilityError(f"cannot read image {path}: {first}") from None
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8).reshape(size, size, len(mode))


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"image_size must be a positive integer, got {size!r}")


def _read_images(paths: list[Path], size: int, mode: str) -> np.ndarray:
    out = np.empty((len(paths), size, size, len(mode)), dtype=np.uint8)
    # decoding releases the GIL, so threads help; map() keeps the order deterministic
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        for i, arr in enumerate(pool.map(lambda p: _read_image(p, size, mode), paths)):
            out[i] = arr
    return out


# --- loaders: (candidate roots, download folder or None, **options) -> Canonical ------------


def _load_fashion_mnist(roots: list[Path], download_dir: Path | None) -> Canonical:
    """IDX files, gzipped or not, in root or torchvision's root/FashionMNIST/raw."""
    fetch = _torchvision_fetch("FashionMNIST")
    folder = RAW_FILES["fashion_mnist"].locate("fashion_mnist", roots, download_dir, fetch)

    def idx(stem: str, ndim: int) -> np.ndarray:
        plain = folder / stem
        return _read_idx(plain if plain.exists() else folder / (stem + ".gz"), ndim)

    parts = []
    for prefix in ("train", "t10k"):
        x, y = idx(f"{prefix}-images-idx3-ubyte", 3), idx(f"{prefix}-labels-idx1-ubyte", 1)
        if len(x) != len(y):
            raise FragilityError(f"{folder}: {prefix} has {len(x)} images but {len(y)} labels")
        parts += [x[..., None], y.astype(np.int64)]
    return Canonical(*parts, classes=FASHION_MNIST_CLASSES, name="fashion_mnist")


def _load_cifar(name: str, roots: list[Path], download_dir: Path | None) -> Canonical:
    label_key, names_key, tv = {
        "cifar10": ("labels", "label_names", "CIFAR10"),
        "cifar100": ("fine_labels", "fine_label_names", "CIFAR100"),
    }[name]
    spec = RAW_FILES[name]
    *train, test, meta = spec.files  # the training batches, the test batch, the class names
    folder = spec.locate(name, roots, download_dir, _torchvision_fetch(tv))
    batches = [_cifar_batch(folder / f, label_key) for f in train]
    x_test, y_test = _cifar_batch(folder / test, label_key)
    classes = _names(_entry(_unpickle(folder / meta), names_key, folder / meta))
    return Canonical(
        np.concatenate([b[0] for b in batches]),
        np.concatenate([b[1] for b in batches]),
        x_test,
        y_test,
        classes=classes,
        name=name,
    )


def _load_cifar10(roots: list[Path], download_dir: Path | None) -> Canonical:
    """Pickled batches in torchvision's root/cifar-10-batches-py."""
    return _load_cifar("cifar10", roots, download_dir)


def _load_cifar100(roots: list[Path], download_dir: Path | None) -> Canonical:
    """Pickled train/test in torchvision's root/cifar-100-python (fine labels)."""
    return _load_cifar("cifar100", roots, download_dir)


def _svhn_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat  # here: 0.2 s to import, and only SVHN needs it

    try:
        mat = loadmat(path)
    except Exception as exc:  # scipy raises several unrelated types for corrupt files
        raise FragilityError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None or x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != y.size:
        raise FragilityError(f"{path}: expected X (32, 32, 3, N) and y (N, 1)")
    y = y.astype(np.int64).ravel()
    y[y == 10] = 0  # SVHN stores digit 0 as label 10
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)).astype(np.uint8), y


def _load_svhn(roots: list[Path], download_dir: Path | None) -> Canonical:
    """train_32x32.mat and test_32x32.mat (the 'extra' split is not used)."""
    fetch = _torchvision_fetch("SVHN", {"split": "train"}, {"split": "test"})
    folder = RAW_FILES["svhn"].locate("svhn", roots, download_dir, fetch)
    return Canonical(
        *_svhn_split(folder / "train_32x32.mat"),
        *_svhn_split(folder / "test_32x32.mat"),
        classes=[str(i) for i in range(10)],
        name="svhn",
    )


def _read_table(path: Path, header_lines: int, width: int) -> list[list[str]]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines()[header_lines:], header_lines + 1):
        if parts := line.split():
            if len(parts) != width:
                raise FragilityError(f"{path}, line {n}: expected {width} fields, got {len(parts)}")
            rows.append(parts)
    return rows


def _load_celeba(roots: list[Path], download_dir: Path | None, image_size: int = 32) -> Canonical:
    """Black-haired women (0) vs men (1); partitions 0+1 are train, 2 is test."""
    _check_size(image_size)
    fetch = _torchvision_fetch("CelebA", {"split": "all"})
    folder = RAW_FILES["celeba"].locate("celeba", roots, download_dir, fetch)
    attr_path = folder / "list_attr_celeba.txt"
    header = attr_path.read_text().splitlines()[1].split()
    if "Black_Hair" not in header or "Male" not in header:
        raise FragilityError(f"{attr_path}: line 2 must name the attributes Black_Hair and Male")
    hair, male = header.index("Black_Hair") + 1, header.index("Male") + 1
    partition = dict(_read_table(folder / "list_eval_partition.txt", 0, 2))
    split: dict[str, tuple[list[Path], list[int]]] = {"train": ([], []), "test": ([], [])}
    for row in _read_table(attr_path, 2, len(header) + 1):
        if row[hair] != "1":
            continue
        if row[0] not in partition:
            raise FragilityError(f"{folder / 'list_eval_partition.txt'} has no entry for {row[0]}")
        paths, labels = split["test" if partition[row[0]] == "2" else "train"]
        paths.append(folder / "img_align_celeba" / row[0])
        labels.append(int(row[male] == "1"))
    arrays = [
        a
        for paths, labels in split.values()
        for a in (_read_images(paths, image_size, "RGB"), np.array(labels, dtype=np.int64))
    ]
    return Canonical(*arrays, classes=["black_hair_female", "black_hair_male"], name="celeba")


def _load_digits(roots: list[Path], download_dir: Path | None) -> Canonical:
    """scikit-learn's bundled 8x8 digits; per class the first 80% train, the rest test."""
    from sklearn.datasets import load_digits  # here: 1 s to import, and only digits needs it

    digits = load_digits()
    x = np.round(digits.images * 255 / 16).astype(np.uint8)[..., None]
    y = digits.target.astype(np.int64)
    is_train = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        is_train[idx[: len(idx) * 4 // 5]] = True
    return Canonical(
        x[is_train],
        y[is_train],
        x[~is_train],
        y[~is_train],
        classes=[str(i) for i in range(10)],
        name="digits",
    )


def _load_image_folder(
    roots: list[Path], download_dir: Path | None, image_size: int = 32, grayscale: bool = False
) -> Canonical:
    """root/{train,test}/<class>/*.{png,jpg,jpeg,bmp}; center-cropped and resized to squares."""
    if not roots:
        raise ConfigError(_NO_IMAGE_FOLDER_ROOT)
    _check_size(image_size)
    root = RAW_FILES["image_folder"].locate("image_folder", roots)
    dirs = {
        split: sorted(
            p for p in (root / split).iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        for split in ("train", "test")
    }
    classes = [d.name for d in dirs["train"]]
    if not classes or classes != [d.name for d in dirs["test"]]:
        raise FragilityError(
            f"image_folder: {root / 'train'} and {root / 'test'} must hold the "
            f"same non-empty set of class folders; got {classes} and "
            f"{[d.name for d in dirs['test']]}"
        )
    arrays = []
    for split in ("train", "test"):
        paths, labels = [], []
        for label, d in enumerate(dirs[split]):
            files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                raise FragilityError(
                    f"image_folder: no images in {d} (every class needs .png, .jpg, .jpeg or "
                    ".bmp files in train/ and test/)"
                )
            paths += files
            labels += [label] * len(files)
        arrays += [
            _read_images(paths, image_size, "L" if grayscale else "RGB"),
            np.array(labels, dtype=np.int64),
        ]
    return Canonical(*arrays, classes=classes, name="image_folder")


_NO_IMAGE_FOLDER_ROOT = (
    "image_folder: set `root:` to a folder holding train/<class>/ and test/<class>/ image folders"
)

LOADERS: dict[str, Callable[..., Canonical]] = {
    "fashion_mnist": _load_fashion_mnist,
    "cifar10": _load_cifar10,
    "cifar100": _load_cifar100,
    "svhn": _load_svhn,
    "celeba": _load_celeba,
    "digits": _load_digits,
    "image_folder": _load_image_folder,
}


# --- public API ----------------------------------------------------------------------------


def load_raw(
    name: str, root: str | os.PathLike | None = None, download: bool = False, **options
) -> Canonical:
    """Read dataset ``name`` from its raw files (under ``root`` or its default places)."""
    loader = LOADERS.get(name)
    if loader is None:
        raise ConfigError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(LOADERS))}")
    allowed = list(inspect.signature(loader).parameters)[2:]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{name}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(allowed) or 'none'}"
        )
    roots = _roots(name, root)
    download_dir = (roots[0] if root is not None else DOWNLOAD_ROOT / name) if download else None
    return loader(roots, download_dir, **options)


def _roots(name: str, root: str | os.PathLike | None) -> list[Path]:
    """The folders a loader looks in: ``root``, else its default places."""
    if root is not None:
        return [Path(root).expanduser()]
    if name in DEFAULT_ROOTS:
        # also look where an earlier `download: true` without a root put the files
        return list(dict.fromkeys([Path(DEFAULT_ROOTS[name]), DOWNLOAD_ROOT / name]))
    return []


def missing_raw_files(name: str, root: str | os.PathLike | None = None) -> str | None:
    """Why loader ``name`` would not find its raw files under ``root`` (or its default
    places) without downloading, or ``None`` when they are there. Looks only for the files'
    names, reads nothing: cheap enough to run before every workflow."""
    if name not in RAW_FILES:
        return None
    roots = _roots(name, root)
    if not roots:
        return _NO_IMAGE_FOLDER_ROOT
    try:
        RAW_FILES[name].locate(name, roots)
    except DatasetNotFound as error:
        return str(error)
    return None


def save_canonical(data: Canonical, path: str | os.PathLike) -> None:
    """Write ``data`` atomically as an uncompressed .npz (readable with allow_pickle=False)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: savez adds no suffix
        np.savez(
            f,
            x_train=data.x_train,
            y_train=data.y_train,
            x_test=data.x_test,
            y_test=data.y_test,
            classes=np.array(data.classes, dtype=str),
            name=np.array(data.name),
        )


def load_canonical(path: str | os.PathLike) -> Canonical:
    """Read a file written by :func:`save_canonical`."""
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFound(
            f"canonical dataset file {path} does not exist; create it with "
            f"prepare_dataset (the workflow's data step)"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            fields = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
            fields.update(classes=z["classes"].tolist(), name=str(z["name"]))
    except Exception as exc:  # a damaged zip raises many types (zlib, struct, zipfile, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FragilityError(
            f"{path} is not a readable canonical dataset file (truncated or damaged?): "
            f"{type(exc).__name__}: {first}; delete it to have it built again"
        ) from None
    try:
        return Canonical(**fields)
    except FragilityError as error:
        raise FragilityError(f"{path}: {error}; delete it to have it built again") from None


def prepare_dataset(
    name: str,
    out_path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    download: bool = False,
    **options,
) -> Canonical:
    """Convert raw dataset ``name`` once into the canonical file ``out_path``."""
    data = load_raw(name, root=root, download=download, **options)
    save_canonical(data, out_path)
    return data
