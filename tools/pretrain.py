#!/usr/bin/env python3
"""Pretrain the presets with quantization-aware training on MNIST; write .etm files and a JSON report.

Needs TensorFlow (pip install 'edgetrain[tf]'). For each model (`mcu-cnn`,
`paper-cnn`: the presets' architectures and layer scales, starting from the
preset's seeded initialisation) it

1. trains the QAT Keras model (edgetrain.export.qat) on the 60,000 MNIST
   training images with Adam and a cosine learning-rate decay, batch norms
   normalising each batch with its own statistics;
2. sets the batch-norm statistics to the exact mean and mean square over the
   training images, freezes them (the device's inference statistics), and
   trains further epochs against them (the layers after a batch norm adapt to
   the statistics the device will use);
3. exports the model (edgetrain.export.qat.to_device) and measures on the
   MNIST test images: the Keras QAT model's accuracy (exact forward), the C
   core's accuracy (et_train_predict, stored statistics), their label
   agreement, and (mcu-cnn) that the NumPy twin's logits equal Keras's.

Deterministic: the initial weights are the preset's (a portable hash), the
batch order comes from NumPy's PCG64 with --seed, and TensorFlow runs with op
determinism on. `--ship` copies the mcu-cnn blob into the package
(edgetrain/model/pretrained/mcu-cnn.etm, with a JSON sidecar) — the only way
that file changes.

Usage:
  python tools/pretrain.py [--models mcu-cnn,paper-cnn] [--data-dir DIR] [--out-dir build/pretrain]
                           [--epochs N] [--frozen-epochs N] [--paper-epochs N] [--paper-frozen-epochs N]
                           [--seed S] [--ship] [--json FILE]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHIP_DIR = ROOT / "edgetrain" / "model" / "pretrained"
DEFAULTS = {  # epochs with batch statistics, epochs with frozen statistics
    "mcu-cnn": (10, 2),
    "paper-cnn": (1, 0),
}
# Training images for the batch-norm calibration and test images for the evaluation
# (None: all). paper-cnn costs ~28 ms per training image in TensorFlow and ~185 ms per
# test image on the C core (plain loops) on the project's 2-core machine.
CALIBRATION = {"mcu-cnn": None, "paper-cnn": 10000}
EVALUATION = {"mcu-cnn": None, "paper-cnn": 1000}


def data_hashes(folder: Path) -> dict[str, str]:
    from edgetrain.data.mnist import FILES

    return {f: hashlib.sha256((folder / f).read_bytes()).hexdigest() for pair in FILES.values() for f in pair}


def c_labels(model, images) -> np.ndarray:
    """The C core's predictions with the stored batch-norm statistics (et_train_predict)."""
    from edgetrain.backends import make_backend
    from edgetrain.config import OPT_NONE, TrainConfig

    backend = make_backend("c", model, TrainConfig(optimizer=OPT_NONE, bn_warm=True))
    return np.array([backend.predict(img) for img in images])


def twin_logit_matches(model, images, keras_logits) -> int:
    """How many samples have NumPy-twin logits equal to Keras's, value for value."""
    from edgetrain.backends import make_backend
    from edgetrain.config import OPT_NONE, TrainConfig

    backend = make_backend("numpy", model, TrainConfig(optimizer=OPT_NONE, bn_warm=True))
    same = 0
    for img, z in zip(images, keras_logits):
        backend.predict(img)
        same += bool(np.array_equal(backend.state.logits.astype(np.float64) * 2.0**-12, z))
    return same


