"""helpers.data: the fixed split, tensors for both frameworks, full-MNIST file checks."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from helpers import data


@pytest.fixture(scope="module")
def mnist() -> data.MnistSplits:
    return data.load_mnist()


def test_subset_split_sizes_and_balance(mnist):
    assert (len(mnist.train), len(mnist.calib), len(mnist.test)) == (3500, 500, 1000)
    for split, per_digit in ((mnist.train, 350), (mnist.calib, 50), (mnist.test, 100)):
        assert np.bincount(split.y, minlength=10).tolist() == [per_digit] * 10


def test_splits_are_disjoint_and_fixed(mnist):
    keys = [{img.tobytes() for img in split.x} for split in (mnist.train, mnist.calib, mnist.test)]
    assert not keys[0] & keys[1] and not keys[0] & keys[2] and not keys[1] & keys[2]
    again = data.load_mnist()
    assert np.array_equal(again.test.x, mnist.test.x) and np.array_equal(again.train.y, mnist.train.y)


def test_images_are_float_in_unit_range(mnist):
    assert mnist.test.x.dtype == np.float32 and mnist.test.x.shape[1:] == (28, 28)
    assert mnist.test.x.min() == 0.0 and mnist.test.x.max() == 1.0


def test_torch_tensors_are_standardised(mnist):
    x, y = data.torch_tensors(mnist.test)
    assert tuple(x.shape) == (1000, 1, 28, 28) and str(y.dtype) == "torch.int64"
    expected = (mnist.test.x[0, 0, 0] - data.MNIST_MEAN) / data.MNIST_STD
    assert float(x[0, 0, 0, 0]) == pytest.approx(expected, abs=1e-6)


def test_loader_batches_cover_the_split(mnist):
    loader = data.torch_loader(mnist.calib, batch_size=64)
    assert sum(len(batch[1]) for batch in loader) == 500


def test_keras_arrays(mnist):
    x, y = data.keras_arrays(mnist.test)
    assert x.shape == (1000, 28, 28) and y.shape == (1000,)


def test_take_shortens_and_rejects_zero(mnist):
    assert len(mnist.test.take(10)) == 10
    assert mnist.test.take(None) is mnist.test
    with pytest.raises(ValueError, match="n >= 1"):
        mnist.test.take(0)


def test_unknown_source_is_refused():
    with pytest.raises(ValueError, match="'subset'"):
        data.load_mnist("imagenet")


def test_missing_full_mnist_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    with pytest.raises(data.DatasetError, match="download-mnist"):
        data.load_mnist("full")


def test_corrupt_full_mnist_file_is_detected(tmp_path):
    for name in data.MNIST_FILES:
        with gzip.open(tmp_path / name, "wb") as handle:
            handle.write(b"not mnist")
    with pytest.raises(data.DatasetError, match="corrupt"):
        data.verify_mnist_files(tmp_path)


def test_idx_reader_roundtrip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in images.shape)
    path = tmp_path / "x.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(header + images.tobytes())
    assert np.array_equal(data._read_idx(path), images)


def test_empty_or_wrong_split_is_refused():
    empty = data.Split(np.zeros((0, 28, 28), np.float32), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="empty"):
        data.torch_tensors(empty)
    with pytest.raises(TypeError, match="Split"):
        data.keras_arrays(np.zeros((3, 28, 28)))
