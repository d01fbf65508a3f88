"""Build the compact MNIST subset shipped in the package (edgetrain/data/mnist_subset/).

The subset is the first N images (default 3,000) of the MNIST *test* split
(t10k), so that the shipped pretrained model, trained on the training split,
is evaluated on images it never saw. Files are written in the original idx
format, gzip-compressed with a zero timestamp (byte-reproducible), beside a
README.md stating the source, licence and provenance.

    python tools/make_mnist_subset.py --data-dir /path/to/mnist [--count 3000]
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgetrain.data import mnist  # noqa: E402

OUT = ROOT / "edgetrain" / "data" / "mnist_subset"


def idx_images(images) -> bytes:
    n, rows, cols = images.shape
    header = b"".join(v.to_bytes(4, "big") for v in (mnist.IMAGE_MAGIC, n, rows, cols))
    return header + images.tobytes()


def idx_labels(labels) -> bytes:
    return mnist.LABEL_MAGIC.to_bytes(4, "big") + len(labels).to_bytes(4, "big") + labels.tobytes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder of the full MNIST idx .gz files")
    parser.add_argument("--count", type=int, default=3000, help="images to keep, from the start of t10k (default: 3000)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default: {OUT.relative_to(ROOT)})")
    args = parser.parse_args()
    images, labels = mnist.load("test", args.data_dir)
    images, labels = images[: args.count], labels[: args.count]
    args.out.mkdir(parents=True, exist_ok=True)
    image_name, label_name = mnist.FILES["test"]
    sums = {}
    for name, data in ((image_name, idx_images(images)), (label_name, idx_labels(labels))):
        (args.out / name).write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
        sums[name] = hashlib.sha256(data).hexdigest()
    counts = ", ".join(f"{d}: {int((labels == d).sum())}" for d in range(10))
    (args.out / "README.md").write_text(
        f"# MNIST subset shipped with edgetrain\n\n"
        f"Provenance: tools/make_mnist_subset.py --count {args.count}: the first {args.count} images and labels of "
        f"the MNIST test split (t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz), unchanged, in the original "
        f"idx format (gzip, mtime 0).\n\n"
        f"Source and licence: the MNIST database of handwritten digits by Yann LeCun, Corinna Cortes and "
        f"Christopher J.C. Burges, licensed under Creative Commons Attribution-Share Alike 3.0 "
        f"(CC BY-SA 3.0, https://creativecommons.org/licenses/by-sa/3.0/). This subset is redistributed under "
        f"the same licence.\n\n"
        f"Why the test split: the shipped pretrained model (mcu-cnn-pretrained) was trained on the training "
        f"split, so it is evaluated here on images it never saw.\n\n"
        f"Labels per digit: {counts}.\n\n"
        f"sha256 (uncompressed): {image_name[:-3]} {sums[image_name]}, {label_name[:-3]} {sums[label_name]}.\n")
    print(f"wrote {args.count} images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