def train_one(name: str, args, x_train, y_train, x_test_u8, y_test, log) -> tuple[object, dict]:
    import keras
    import tensorflow as tf

    from edgetrain.export import qat
    from edgetrain.model.presets import preset

    epochs, frozen = DEFAULTS[name]
    if name == "paper-cnn":
        epochs = args.paper_epochs if args.paper_epochs is not None else epochs
        frozen = args.paper_frozen_epochs if args.paper_frozen_epochs is not None else frozen
    else:
        epochs = args.epochs if args.epochs is not None else epochs
        frozen = args.frozen_epochs if args.frozen_epochs is not None else frozen
    keras.utils.set_random_seed(args.seed)
    exact_training = name != "paper-cnn"  # paper-cnn trains in float32 (fast) and is evaluated exactly
    model = qat.from_model(preset(name, args.seed), exact=exact_training)
    n = len(x_train)
    steps = (n + args.batch_size - 1) // args.batch_size
    schedule = keras.optimizers.schedules.CosineDecay(args.lr, decay_steps=max(1, steps * (epochs + frozen)), alpha=0.02)
    optimizer = keras.optimizers.Adam(schedule)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    rng = np.random.default_rng(args.seed)
    history = []
    start = time.perf_counter()

    def run_epochs(count: int, phase: str) -> None:
        model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
        for e in range(count):
            order = rng.permutation(n)
            t0 = time.perf_counter()
            h = model.fit(x_train[order], y_train[order], batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0)
            row = {"phase": phase, "epoch": len(history) + 1, "loss": float(h.history["loss"][-1]),
                   "train_accuracy": float(h.history["accuracy"][-1]), "seconds": round(time.perf_counter() - t0, 1)}
            history.append(row)
            log(f"{name} epoch {row['epoch']} ({phase}): loss {row['loss']:.4f}, train accuracy {row['train_accuracy']:.4f}, {row['seconds']} s")

    run_epochs(epochs, "batch statistics")
    calibration = args.calibration_images or CALIBRATION[name] or n
    qat.calibrate_bn(model, x_train[: min(calibration, n)])
    if frozen:
        qat.set_bn_mode(model, "frozen")
        run_epochs(frozen, "frozen statistics")
    train_seconds = time.perf_counter() - start
    qat.set_bn_mode(model, "frozen")
    qat.set_exact(model, True)

    # Evaluation on the test images (or the first --eval-samples of them).
    m = min(args.eval_samples or EVALUATION[name] or len(x_test_u8), len(x_test_u8))
    x_test = qat.device_input(x_test_u8[:m])
    t0 = time.perf_counter()
    keras_logits = qat.logits(model, x_test, batch_size=250)
    keras_pred = np.argmax(keras_logits, axis=1)
    device = qat.to_device(model, name=name)
    c_pred = c_labels(device, x_test_u8[:m])
    y = y_test[:m]
    result = {
        "model": name,
        "epochs_batch_statistics": epochs,
        "epochs_frozen_statistics": frozen,
        "batch_size": args.batch_size,
        "learning_rate": f"Adam {args.lr} cosine decay to {args.lr * 0.02:g}",
        "train_images": n,
        "calibration_images": min(calibration, n),
        "training_precision": "exact" if exact_training else "float32 (wide layers not exact in training; evaluation exact)",
        "train_seconds": round(train_seconds, 1),
        "test_images": int(m),
        "keras_qat_accuracy": float(np.mean(keras_pred == y)),
        "device_accuracy_c": float(np.mean(c_pred == y)),
        "label_agreement": float(np.mean(keras_pred == c_pred)),
        "history": history,
    }
    if name == "mcu-cnn":
        result["twin_logits_equal"] = twin_logit_matches(device, x_test_u8[:m], keras_logits)
    result["eval_seconds"] = round(time.perf_counter() - t0, 1)
    log(f"{name}: Keras QAT {result['keras_qat_accuracy']:.4f}, C core {result['device_accuracy_c']:.4f}, "
        f"label agreement {result['label_agreement']:.4f} on {m} test images"
        + (f"; twin logits equal on {result['twin_logits_equal']}" if "twin_logits_equal" in result else ""))
    _ = tf  # imported for its side effects (op determinism set by the caller)
    return device, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mcu-cnn,paper-cnn", help="comma-separated: mcu-cnn, paper-cnn")
    parser.add_argument("--data-dir", help="MNIST folder (default: $EDGETRAIN_DATA_DIR or ../shared/data/mnist)")
    parser.add_argument("--out-dir", default=str(ROOT / "build" / "pretrain"), help="where the .etm files and JSON go")
    parser.add_argument("--epochs", type=int, help=f"mcu-cnn epochs with batch statistics (default {DEFAULTS['mcu-cnn'][0]})")
    parser.add_argument("--frozen-epochs", type=int, help=f"mcu-cnn epochs with frozen statistics (default {DEFAULTS['mcu-cnn'][1]})")
    parser.add_argument("--paper-epochs", type=int, help=f"paper-cnn epochs with batch statistics (default {DEFAULTS['paper-cnn'][0]})")
    parser.add_argument("--paper-frozen-epochs", type=int, help=f"paper-cnn epochs with frozen statistics (default {DEFAULTS['paper-cnn'][1]})")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam's initial learning rate (cosine decay to 2%% of it)")
    parser.add_argument("--seed", type=int, default=0, help="preset initialisation, batch order and TensorFlow seed")
    parser.add_argument("--train-samples", type=int, help="use only the first N training images (quick checks)")
    parser.add_argument("--eval-samples", type=int, help="evaluate on the first N test images "
                        f"(default: all 10,000 for mcu-cnn, {EVALUATION['paper-cnn']} for paper-cnn)")
    parser.add_argument("--calibration-images", type=int, help="training images for the batch-norm statistics "
                        f"(default: all for mcu-cnn, {CALIBRATION['paper-cnn']} for paper-cnn)")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: TensorFlow's choice)")
    parser.add_argument("--ship", action="store_true", help="copy the mcu-cnn blob into the package (edgetrain/model/pretrained/)")
    parser.add_argument("--json", help="report file (default: OUT_DIR/pretrain.json)")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    import edgetrain
    from edgetrain.data import mnist
    from edgetrain.errors import ArgumentError
    from edgetrain.export import qat
    from edgetrain.model.etm import write_etm
    from edgetrain.model.image import layout

    names = [s for s in args.models.split(",") if s]
    for name in names:
        if name not in DEFAULTS:
            raise ArgumentError(f"--models: unknown model {name!r}; choose from {', '.join(DEFAULTS)}")
    if args.ship and "mcu-cnn" not in names:
        raise ArgumentError("--ship ships mcu-cnn: include it in --models")
    if args.ship and (args.train_samples or args.eval_samples):
        raise ArgumentError("--ship needs the full recipe: drop --train-samples / --eval-samples")
    tf.config.experimental.enable_op_determinism()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    folder = mnist.resolve_dir(args.data_dir or os.environ.get(mnist.ENV) or (ROOT.parent / "shared" / "data" / "mnist"))
    train_u8, train_y = mnist.load("train", folder)
    test_u8, test_y = mnist.load("test", folder)
    if args.train_samples:
        train_u8, train_y = train_u8[: args.train_samples], train_y[: args.train_samples]
    x_train = qat.device_input(train_u8)
    y_train = train_y.astype(np.int64)
    hashes = data_hashes(folder)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    command = "python tools/pretrain.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    versions = f"edgetrain {edgetrain.__version__}, TensorFlow {tf.__version__}, Keras {keras.__version__}, NumPy {np.__version__}"
    report = {"command": command, "versions": versions, "mnist_sha256": hashes, "seed": args.seed, "models": {}}

    def log(msg: str) -> None:
        print(msg, flush=True)

    for name in names:
        device, result = train_one(name, args, x_train, y_train, test_u8, test_y, log)
        provenance = (
            f"tools/pretrain.py QAT on MNIST ({versions}); command: {command}; seed {args.seed}; "
            f"{result['epochs_batch_statistics']}+{result['epochs_frozen_statistics']} epochs; "
            f"test accuracy C core {result['device_accuracy_c']:.4f} on {result['test_images']} images; "
            "MNIST sha256 " + " ".join(f"{k} {v}" for k, v in hashes.items())
        )
        blob = write_etm(device, provenance=provenance)
        path = out / f"{name}.etm"
        path.write_bytes(blob)
        result["etm"] = str(path)
        result["etm_sha256"] = hashlib.sha256(blob).hexdigest()
        result["etm_bytes"] = len(blob)
        result["tensors_sha256"] = hashlib.sha256(layout(device)[0]).hexdigest()  # weights only: compares re-runs
        report["models"][name] = result
        log(f"wrote {path} ({len(blob)} bytes, sha256 {result['etm_sha256'][:16]})")
        if args.ship and name == "mcu-cnn":
            SHIP_DIR.mkdir(parents=True, exist_ok=True)
            (SHIP_DIR / "mcu-cnn.etm").write_bytes(blob)
            sidecar = {k: v for k, v in result.items() if k not in ("etm",)}
            sidecar.update({"provenance": provenance, "command": command, "versions": versions, "mnist_sha256": hashes})
            (SHIP_DIR / "mcu-cnn.json").write_text(json.dumps(sidecar, indent=2) + "\n")
            log(f"shipped {SHIP_DIR / 'mcu-cnn.etm'}")
    json_path = Path(args.json) if args.json else out / "pretrain.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
