"""The pretrained mcu-cnn that ships inside the package (no TensorFlow needed)."""
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
from edgetrain.model.loader import PRETRAINED, has_bn_statistics, load_model, pretrained_path
from edgetrain.model.presets import preset

NAME = "mcu-cnn-pretrained"


def sidecar() -> dict:
    return json.loads(pretrained_path(NAME).with_suffix(".json").read_text())


def test_shipped_model_carries_its_provenance():
    parsed = etm.load(pretrained_path(NAME))
    text = parsed.provenance
    assert text.startswith("tools/pretrain.py QAT on MNIST (edgetrain ")
    assert "TensorFlow 2." in text and "command: python tools/pretrain.py" in text and "--ship" in text
    for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert f"{f} " in text
    info = sidecar()
    assert info["provenance"] == text and info["model"] == "mcu-cnn" and info["test_images"] == 10000
    assert info["device_accuracy_c"] > 0.98 and info["label_agreement"] >= 0.995


def test_shipped_model_has_the_preset_architecture():
    model = load_model(NAME)
    fresh = preset("mcu-cnn")
    assert [(l.kind, l.in_shape, l.out_shape, l.activation, l.padding, l.kernel, l.alpha_shift) for l in model.layers] == \
           [(l.kind, l.in_shape, l.out_shape, l.activation, l.padding, l.kernel, l.alpha_shift) for l in fresh.layers]
    assert has_bn_statistics(model) and not has_bn_statistics(fresh)
    assert load_model(NAME, seed=9).layers[0].weights.tobytes() == model.layers[0].weights.tobytes()  # no seed involved


def test_c_and_numpy_predict_the_same_labels(mnist_dir):
    images, labels = mnist.load("test", mnist_dir)
    images, labels = images[:200], labels[:200]
    model = load_model(NAME)
    config = TrainConfig(optimizer=OPT_NONE, bn_warm=True)
    c = make_backend("c", model, config)
    twin = make_backend("numpy", model, config)
    c_pred = np.array([c.predict(img) for img in images])
    assert np.array_equal(c_pred, [twin.predict(img) for img in images])
    assert np.mean(c_pred == labels) >= 0.97


@pytest.mark.slow
@pytest.mark.full_mnist
def test_full_test_set_accuracy_is_the_quoted_one(full_mnist_dir):
    images, labels = mnist.load("test", full_mnist_dir)
    c = make_backend("c", load_model(NAME), TrainConfig(optimizer=OPT_NONE, bn_warm=True))
    accuracy = float(np.mean(np.array([c.predict(img) for img in images]) == labels))
    assert accuracy == sidecar()["device_accuracy_c"]


def test_run_starts_from_the_pretrained_weights(tmp_path, capsys, mnist_dir):
    out = tmp_path / "r.json"
    assert cli_main(["run", "--model", NAME, "--optimizer", "sgd", "--samples", "300", "--data-dir", str(mnist_dir),
                     "--json", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    r = json.loads(out.read_text())
    # Reported by the name it was run by; streamed from the test split (images it was not trained on).
    assert r["bn_statistics"] == "stored" and r["model"] == NAME
    assert r["data"].startswith("MNIST subset shipped in the package") or r["data"].startswith("MNIST test split")
    assert r["accuracy"] >= 0.95  # a fresh mcu-cnn is near 0.1 over its first 300 samples


def test_unknown_names_list_the_pretrained_ones():
    with pytest.raises(ArgumentError, match="mcu-cnn-pretrained"):
        load_model("mcu-cnn-trained")
    with pytest.raises(ArgumentError, match="unknown pretrained model"):
        pretrained_path("nope")
    assert set(PRETRAINED) == {NAME}
