"""Shipped digits and the CIFAR-10 loader (on tiny files written here in the standard pickle format)."""

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxflow as jf


def _write_batch(path, data, labels):
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"test", b"labels": list(labels), b"data": data, b"filenames": []}, f)


def test_cifar_loader_reads_the_standard_format(tmp_path):
    rng = np.random.default_rng(0)
    batches = []
    for i in range(1, 6):
        data = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, 4)
        _write_batch(tmp_path / f"data_batch_{i}", data, labels)
        batches.append((data, labels))
    _write_batch(tmp_path / "test_batch", batches[0][0], batches[0][1])
    train = jf.data.load_cifar10(tmp_path, "train")
    assert train.images.shape == (20, 32, 32, 3) and train.images.dtype == jnp.float32
    # pixel (row 5, col 7) of channel c of image 0 sits at c*1024 + 5*32 + 7 in the row-major CHW vector
    for c in range(3):
        raw = batches[0][0][0, c * 1024 + 5 * 32 + 7]
        np.testing.assert_allclose(train.images[0, 5, 7, c], raw / 255 * 2 - 1, rtol=1e-6)
    np.testing.assert_array_equal(train.labels, np.concatenate([b[1] for b in batches]))
    np.testing.assert_allclose(
        jf.data.from_unit_range(train.images, 255.0)[0, 5, 7, 0], batches[0][0][0, 5 * 32 + 7], rtol=1e-5
    )
    assert jf.data.load_cifar10(tmp_path, "test").images.shape == (4, 32, 32, 3)


def test_cifar_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        jf.data.load_cifar10(tmp_path)
    _write_batch(tmp_path / "test_batch", np.zeros((2, 100), np.uint8), [0, 1])
    with pytest.raises(ValueError, match="3072"):
        jf.data.load_cifar10(tmp_path, "test")
    with pytest.raises(ValueError, match="split"):
        jf.data.load_cifar10(tmp_path, "valid")


def test_digits_and_split():
    d = jf.data.load_digits()
    assert d.images.shape == (1797, 8, 8, 1) and d.num_classes == 10
    assert float(d.images.min()) == -1.0 and float(d.images.max()) == 1.0
    tr, te = jf.data.train_test_split(jax.random.key(0), d, 0.2)
    assert tr.images.shape[0] + te.images.shape[0] == 1797 and te.images.shape[0] == 359
    tr2, _ = jf.data.train_test_split(jax.random.key(0), d, 0.2)
    np.testing.assert_array_equal(tr.labels, tr2.labels)
    # the split is a partition: pixel sums add up
    np.testing.assert_allclose(tr.images.sum() + te.images.sum(), d.images.sum(), rtol=1e-5)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncated", "not a readable CIFAR-10"),
        ("random", "not a readable CIFAR-10"),
        ("wrong_pickle", "not a CIFAR-10 python batch"),
        ("float_out_of_range", r"integers in \[0, 255\]"),
        ("bad_labels", r"labels must lie in \[0, 9\]"),
    ],
)
def test_corrupted_cifar_batches_name_the_file(tmp_path, damage, message):
    path = tmp_path / "test_batch"
    data = np.random.default_rng(0).integers(0, 256, (3, 3072), dtype=np.uint8)
    _write_batch(path, data, [0, 1, 2])
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "random":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    elif damage == "wrong_pickle":
        with open(path, "wb") as f:
            pickle.dump([1, 2, 3], f)
    elif damage == "float_out_of_range":
        _write_batch(path, data.astype(np.float32) * 1.5, [0, 1, 2])
    elif damage == "bad_labels":
        _write_batch(path, data, [0, 1, 12])
    with pytest.raises(ValueError, match=message) as info:
        jf.data.load_cifar10(tmp_path, "test")
    assert str(path) in str(info.value)


def test_float_pixels_in_range_are_accepted(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (3, 3072)).astype(np.float64)
    _write_batch(tmp_path / "test_batch", data, [0, 1, 2])
    images = jf.data.load_cifar10(tmp_path, "test").images
    np.testing.assert_allclose(jf.data.from_unit_range(images, 255.0)[0, 0, 0, 0], data[0, 0], atol=1e-3)
