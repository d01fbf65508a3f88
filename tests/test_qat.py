"""Quantization-aware training (edgetrain.export.qat): the Keras forward pass equals the device's.

Needs TensorFlow (the `tf` extra); skips only when it is not installed (CI sets
EDGETRAIN_REQUIRE_TF=1, which turns a missing TensorFlow into a failure).
The models here are small or barely trained: the 10,000-image figures of the
pretrained models come from tools/pretrain.py (docs/export.md).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgetrain import ArgumentError
from edgetrain.backends import make_backend
from edgetrain.cli import main as cli_main
from edgetrain.config import OPT_NONE, TrainConfig
from edgetrain.data import mnist
from edgetrain.model import etm
from edgetrain.model.presets import preset
from edgetrain.reference import fixed
from conftest import import_tensorflow, stream_split

tf, keras = import_tensorflow()

from edgetrain.export import qat  # noqa: E402 - needs TensorFlow


@pytest.fixture(scope="module")
def test_images(mnist_dir):
    images, labels = mnist.load("test", mnist_dir)
    return images[:300], labels[:300].astype(np.int64)


@pytest.fixture(scope="module")
def train_images(full_mnist_dir):
    images, labels = mnist.load("train", full_mnist_dir)
    return images[:256], labels[:256].astype(np.int64)


def twin_logits(model, images) -> np.ndarray:
    """The NumPy twin's logits (et_train_predict with the stored statistics), real values."""
    backend = make_backend("numpy", model, TrainConfig(optimizer=OPT_NONE, bn_warm=True))
    out = []
    for img in images:
        backend.predict(img)
        out.append(backend.state.logits.astype(np.float64) * 2.0**-12)
    return np.array(out)


def c_labels(model, images) -> np.ndarray:
    backend = make_backend("c", model, TrainConfig(optimizer=OPT_NONE, bn_warm=True))
    return np.array([backend.predict(img) for img in images])


# ---- the rounding rule and the straight-through quantizers ------------------------------------


def test_round_away_is_the_device_rule_not_tf_round():
    ties = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.0**23 - 0.5], np.float64)
    assert np.array_equal(qat.round_away(tf.constant(ties)).numpy(), [-3, -2, -1, 1, 2, 3, 2.0**23])
    assert not np.array_equal(tf.round(tf.constant(ties)).numpy(), qat.round_away(tf.constant(ties)).numpy())
    rng = np.random.default_rng(0)
    n = rng.integers(-(1 << 23), 1 << 23, 4000)
    n[:50] = np.arange(-25, 25) * 2 + 1  # odd values: exact ties at shift 1
    for s in range(1, 9):
        for dtype in (tf.float32, tf.float64):
            got = qat.round_away(tf.constant(n * 2.0**-s, dtype)).numpy()
            assert np.array_equal(got.astype(np.int64), fixed.round_shift_s64(n, s)), (s, dtype)


def test_quantize_forward_clamps_and_the_gradient_is_straight_through():
    x = tf.constant([-1.0, 0.004, 0.5 * 2**-7, 1.5, 1.99, 2.5], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = qat.quantize(x, -7, 0, 255)  # the activation format, ReLU + [0, 2)
    assert np.array_equal(y.numpy(), np.array([0, 1, 1, 192, 255, 255]) * 2.0**-7)
    assert np.array_equal(tape.gradient(y, x).numpy(), [0, 1, 1, 1, 1, 0])  # masked where clipped
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = qat.quantize(x, -7, 0, 255, mask=False)
    assert np.array_equal(tape.gradient(y, x).numpy(), np.ones(6))


def test_layer_arguments_are_checked():
    with pytest.raises(ArgumentError, match="alpha_shift 16"):
        qat.QDense(4, alpha_shift=16)
    with pytest.raises(ArgumentError, match="padding 'causal'"):
        qat.QConv2D(4, 3, padding="causal")
    with pytest.raises(ArgumentError, match="mode 'moving'"):
        qat.QBatchNorm(mode="moving")
    with pytest.raises(ArgumentError, match="uint8"):
        qat.device_input(np.zeros((2, 28, 28), np.float32))


# ---- the whole forward pass against the device -------------------------------------------------


@pytest.fixture(scope="module")
def trained(train_images) -> keras.Model:
    """mcu-cnn's QAT model after a few Adam steps in each batch-norm mode: shadow weights off the grid."""
    images, labels = train_images
    keras.utils.set_random_seed(5)
    model = qat.from_model(preset("mcu-cnn", 1))
    x = qat.device_input(images)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, labels, batch_size=64, epochs=1, verbose=0, shuffle=False)
    qat.calibrate_bn(model, x)
    qat.set_bn_mode(model, "frozen")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, labels, batch_size=64, epochs=1, verbose=0, shuffle=False)
    return model


def test_qat_forward_equals_the_device_value_for_value(trained, test_images):
    model = trained
    kernel = model.get_layer("fc1").get_weights()[0]
    step = 2.0 ** (-7 - model.get_layer("fc1").alpha_shift)
    assert np.any(np.abs(kernel / step - np.round(kernel / step)) > 1e-3), "training should leave shadow weights off the grid"
    images, labels = test_images
    keras_logits = qat.logits(model, qat.device_input(images))
    device = qat.to_device(model)
    twin = twin_logits(device, images)
    assert np.array_equal(twin, keras_logits)  # every logit of every image, exactly
    assert np.array_equal(c_labels(device, images), np.argmax(keras_logits, axis=1))
    # The blob round trip changes nothing, and training mode differs from inference only through batch norm.
    again = etm.read_etm(etm.write_etm(device)).model
    assert np.array_equal(twin_logits(again, images[:20]), keras_logits[:20])


