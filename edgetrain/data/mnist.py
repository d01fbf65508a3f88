"""MNIST from the four original idx .gz files.

The directory comes from ``data_dir`` (``--data-dir``) or the
``EDGETRAIN_DATA_DIR`` environment variable; without either, the compact
subset shipped in the package (``SUBSET_DIR``: the first 3,000 test images,
CC BY-SA 3.0, see its README.md) is used, so nothing needs a download. The
subset holds the test split only (``splits`` says which a folder holds).
A missing file is an ArgumentError and a malformed one a CorruptError, each
naming the path and what to do.

idx format: big-endian header (magic, counts), then uint8 data. Images:
magic 0x00000803, n, 28, 28; labels: magic 0x00000801, n.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import ArgumentError, CorruptError

ENV = "EDGETRAIN_DATA_DIR"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IMAGE_MAGIC, LABEL_MAGIC = 0x803, 0x801
SUBSET_DIR = Path(__file__).resolve().parent / "mnist_subset"


def resolve_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The MNIST directory: the argument, else $EDGETRAIN_DATA_DIR, else the packaged subset."""
    if data_dir is None:
        data_dir = os.environ.get(ENV) or SUBSET_DIR
    if not str(data_dir):
        raise ArgumentError(f"empty MNIST directory given: pass --data-dir DIR or set {ENV} to the folder holding the four idx .gz files")
    path = Path(data_dir)
    if not path.is_dir():
        raise ArgumentError(f"MNIST directory {path} does not exist: pass --data-dir DIR or set {ENV} to the folder holding the four idx .gz files")
    return path


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise ArgumentError(f"MNIST file {path} is missing: the directory must hold {', '.join(f for pair in FILES.values() for f in pair)}")
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptError(f"MNIST file {path} is not a readable gzip file ({exc}): replace it with the original download") from exc


def _header(data: bytes, path: Path, magic: int, dims: int) -> list[int]:
    size = 4 * (1 + dims)
    if len(data) < size:
        raise CorruptError(f"MNIST file {path} is truncated: {len(data)} bytes, shorter than its {size}-byte header")
    words = [int.from_bytes(data[i : i + 4], "big") for i in range(0, size, 4)]
    if words[0] != magic:
        raise CorruptError(f"MNIST file {path} has magic 0x{words[0]:08x}, expected 0x{magic:08x}: is it the right file?")
    return words[1:]


def read_images(path: Path) -> np.ndarray:
    data = _read(path)
    n, rows, cols = _header(data, path, IMAGE_MAGIC, 3)
    if (rows, cols) != (28, 28):
        raise CorruptError(f"MNIST file {path} holds {rows}x{cols} images, expected 28x28")
    if len(data) != 16 + n * rows * cols:
        raise CorruptError(f"MNIST file {path} has {len(data) - 16} pixel bytes, its header announces {n}x{rows}x{cols}")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def read_labels(path: Path) -> np.ndarray:
    data = _read(path)
    (n,) = _header(data, path, LABEL_MAGIC, 1)
    if len(data) != 8 + n:
        raise CorruptError(f"MNIST file {path} has {len(data) - 8} label bytes, its header announces {n}")
    labels = np.frombuffer(data, dtype=np.uint8, offset=8)
    if labels.size and int(labels.max()) > 9:
        raise CorruptError(f"MNIST file {path} holds label {int(labels.max())}; labels are 0..9")
    return labels


def load(split: str = "train", data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [n, 28, 28], labels uint8 [n]) of the 'train' or 'test' split."""
    if split not in FILES:
        raise ArgumentError(f"unknown MNIST split {split!r}: use 'train' or 'test'")
    folder = resolve_dir(data_dir)
    image_file, label_file = FILES[split]
    images = read_images(folder / image_file)
    labels = read_labels(folder / label_file)
    if len(images) != len(labels):
        raise CorruptError(f"MNIST {split} split in {folder}: {len(images)} images but {len(labels)} labels")
    return images, labels


def is_subset(folder: Path) -> bool:
    """Whether ``folder`` is the subset shipped in the package."""
    return Path(folder).resolve() == SUBSET_DIR.resolve()


def splits(folder: Path) -> tuple[str, ...]:
    """The splits whose two files ``folder`` holds ('train', 'test')."""
    return tuple(s for s, names in FILES.items() if all((Path(folder) / n).is_file() for n in names))


def describe(folder: Path, split: str, n: int) -> str:
    """One line naming the data a run uses."""
    if is_subset(folder):
        return f"MNIST subset shipped in the package ({n} test images; pass --data-dir or set {ENV} for the full set)"
    return f"MNIST {split} split from {folder} ({n} images)"
