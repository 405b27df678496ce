"""Weights from and to other frameworks: PyTorch state dicts, live Keras 3
layers and Keras 3 weight files (``.weights.h5``, ``.keras``)."""

from jaxrnn.interop.keras_h5 import load_keras_weights, save_keras_weights
from jaxrnn.interop.keras_layers import from_keras, layer_from_keras, to_keras
from jaxrnn.interop.torch_state import (TorchStack, call_like_torch,
                                        from_torch, layer_from_torch,
                                        to_torch)

__all__ = [
    "TorchStack",
    "call_like_torch",
    "from_keras",
    "from_torch",
    "layer_from_keras",
    "layer_from_torch",
    "load_keras_weights",
    "save_keras_weights",
    "to_keras",
    "to_torch",
]
