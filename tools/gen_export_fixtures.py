#!/usr/bin/env python3
"""Regenerate the checked-in model-format fixtures (run on purpose only; needs edgetrain[tf]).

Writes
  tests/golden/etm_tiny_v1.hex          the tiny test model as a .etm blob (hex, with a provenance line)
  tests/golden/small_int8.tflite        a small int8 TFLite CNN made by TFLiteConverter
  tests/golden/small_int8.tflite.txt    its provenance line and sha256
  tests/golden/mnist_int8.tflite        an int8 TFLite MNIST CNN (tools/tflite_mapping.py's recipe), for the
                                        export command's accuracy measurement
  tests/golden/mnist_int8.tflite.txt    its provenance line and sha256

Usage: python tools/gen_export_fixtures.py [--only etm|tflite|mnist-tflite] [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
sys.path.insert(0, str(ROOT / "tests"))


def write_etm_golden() -> None:
    import edgetrain
    from edgetrain.model.etm import write_etm
    from test_model_check import tiny_model  # the model the table tests use

    blob = write_etm(tiny_model(), align=8, provenance="golden: tests/test_model_check.py tiny_model(), align 8")
    lines = [f"# provenance: tools/gen_export_fixtures.py, edgetrain {edgetrain.__version__}, "
             f"write_etm(tiny_model(), align=8); {len(blob)} bytes, sha256 {hashlib.sha256(blob).hexdigest()}"]
    lines += [blob[i : i + 32].hex() for i in range(0, len(blob), 32)]
    (GOLDEN / "etm_tiny_v1.hex").write_text("\n".join(lines) + "\n")
    print(f"wrote tests/golden/etm_tiny_v1.hex ({len(blob)} bytes)")


def small_keras_model(keras):
    """12x12x1 -> conv 4 relu -> conv 6 -> pool -> relu -> flatten -> dense 16 relu -> dense 3 softmax."""
    layers = keras.layers
    return keras.Sequential([
        keras.Input((12, 12, 1), batch_size=1),
        layers.Conv2D(4, 3, activation="relu", name="conv1"),
        layers.Conv2D(6, 3, name="conv2"),
        layers.MaxPooling2D(name="pool"),
        layers.ReLU(name="relu2"),
        layers.Flatten(name="flatten"),
        layers.Dense(16, activation="relu", name="fc1"),
        layers.Dense(3, activation="softmax", name="fc2"),
    ])


def synthetic_task(n: int, seed: int):
    """Three classes: the brightest 6x6 quadrant (top-left, top-right, bottom) of noisy 12x12 images."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.random((n, 12, 12, 1), dtype=np.float32) * 0.5
    y = rng.integers(0, 3, n)
    for i, label in enumerate(y):
        rows, cols = (slice(0, 6), slice(0, 6)) if label == 0 else (slice(0, 6), slice(6, 12)) if label == 1 else (slice(6, 12), slice(0, 12))
        x[i, rows, cols, 0] += 0.45
    return x, y


def tflite_int8(keras_model, samples):
    import numpy as np
    import tensorflow as tf

    def representative():
        for row in samples[:64]:
            yield [row[np.newaxis].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def write_tflite_golden() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(1234)
    model = small_keras_model(keras)
    x, y = synthetic_task(512, 1)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=3, verbose=0)
    data = tflite_int8(model, x)
    (GOLDEN / "small_int8.tflite").write_bytes(data)
    (GOLDEN / "small_int8.tflite.txt").write_text(
        f"# provenance: tools/gen_export_fixtures.py, TensorFlow {tf.__version__}, Keras {keras.__version__}: "
        "small_keras_model() trained 3 epochs on synthetic_task(512, seed 1), TFLiteConverter int8 (64 representative samples)\n"
        f"sha256 {hashlib.sha256(data).hexdigest()}\n"
    )
    print(f"wrote tests/golden/small_int8.tflite ({len(data)} bytes)")


def write_mnist_tflite_golden(data_dir: str, epochs: int = 2) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    sys.path.insert(0, str(ROOT / "tools"))
    from tflite_mapping import train_tflite

    from edgetrain.data import mnist

    images, labels = mnist.load("train", data_dir)
    data, _ = train_tflite(images, labels, epochs, seed=0)
    (GOLDEN / "mnist_int8.tflite").write_bytes(data)
    (GOLDEN / "mnist_int8.tflite.txt").write_text(
        f"# provenance: tools/gen_export_fixtures.py --only mnist-tflite, TensorFlow {tf.__version__}, Keras {keras.__version__}: "
        f"tools/tflite_mapping.py float_cnn() trained {epochs} epochs (seed 0, Adam 1e-3, batch 64) on the 60,000 MNIST "
        "training images fed p/256, TFLiteConverter int8 (200 representative images)\n"
        f"sha256 {hashlib.sha256(data).hexdigest()}\n"
    )
    print(f"wrote tests/golden/mnist_int8.tflite ({len(data)} bytes)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["etm", "tflite", "mnist-tflite"])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"), help="MNIST folder (mnist-tflite)")
    args = parser.parse_args()
    GOLDEN.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "etm"):
        write_etm_golden()
    if args.only in (None, "tflite"):
        write_tflite_golden()
    if args.only in (None, "mnist-tflite"):
        write_mnist_tflite_golden(args.data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
