#!/usr/bin/env python3
"""Measure what the power-of-two mapping costs a TFLite int8 model (needs edgetrain[tf]).

Trains an ordinary float Keras CNN with mcu-cnn's layer sizes (no batch norm:
TFLite turns a batch norm after a ReLU into MUL/ADD operators the device does
not have) on MNIST fed p/256, converts it to an int8 TFLite model with
TFLiteConverter (per-channel weight scales, 200 representative images), then
runs `edgetrain export` on it with the accuracy measurement: the TFLite
interpreter against the C core on the MNIST test images.

Usage: python tools/tflite_mapping.py [--data-dir DIR] [--epochs 2] [--eval-samples 10000] [--out-dir build/tflite]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def float_cnn(keras, batch_size=None):
    """conv3x3 8 ReLU, pool, conv3x3 16 ReLU, pool, flatten, dense 64 ReLU, dense 10 softmax
    (batch_size=1 for TFLite: a fixed batch keeps the graph to the operators the device has)."""
    L = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1), batch_size=batch_size),
        L.Conv2D(8, 3, activation="relu", name="conv1"),
        L.MaxPooling2D(name="pool1"),
        L.Conv2D(16, 3, activation="relu", name="conv2"),
        L.MaxPooling2D(name="pool2"),
        L.Flatten(name="flatten"),
        L.Dense(64, activation="relu", name="fc1"),
        L.Dense(10, activation="softmax", name="fc2"),
    ])


def train_tflite(images: np.ndarray, labels: np.ndarray, epochs: int, seed: int = 0) -> tuple[bytes, object]:
    """Train float_cnn on uint8 images fed p/256 and convert it to int8 TFLite; (flatbuffer, Keras model)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    x = images.astype(np.float32)[..., np.newaxis] / 256.0
    train = float_cnn(keras)
    train.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    train.fit(x, labels.astype(np.int64), batch_size=64, epochs=epochs, verbose=0, shuffle=True)
    model = float_cnn(keras, batch_size=1)
    model.set_weights(train.get_weights())

    def representative():
        for row in x[:200]:
            yield [row[np.newaxis]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert(), model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--eval-samples", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=str(ROOT / "build" / "tflite"))
    args = parser.parse_args(argv)

    from edgetrain.cli import main as cli_main
    from edgetrain.data import mnist

    images, labels = mnist.load("train", args.data_dir)
    data, _ = train_tflite(images, labels, args.epochs, args.seed)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "mnist_int8.tflite").write_bytes(data)
    code = cli_main(["export", str(out / "mnist_int8.tflite"), "-o", str(out / "mnist_int8.etm"), "--json", str(out / "export.json"),
                     "--data-dir", args.data_dir, "--eval-samples", str(args.eval_samples)])
    report = json.loads((out / "export.json").read_text())
    report["recipe"] = f"tools/tflite_mapping.py --epochs {args.epochs} --seed {args.seed} (60,000 MNIST training images, p/256)"
    (out / "export.json").write_text(json.dumps(report, indent=2) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
