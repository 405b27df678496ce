"""Weights from and to other frameworks: PyTorch state dicts, live Keras 3
layers, Keras 3 weight files (``.weights.h5``) and model archives
(``.keras``), the RNN cells of Flax (linen and NNX), Equinox and Haiku, and
recurrentgemma's RG-LRU and xlstm's sLSTM and mLSTM cells.

What the converters return follows one rule per direction:

- Into jaxrnn, a converter that builds the jaxrnn structure returns
  ``(structure, params)``, structure first: ``(cell, params)`` from
  `from_linen`, `from_nnx`, `from_equinox`, `from_haiku` and
  `from_recurrentgemma`, `from_xlstm`,
  ``(model, params)`` from `load_keras_model`. One that is handed the
  structure returns the params alone: `from_torch(state_dict, layer)` and
  `load_keras_weights(path, model)`, whose layer `layer_from_torch` or
  `layer_from_keras` builds; `from_keras` reads a live Keras object whose
  jaxrnn layer `layer_from_keras` builds from the same object.
- Out of jaxrnn, a converter returns what the other library loads: a
  state dict (`to_torch`), linen's ``(module, variables)`` (`to_linen`,
  `to_recurrentgemma`), a module holding its weights (`to_nnx`,
  `to_equinox`), Haiku params (`to_haiku`) or xlstm's ``(module, input
  projections)`` (`to_xlstm`). Where the target is a Keras object or file,
  it is written in place and nothing is returned (`to_keras`,
  `save_keras_weights`, `save_keras_model`).

Arguments mirror the results: `to_linen`, `to_nnx`, `to_equinox`,
`to_haiku`, `to_recurrentgemma` and `to_xlstm` take ``(cell, params)`` as
their `from_*` returns them, and `to_torch`, `to_keras` and the Keras
savers take the params first, then the layer, as jaxrnn's layers do
(``layer(params, x)``).
"""

from jaxrnn.interop.equinox_cells import from_equinox, to_equinox
from jaxrnn.interop.flax_linen import from_linen, to_linen
from jaxrnn.interop.flax_nnx import from_nnx, to_nnx
from jaxrnn.interop.haiku_params import from_haiku, to_haiku
from jaxrnn.interop.keras_h5 import load_keras_weights, save_keras_weights
from jaxrnn.interop.keras_layers import from_keras, layer_from_keras, to_keras
from jaxrnn.interop.keras_model import load_keras_model, save_keras_model
from jaxrnn.interop.recurrentgemma import (
    from_recurrentgemma,
    to_recurrentgemma,
)
from jaxrnn.interop.torch_state import (
    TorchStack,
    call_like_torch,
    from_torch,
    layer_from_torch,
    to_torch,
)
from jaxrnn.interop.xlstm import from_xlstm, to_xlstm

__all__ = [
    "TorchStack",
    "call_like_torch",
    "from_equinox",
    "from_haiku",
    "from_keras",
    "from_linen",
    "from_nnx",
    "from_recurrentgemma",
    "from_torch",
    "from_xlstm",
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
    "to_recurrentgemma",
    "to_torch",
    "to_xlstm",
]
