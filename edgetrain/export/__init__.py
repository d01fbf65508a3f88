"""Models in: Keras and TFLite int8 models to device models (.etm), and C headers.

``from_keras(model)`` / ``from_tflite(path_or_bytes)`` give a device
``Model``; the ``convert_*`` variants also return the per-layer mapping report.
TensorFlow is needed only for Keras (``pip install 'edgetrain[tf]'``); TFLite
import reads the flatbuffer with the pure-Python ``tflite`` package.

``edgetrain.export.qat`` (needs TensorFlow; import it explicitly) holds the
quantization-aware training layers whose forward pass is the device's;
``edgetrain.export.evaluate`` measures what a mapping costs in accuracy
(docs/export.md).
"""
from .keras import convert_keras, from_keras
from .lower import Conversion, LayerReport
from .tflite import convert_tflite, from_tflite

__all__ = ["Conversion", "LayerReport", "convert_keras", "convert_tflite", "from_keras", "from_tflite"]
