"""Model description, presets and model images."""
from .description import Activation, Layer, LayerKind, Model, Padding, Shape

__all__ = ["Activation", "Layer", "LayerKind", "Model", "Padding", "Shape"]
