"""Weights from and to other frameworks: PyTorch state dicts, live Keras 3
layers, Keras 3 weight files (``.weights.h5``) and model archives (``.keras``), and the RNN cells
of Flax (linen and NNX), Equinox and Haiku."""

from jaxrnn.interop.equinox_cells import from_equinox, to_equinox
from jaxrnn.interop.flax_linen import from_linen, to_linen
from jaxrnn.interop.flax_nnx import from_nnx, to_nnx
from jaxrnn.interop.haiku_params import from_haiku, to_haiku
from jaxrnn.interop.keras_h5 import load_keras_weights, save_keras_weights
from jaxrnn.interop.keras_layers import from_keras, layer_from_keras, to_keras
from jaxrnn.interop.keras_model import load_keras_model, save_keras_model
from jaxrnn.interop.torch_state import (
    TorchStack,
    call_like_torch,
    from_torch,
    layer_from_torch,
    to_torch,
)

__all__ = [
    "TorchStack",
    "call_like_torch",
    "from_equinox",
    "from_haiku",
    "from_keras",
    "from_linen",
    "from_nnx",
    "from_torch",
    "layer_from_keras",
    "layer_from_torch",
    "load_keras_model",
    "load_keras_weights",
    "save_keras_model",
    "save_keras_weights",
    "to_equinox",
    "to_haiku",
    "to_keras",
    "to_linen",
    "to_nnx",
    "to_torch",
]
