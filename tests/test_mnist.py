"""The MNIST idx reader: real files, and clear errors for missing or malformed ones."""
from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from edgetrain import ArgumentError, CorruptError
from edgetrain.data import mnist


def write_idx(folder, images: np.ndarray, labels: np.ndarray, image_magic=0x803, label_magic=0x801, n_header=None):
    n = len(images) if n_header is None else n_header
    img = image_magic.to_bytes(4, "big") + n.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + images.astype(np.uint8).tobytes()
    lab = label_magic.to_bytes(4, "big") + len(labels).to_bytes(4, "big") + labels.astype(np.uint8).tobytes()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(img))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(lab))


def test_reads_a_well_formed_pair(tmp_path):
    images = np.arange(3 * 784).reshape(3, 28, 28) % 256
    write_idx(tmp_path, images, np.array([3, 0, 9]))
    x, y = mnist.load("train", tmp_path)
    assert x.shape == (3, 28, 28) and x.dtype == np.uint8 and np.array_equal(x, images)
    assert y.tolist() == [3, 0, 9]


@pytest.mark.parametrize("break_it, error, message", [
    (lambda d: (d / "train-labels-idx1-ubyte.gz").unlink(), ArgumentError, "train-labels-idx1-ubyte.gz is missing"),
    (lambda d: (d / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all"), CorruptError, "is not a readable gzip file"),
    (lambda d: write_idx(d, np.zeros((2, 28, 28)), np.zeros(2), image_magic=0x801), CorruptError, "has magic 0x00000801, expected 0x00000803"),
    (lambda d: write_idx(d, np.zeros((2, 28, 28)), np.zeros(2), n_header=3), CorruptError, "its header announces 3x28x28"),
    (lambda d: write_idx(d, np.zeros((2, 28, 28)), np.array([1, 12])), CorruptError, "holds label 12"),
    (lambda d: write_idx(d, np.zeros((2, 28, 28)), np.zeros(3)), CorruptError, "2 images but 3 labels"),
    (lambda d: (d / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00")), CorruptError, "is truncated"),
])
def test_malformed_files_are_named(tmp_path, break_it, error, message):
    write_idx(tmp_path, np.zeros((2, 28, 28)), np.array([1, 2]))
    break_it(tmp_path)
    with pytest.raises(error, match=message) as info:
        mnist.load("train", tmp_path)
    assert str(tmp_path) in str(info.value)


def test_directory_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv(mnist.ENV, raising=False)
    # No folder given: the subset shipped in the package, which holds the test split only.
    assert mnist.resolve_dir() == mnist.SUBSET_DIR and mnist.splits(mnist.SUBSET_DIR) == ("test",)
    with pytest.raises(ArgumentError, match="train-images-idx3-ubyte.gz is missing"):
        mnist.load("train")
    with pytest.raises(ArgumentError, match="does not exist"):
        mnist.load("train", tmp_path / "nope")
    write_idx(tmp_path, np.zeros((1, 28, 28)), np.array([4]))
    monkeypatch.setenv(mnist.ENV, str(tmp_path))
    assert mnist.load("train")[1].tolist() == [4]
    with pytest.raises(ArgumentError, match="unknown MNIST split"):
        mnist.load("validation")


@pytest.mark.full_mnist
def test_the_real_files(full_mnist_dir):
    mnist_dir = full_mnist_dir
    x, y = mnist.load("train", mnist_dir)
    assert x.shape == (60000, 28, 28) and y.shape == (60000,)
    # sha256 of the uncompressed label file, from the data set's README
    raw = gzip.open(mnist_dir / "train-labels-idx1-ubyte.gz").read()
    assert hashlib.sha256(raw).hexdigest() == "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
    assert np.bincount(y).min() > 5000
    xt, yt = mnist.load("test", mnist_dir)
    assert xt.shape == (10000, 28, 28) and yt.max() == 9


def test_the_packaged_subset_is_the_start_of_the_test_split(monkeypatch):
    """3,000 images and labels, every digit present, the sha256 its README states; the default folder."""
    monkeypatch.delenv(mnist.ENV, raising=False)
    x, y = mnist.load("test")
    assert x.shape == (3000, 28, 28) and y.shape == (3000,) and np.bincount(y, minlength=10).min() > 200
    readme = (mnist.SUBSET_DIR / "README.md").read_text()
    assert "CC BY-SA 3.0" in readme and "LeCun" in readme and "Provenance: tools/make_mnist_subset.py" in readme
    raw = gzip.open(mnist.SUBSET_DIR / "t10k-labels-idx1-ubyte.gz").read()
    assert hashlib.sha256(raw).hexdigest() in readme
    assert mnist.is_subset(mnist.resolve_dir()) and "subset shipped in the package" in mnist.describe(mnist.SUBSET_DIR, "test", 3000)


@pytest.mark.full_mnist
def test_the_subset_matches_the_full_test_split(full_mnist_dir):
    full_x, full_y = mnist.load("test", full_mnist_dir)
    x, y = mnist.load("test", mnist.SUBSET_DIR)
    assert np.array_equal(x, full_x[:3000]) and np.array_equal(y, full_y[:3000])