def test_bn_statistics_are_stored_in_the_device_formats(trained):
    model = trained
    bn = model.get_layer("bn")
    gamma, beta, mean, msq = bn.get_weights()
    block = qat.to_device(model).layers[4].bn
    assert np.array_equal(block[2], np.clip(qat.np_round_away(mean.astype(np.float64) * 4096), -32768, 32767))
    assert np.array_equal(block[3], np.clip(qat.np_round_away(msq.astype(np.float64) * 512), -32768, 32767))
    assert np.all(block[3] > 0) and np.array_equal(block[0], qat.bias_ints(gamma))


def test_calibration_gives_the_exact_statistics(train_images):
    images, _ = train_images
    model = qat.from_model(preset("mcu-cnn", 2))
    x = qat.device_input(images[:64])
    qat.calibrate_bn(model, x)
    probe = keras.Model(model.inputs, model.get_layer("bn").input)
    a = np.asarray(probe(tf.constant(x)), np.float64).reshape(-1, 16)
    _, _, mean, msq = model.get_layer("bn").get_weights()
    assert np.allclose(mean, a.mean(axis=0), rtol=1e-6) and np.allclose(msq, (a * a).mean(axis=0), rtol=1e-6)


def test_wide_layers_are_exact_in_float64(test_images):
    """paper-cnn: conv2-4 and fc1 can pass 2^24 in a sum; exact mode runs them in float64."""
    images, _ = test_images
    model = qat.from_model(preset("paper-cnn", 2))
    assert [l.name for l in model.layers if isinstance(l, qat._QMac) and l.wide] == ["conv2", "conv3", "conv4", "fc1"]
    qat.calibrate_bn(model, qat.device_input(images[:8]))
    device = qat.to_device(model)
    assert np.array_equal(twin_logits(device, images[:3]), qat.logits(model, qat.device_input(images[:3])))


def test_preset_integers_come_back_unchanged():
    device = preset("mcu-cnn", 4)
    back = qat.to_device(qat.from_model(device))
    for a, b in zip(device.layers, back.layers):
        assert (a.kind, a.alpha_shift, a.activation, a.padding) == (b.kind, b.alpha_shift, b.activation, b.padding)
        for t in ("weights", "bias"):
            if getattr(a, t) is not None:
                assert np.array_equal(getattr(a, t), getattr(b, t)), (a.name, t)
    assert np.array_equal(back.layers[4].bn[:2], device.layers[4].bn[:2])


# ---- files and commands -----------------------------------------------------------------------------


def test_saved_qat_model_exports_through_the_cli_with_its_accuracy(tmp_path, capsys, trained, mnist_dir):
    model = trained
    path = tmp_path / "qat_mcu.keras"
    model.save(path)
    out, report = tmp_path / "qat_mcu.etm", tmp_path / "export.json"
    assert cli_main(["export", str(path), "-o", str(out), "--json", str(report), "--data-dir", str(mnist_dir),
                     "--eval-samples", "150"]) == 0
    text = capsys.readouterr().out
    blob = etm.read_etm(out.read_bytes()).model
    direct = qat.to_device(model)
    for a, b in zip(blob.layers, direct.layers):
        for t in ("weights", "bias", "bn"):
            if getattr(a, t) is not None:
                assert np.array_equal(getattr(a, t), getattr(b, t)), (a.name, t)
    acc = json.loads(report.read_text())["accuracy"]
    assert acc["source"] == "Keras" and acc["images"] == 150
    assert acc["label_agreement"] == 1.0 and acc["change_points"] == 0.0  # QAT: the device is the Keras model
    assert "same label on 100.00%" in text


def test_run_trains_an_exported_file_from_its_stored_statistics(tmp_path, capsys, trained, mnist_dir):
    model = trained
    path = tmp_path / "m.etm"
    etm.save(path, qat.to_device(model, name="qat-mcu"))

    def run(*extra):
        out = tmp_path / "r.json"
        assert cli_main(["run", "--model", str(path), "--samples", "40", "--data-dir", str(mnist_dir), "--json", str(out),
                         "--no-progress", *extra]) == 0
        capsys.readouterr()
        return json.loads(out.read_text())

    c, twin = run("--optimizer", "sgd", "--backend", "c"), run("--optimizer", "sgd", "--backend", "numpy")
    assert c["bn_statistics"] == "stored" and c["model"] == "qat-mcu"
    assert c["weights_sha256"] == twin["weights_sha256"] and c["total_cell_writes"] > 0
    # Inference only: the run's accuracy is the Keras model's on the same stream (stored statistics at once).
    none = run("--optimizer", "none")
    from edgetrain.tasks import stream_order

    images, labels = mnist.load(stream_split(mnist_dir), mnist_dir)
    order = stream_order(len(images), 0)[:40]
    keras_pred = qat.predict_labels(model, qat.device_input(images[order]))
    assert none["accuracy"] == pytest.approx(float(np.mean(keras_pred == labels[order])))
