"""What the power-of-two mapping costs in accuracy: the source model against the device model.

``edgetrain export`` calls ``evaluate_mapping`` when it can: the source model
(the TFLite interpreter, or the Keras model) and the exported device model
(the C core, ``et_train_predict`` with the stored batch-norm statistics)
classify the same MNIST test images; the report gives both accuracies, the
change in points and how often the two predict the same label.

The TFLite interpreter comes with TensorFlow (``tf.lite.Interpreter``) or the
``ai-edge-litert`` package; without either only the device's accuracy and the
weight-level error of the mapping report are available, and the report says so.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ArgumentError, UnsupportedError
from ..model.description import Model


@dataclass
class MappingAccuracy:
    """Source vs device on the same images; accuracies in 0..1."""

    images: int
    data: str
    device_accuracy: float
    source: str  # "tflite interpreter", "keras", or "" when the source could not run
    source_accuracy: float | None = None
    label_agreement: float | None = None
    input_divisor: int = 256
    notes: list[str] = field(default_factory=list)

    @property
    def change_points(self) -> float | None:
        if self.source_accuracy is None:
            return None
        return 100.0 * (self.device_accuracy - self.source_accuracy)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["change_points"] = self.change_points
        return d

    def summary(self) -> str:
        head = f"accuracy on {self.images} {self.data} images: "
        if self.source_accuracy is None:
            text = head + f"device (C core) {self.device_accuracy:.4f}; source not run"
        else:
            text = (head + f"{self.source} {self.source_accuracy:.4f}, device (C core) {self.device_accuracy:.4f} "
                    f"({self.change_points:+.2f} points); same label on {self.label_agreement:.2%}")
        return "\n".join([text] + [f"note: {n}" for n in self.notes])


def device_labels(model: Model, images: np.ndarray) -> np.ndarray:
    """The C core's predictions (et_train_predict), stored batch-norm statistics when the model has them."""
    from ..backends import make_backend
    from ..model.loader import has_bn_statistics
    from ..config import OPT_NONE, TrainConfig

    backend = make_backend("c", model, TrainConfig(optimizer=OPT_NONE, bn_warm=has_bn_statistics(model)))
    return np.array([backend.predict(img) for img in images], dtype=np.int64)


def _interpreter(data: bytes):
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 - optional
    except ImportError:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        try:
            import tensorflow as tf  # noqa: PLC0415 - optional
        except ImportError as exc:
            raise UnsupportedError(
                "running the TFLite model needs its interpreter: pip install 'edgetrain[tf]' (TensorFlow) or ai-edge-litert"
            ) from exc
        Interpreter = tf.lite.Interpreter  # noqa: N806
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interp = Interpreter(model_content=bytes(data))
    interp.allocate_tensors()
    return interp


def tflite_labels(data: bytes, images: np.ndarray, divisor: int = 256) -> np.ndarray:
    """The TFLite interpreter's predictions for uint8 images fed as p / divisor (quantized by its input scale)."""
    interp = _interpreter(data)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    shape = tuple(int(v) for v in inp["shape"])
    labels = np.empty(len(images), dtype=np.int64)
    scale, zero = inp["quantization"]
    for i, img in enumerate(images):
        x = (img.astype(np.float64) / divisor).reshape(shape)
        if np.issubdtype(inp["dtype"], np.integer):
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.floor(x / scale + 0.5) + zero, info.min, info.max)
        interp.set_tensor(inp["index"], x.astype(inp["dtype"]))
        interp.invoke()
        labels[i] = int(np.argmax(interp.get_tensor(out["index"]).reshape(-1)))
    return labels


def keras_labels(model, images: np.ndarray, divisor: int = 256) -> np.ndarray:
    x = images.astype(np.float32)[..., np.newaxis] / np.float32(divisor)
    fixed = model.inputs[0].shape[0] if getattr(model, "inputs", None) else None  # a fixed batch (e.g. 1 for TFLite)
    return np.argmax(np.asarray(model.predict(x, batch_size=fixed or 250, verbose=0)), axis=1).astype(np.int64)


def mnist_test(model: Model, data_dir, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``samples`` MNIST test images and labels, for a 28x28x1 model with 10 classes."""
    from ..data import mnist

    s = model.input_shape
    if (s.h, s.w, s.c) != (28, 28, 1) or model.n_classes != 10:
        raise UnsupportedError(f"accuracy is measured on MNIST: the model takes {s.h}x{s.w}x{s.c} inputs and gives "
                               f"{model.n_classes} classes, MNIST needs 28x28x1 and 10")
    if samples < 1:
        raise ArgumentError(f"--eval-samples {samples}: give at least 1")
    images, labels = mnist.load("test", data_dir)
    return images[:samples], labels[:samples].astype(np.int64)


def evaluate_mapping(model: Model, images: np.ndarray, labels: np.ndarray, *, tflite: bytes | None = None,
                     keras_model=None, divisor: int = 256, data: str = "MNIST test") -> MappingAccuracy:
    """Device accuracy, and the source's where its runtime is available."""
    if divisor not in (255, 256):
        raise ArgumentError(f"input divisor {divisor}: the source model was trained on p/255 or p/256")
    dev = device_labels(model, images)
    result = MappingAccuracy(len(images), data, float(np.mean(dev == labels)), "", input_divisor=divisor)
    if divisor != 256:
        result.notes.append(f"the source model is fed p/{divisor}; the device reads p/256 (part of the change)")
    try:
        if tflite is not None:
            src, result.source = tflite_labels(tflite, images, divisor), "TFLite interpreter"
        elif keras_model is not None:
            src, result.source = keras_labels(keras_model, images, divisor), "Keras"
        else:
            return result
    except UnsupportedError as exc:
        result.notes.append(f"{exc}; without it the accuracy change is not measured: the weight-level error above "
                            "is the mapping's only report")
        return result
    result.source_accuracy = float(np.mean(src == labels))
    result.label_agreement = float(np.mean(src == dev))
    return result
