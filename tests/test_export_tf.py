"""Keras export and a live TFLiteConverter round trip (need TensorFlow: the `tf` extra).

These skip only when TensorFlow is not installed; CI installs it and sets
EDGETRAIN_REQUIRE_TF=1, which turns a missing TensorFlow into a failure.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from edgetrain import RangeError, UnsupportedError
from edgetrain.cli import main as cli_main
from edgetrain.model import Activation, LayerKind, Padding
from edgetrain.model.etm import read_etm
from conftest import ROOT, import_tensorflow
from etm_helpers import ET_OK, CParse, py_table

tf, keras = import_tensorflow()

sys.path.insert(0, str(ROOT / "tools"))
import gen_export_fixtures as fixtures  # noqa: E402

L = keras.layers


def paper_like_model():
    """The paper's block structure in miniature: conv relu, conv -> pool -> relu -> BN, flatten, dense+BN+relu, dropout, dense softmax."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.Input((14, 14, 1)),
        L.Conv2D(4, 3, activation="relu", name="conv1"),
        L.Conv2D(6, 3, padding="same", name="conv2"),
        L.MaxPooling2D(name="pool"),
        L.ReLU(name="relu2"),
        L.BatchNormalization(name="bn2"),
        L.Flatten(name="flatten"),
        L.Dense(10, name="fc1"),
        L.BatchNormalization(name="bn_fc1"),
        L.Activation("relu", name="relu_fc1"),
        L.Dropout(0.25, name="drop"),
        L.Dense(3, activation="softmax", name="fc2"),
    ])
    rng = np.random.default_rng(5)
    for layer in model.layers:  # non-trivial BN statistics and biases, all within the device ranges
        if isinstance(layer, L.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.uniform(-0.3, 0.3, c), rng.uniform(0.0, 0.5, c), rng.uniform(0.2, 1.5, c)])
        elif layer.get_weights():
            k, b = layer.get_weights()
            layer.set_weights([k, rng.uniform(-0.2, 0.2, b.shape)])
    return model


def test_keras_export_round_trip_through_the_cli(tmp_path, capsys, core):
    model = paper_like_model()
    path = tmp_path / "paper_like.keras"
    model.save(path)
    out, header = tmp_path / "p.etm", tmp_path / "p.h"
    assert cli_main(["export", str(path), "-o", str(out), "--c-header", str(header), "--align", "16"]) == 0
    assert "conv2+relu2" in capsys.readouterr().out
    blob = out.read_bytes()
    parsed = read_etm(blob)
    c = CParse(core, blob)
    assert c.status == ET_OK and c.table == py_table(parsed)
    m = parsed.model
    assert [l.kind for l in m.layers] == [LayerKind.CONV2D, LayerKind.CONV2D, LayerKind.MAXPOOL2, LayerKind.BATCHNORM,
                                          LayerKind.FLATTEN, LayerKind.DENSE, LayerKind.DENSE, LayerKind.SOFTMAX_CE]
    assert [l.activation for l in m.layers[:2]] == [Activation.RELU, Activation.RELU]  # relu2 moved across the pool
    assert m.layers[1].padding == Padding.SAME and m.layers[5].activation == Activation.RELU
    assert [l.out_shape.c for l in m.layers] == [4, 6, 6, 6, 6 * 6 * 6, 10, 3, 3]

    # Conv kernels: Keras HWIO -> device OHWI, each weight within half a device step.
    for device, name in ((m.layers[0], "conv1"), (m.layers[1], "conv2")):
        kernel, bias = model.get_layer(name).get_weights()
        ohwi = np.transpose(kernel, (3, 0, 1, 2)).astype(np.float64)
        step = 2.0 ** (-7 - device.alpha_shift)
        assert device.weights.shape == ohwi.shape
        assert np.max(np.abs(device.weights * step - ohwi)) <= step / 2 + 1e-9
        assert np.max(np.abs(device.bias * 2.0**-12 - bias)) <= 2.0**-13 + 1e-9

    # fc1 + bn_fc1 folded: W' = W * gamma / sqrt(var + eps) (per output), b' = (b - mean) * scale + beta.
    kernel, bias = model.get_layer("fc1").get_weights()
    gamma, beta, mean, var = model.get_layer("bn_fc1").get_weights()
    scale = gamma / np.sqrt(var + model.get_layer("bn_fc1").epsilon)
    folded_w = (kernel * scale).T.astype(np.float64)
    folded_b = (bias - mean) * scale + beta
    fc1 = m.layers[5]
    step = 2.0 ** (-7 - fc1.alpha_shift)
    assert np.max(np.abs(fc1.weights * step - folded_w)) <= step / 2 + 1e-6
    assert np.max(np.abs(fc1.bias * 2.0**-12 - folded_b)) <= 2.0**-13 + 1e-6

    # bn2 after the ReLU stays a device batch norm: gamma, beta, mean; mean square = var + eps + mean^2.
    g2, b2, m2, v2 = model.get_layer("bn2").get_weights()
    eps = model.get_layer("bn2").epsilon
    bn = m.layers[3].bn
    assert np.max(np.abs(bn[0] * 2.0**-12 - g2)) <= 2.0**-13 + 1e-6
    assert np.max(np.abs(bn[2] * 2.0**-12 - m2)) <= 2.0**-13 + 1e-6
    assert np.max(np.abs(bn[3] * 2.0**-9 - (v2 + eps + m2**2))) <= 2.0**-10 + 1e-6
    assert "paper_like.keras sha256" in parsed.provenance and "const uint8_t p_etm[P_ETM_SIZE]" in header.read_text()


def test_functional_chain_exports_and_branches_do_not():
    from edgetrain.export import from_keras

    inp = keras.Input((6, 6, 2))
    x = L.Conv2D(3, 3, activation="relu")(inp)
    x = L.Flatten()(x)
    out = L.Dense(4)(x)
    m = from_keras(keras.Model(inp, out), name="f")
    assert [l.kind for l in m.layers] == [LayerKind.CONV2D, LayerKind.FLATTEN, LayerKind.DENSE, LayerKind.SOFTMAX_CE]
    a = L.Conv2D(2, 3, padding="same", name="left")(inp)
    b = L.Conv2D(2, 3, padding="same", name="right")(inp)
    merged = L.Add(name="merge")([a, b])
    with pytest.raises(UnsupportedError, match="not a single chain"):
        from_keras(keras.Model(inp, L.Dense(2)(L.Flatten()(merged))))


@pytest.mark.parametrize(
    "layer, match",
    [
        (lambda: L.AveragePooling2D(2, name="avg"), r"'avg' \(AveragePooling2D\): not supported"),
        (lambda: L.Conv2D(2, 3, strides=2, name="strided"), r"'strided'.*stride 1"),
        (lambda: L.Conv2D(2, 3, activation="tanh", name="tanh_conv"), r"'tanh_conv'.*activation 'tanh'"),
        (lambda: L.LeakyReLU(name="leaky"), r"'leaky' \(LeakyReLU\)"),
        (lambda: L.MaxPooling2D(3, name="pool3"), r"'pool3'.*2x2"),
        (lambda: L.ReLU(max_value=6.0, name="relu6"), r"'relu6'.*plain ReLU"),
    ],
)
def test_unsupported_layers_are_named(layer, match):
    from edgetrain.export import from_keras

    model = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(2, 1, activation="relu"), layer(), L.Flatten(), L.Dense(2)])
    with pytest.raises(UnsupportedError, match=match):
        from_keras(model)


def test_weights_beyond_the_device_range():
    from edgetrain.export import convert_keras

    model = keras.Sequential([keras.Input((3,)), L.Dense(2, name="wide")])
    model.get_layer("wide").set_weights([np.full((3, 2), 1.7, np.float32), np.zeros(2, np.float32)])
    with pytest.raises(RangeError, match="'wide'.*1.7"):
        convert_keras(model)
    conv = convert_keras(model, saturate=True)
    assert conv.layers[0].weight_saturated == 6 and conv.model.layers[0].weights.max() == 127


def test_live_tflite_converter_int8_import(tmp_path, core):
    """A fresh int8 TFLite model from TFLiteConverter imports, and its weights map within half a device step."""
    from edgetrain.export import convert_tflite

    keras.utils.set_random_seed(11)
    model = fixtures.small_keras_model(keras)
    x, y = fixtures.synthetic_task(128, 2)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    data = fixtures.tflite_int8(model, x)
    conv = convert_tflite(data, name="live")
    macs = [l for l in conv.model.layers if l.weights is not None]
    keras_kernels = [model.get_layer(n).get_weights()[0] for n in ("conv1", "conv2", "fc1", "fc2")]
    for layer, kernel in zip(macs, keras_kernels):
        real = np.transpose(kernel, (3, 0, 1, 2)) if kernel.ndim == 4 else kernel.T
        step = 2.0 ** (-7 - layer.alpha_shift)
        tfl_step = np.abs(real).max(axis=tuple(range(1, real.ndim))) / 127  # TFLite per-channel symmetric step
        # device vs Keras float: the device's half step plus TFLite's own half step
        bound = step / 2 + tfl_step.reshape((-1,) + (1,) * (real.ndim - 1)) / 2 + 1e-6
        assert np.all(np.abs(layer.weights * step - real) <= bound)
    blob = __import__("edgetrain.model.etm", fromlist=["write_etm"]).write_etm(conv.model)
    assert CParse(core, blob).status == ET_OK
    assert tf.__version__.startswith("2.")


def test_unbuilt_model_asks_for_an_input_shape():
    from edgetrain.export import from_keras

    with pytest.raises(UnsupportedError, match="fixed input shape"):
        from_keras(keras.Sequential([L.Dense(2)]))


def test_tflite_export_measures_the_accuracy_change_of_the_mapping(tmp_path, capsys, mnist_dir):
    """The TFLite interpreter against the C core on MNIST test images (the 10,000-image figure: docs/export.md)."""
    import json

    from edgetrain.data import mnist
    from edgetrain.export import evaluate

    out, report = tmp_path / "m.etm", tmp_path / "m.json"
    assert cli_main(["export", str(fixtures.GOLDEN / "mnist_int8.tflite"), "-o", str(out), "--json", str(report),
                     "--data-dir", str(mnist_dir), "--eval-samples", "300"]) == 0
    text = capsys.readouterr().out
    acc = json.loads(report.read_text())["accuracy"]
    assert acc["source"] == "TFLite interpreter" and acc["images"] == 300
    assert acc["source_accuracy"] >= 0.9  # the fixture is a trained model
    assert acc["change_points"] == pytest.approx(100 * (acc["device_accuracy"] - acc["source_accuracy"]))
    images, labels = mnist.load("test", mnist_dir)
    src = evaluate.tflite_labels((fixtures.GOLDEN / "mnist_int8.tflite").read_bytes(), images[:300])
    dev = evaluate.device_labels(read_etm(out.read_bytes()).model, images[:300])
    assert acc["label_agreement"] == float(np.mean(src == dev)) and acc["source_accuracy"] == float(np.mean(src == labels[:300]))
    assert f"TFLite interpreter {acc['source_accuracy']:.4f}, device (C core) {acc['device_accuracy']:.4f}" in text
