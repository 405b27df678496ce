"""A live Keras 3 object's configuration -> the jaxrnn layer or model.

`layer_from_keras` reads what a Keras layer, cell or ``Sequential`` was
built with (units, activations by name, flags, rates, dtypes, initializers
used with their default arguments) and builds the jaxrnn counterpart, one
function per family of layers; it reads no weights (`from_keras` does).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxrnn import activations, initializers
from jaxrnn.cells.gru import GRUCell
from jaxrnn.cells.lstm import LSTMCell
from jaxrnn.cells.simple import SimpleRNNCell
from jaxrnn.interop._keras_objects import (
    keras_kind,
    keras_module,
    object_label,
)
from jaxrnn.layers.bidirectional import Bidirectional
from jaxrnn.layers.convolutional import Conv1D
from jaxrnn.layers.core import Dense, Dropout, Embedding, TimeDistributed
from jaxrnn.layers.masking import Masking
from jaxrnn.layers.normalization import BatchNormalization, LayerNormalization
from jaxrnn.layers.pooling import (
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    MaxPooling1D,
)
from jaxrnn.layers.recurrent import GRU, LSTM, SimpleRNN
from jaxrnn.layers.rnn import RNN
from jaxrnn.layers.sequential import Sequential, keras_snake_case


def layer_from_keras(keras_layer_or_model: Any) -> Any:
    """Builds the jaxrnn layer or model that computes what a Keras one does.

    Reads the configuration (units, activations by name, use_bias,
    unit_forget_bias, reset_after, dropout rates, return_sequences,
    return_state, go_backwards, stateful, unroll, zero_output_for_mask,
    merge_mode, mask_zero, epsilon, momentum, ...), not the weights: use
    `from_keras` for those. Initializers carry over by name when Keras uses
    them with default arguments, otherwise jaxrnn's default stays. Keras'
    regularizers, constraints and seeds have no jaxrnn counterpart and are
    not carried over. The Keras object need not be built.

    Args:
      keras_layer_or_model: a Keras 3 layer, cell or ``Sequential`` of a type
        `from_keras` supports.

    Returns:
      A jaxrnn layer (`LSTM`, `RNN`, `Bidirectional`, ...), a cell, a list of
      cells for ``StackedRNNCells``, or a `Sequential`.

    Raises:
      TypeError: for an unsupported Keras class.
      ValueError: for a setting jaxrnn lacks (an activation it does not
        know, ...).

    Example:
      Needs Keras, so it is not run as a doctest:

      ```python
      import keras
      from jaxrnn.interop import layer_from_keras

      layer = layer_from_keras(keras.layers.GRU(8, return_sequences=True))
      # GRU(return_sequences=True, ..., units=8, ..., reset_after=True)
      ```
    """
    obj = keras_layer_or_model
    kind = keras_kind(obj)
    if kind == "Sequential":
        return Sequential(
            [layer_from_keras(sub) for sub in obj.layers], name=obj.name
        )
    if kind in ("SimpleRNN", "LSTM", "GRU", "RNN"):
        return _recurrent_from_keras(obj, kind)
    if kind in ("SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells"):
        return _cell_from_keras(obj)
    if kind == "Bidirectional":
        return _bidirectional_from_keras(obj)
    if kind == "TimeDistributed":
        return TimeDistributed(layer_from_keras(obj.layer))
    if kind == "Embedding":
        return Embedding(
            obj.input_dim,
            obj.output_dim,
            mask_zero=bool(obj.mask_zero),
            **_initializers(obj, "embeddings_initializer"),
            **_dtypes(obj, compute=False),
        )
    if kind == "Dense":
        activation = _activation(obj, "activation", obj.activation)
        # Keras' None is 'linear'; jaxrnn's Dense keeps None, its default.
        return Dense(
            obj.units,
            activation=None if activation == "linear" else activation,
            use_bias=obj.use_bias,
            **_initializers(obj, "kernel_initializer", "bias_initializer"),
            **_dtypes(obj, compute=False),
        )
    if kind == "Dropout":
        noise = obj.noise_shape
        return Dropout(
            float(obj.rate),
            noise_shape=None if noise is None else tuple(noise),
        )
    if kind in (
        "Masking",
        "GlobalAveragePooling1D",
        "GlobalMaxPooling1D",
        "MaxPooling1D",
        "Conv1D",
    ):
        return _convolution_from_keras(obj, kind)
    return _normalization_from_keras(obj, kind)


def _activation(owner: Any, name: str, fn: Any) -> str:
    serialized = keras_module().activations.serialize(fn)
    if serialized is None:
        return "linear"
    if (
        not isinstance(serialized, str)
        or serialized not in activations.names()
    ):
        raise ValueError(
            f"{owner.name}: {name} {serialized!r} has no jaxrnn "
            f"equivalent; expected one of {activations.names()}."
        )
    return serialized


def _initializer(init: Any) -> str | None:
    """The jaxrnn name for a Keras initializer with its default arguments
    (the seed aside), else None: the params come from Keras anyway."""
    if init is None:
        return None
    name = keras_snake_case(type(init).__name__)
    if name not in initializers.names():
        return None
    try:
        default = type(init)().get_config()
    except TypeError:
        return None
    config = dict(init.get_config())
    config.pop("seed", None)
    default.pop("seed", None)
    return name if config == default else None


def _initializers(obj: Any, *names: str) -> dict[str, str]:
    found = {n: _initializer(getattr(obj, n, None)) for n in names}
    return {n: v for n, v in found.items() if v is not None}


def _dtypes(obj: Any, compute: bool) -> dict[str, Any]:
    variable = obj.variable_dtype
    kwargs = {"param_dtype": variable}
    if compute and obj.compute_dtype != variable:
        kwargs["dtype"] = obj.compute_dtype
    return kwargs


def _cell_from_keras(cell: Any) -> Any:
    kind = keras_kind(cell)
    if kind == "StackedRNNCells":
        return [_cell_from_keras(c) for c in cell.cells]
    if kind not in ("SimpleRNNCell", "LSTMCell", "GRUCell"):
        raise TypeError(
            f"{object_label(cell)}: Keras {type(cell).__name__} is not "
            "a cell jaxrnn supports; expected SimpleRNNCell, "
            "LSTMCell, GRUCell or a list of them."
        )
    kwargs = dict(
        units=cell.units,
        use_bias=cell.use_bias,
        dropout=float(cell.dropout),
        recurrent_dropout=float(cell.recurrent_dropout),
        activation=_activation(cell, "activation", cell.activation),
        **_initializers(
            cell,
            "kernel_initializer",
            "recurrent_initializer",
            "bias_initializer",
        ),
        **_dtypes(cell, compute=True),
    )
    if kind == "SimpleRNNCell":
        return SimpleRNNCell(**kwargs)
    kwargs["recurrent_activation"] = _activation(
        cell, "recurrent_activation", cell.recurrent_activation
    )
    if kind == "LSTMCell":
        return LSTMCell(unit_forget_bias=cell.unit_forget_bias, **kwargs)
    return GRUCell(reset_after=cell.reset_after, **kwargs)


def _recurrent_from_keras(layer: Any, kind: str) -> Any:
    flags = {
        name: bool(getattr(layer, name))
        for name in (
            "return_sequences",
            "return_state",
            "go_backwards",
            "stateful",
            "unroll",
            "zero_output_for_mask",
        )
    }
    cell = _cell_from_keras(layer.cell)
    if kind == "RNN":
        return RNN(cell, **flags)
    fields = {f.name: getattr(cell, f.name) for f in dataclasses.fields(cell)}
    return {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}[kind](
        **fields, **flags
    )


def _bidirectional_from_keras(layer: Any) -> Bidirectional:
    # Both directions output zeros at masked steps whatever their flag says
    # (Keras forces it, jaxrnn too), so the flag is normalised away.
    forward, backward = (
        dataclasses.replace(layer_from_keras(side), zero_output_for_mask=False)
        for side in (layer.forward_layer, layer.backward_layer)
    )
    if backward == dataclasses.replace(forward, go_backwards=True):
        backward = None
    return Bidirectional(
        forward, merge_mode=layer.merge_mode, backward_layer=backward
    )


def _normalization_from_keras(layer: Any, kind: str) -> Any:
    axis = layer.axis
    if isinstance(axis, (list, tuple)):
        axis = axis[0] if len(axis) == 1 else tuple(axis)
    kwargs = dict(
        axis=axis,
        epsilon=float(layer.epsilon),
        center=bool(layer.center),
        scale=bool(layer.scale),
        **_initializers(layer, "beta_initializer", "gamma_initializer"),
        **_dtypes(layer, compute=False),
    )
    if kind == "LayerNormalization":
        return LayerNormalization(
            rms_scaling=bool(layer.rms_scaling), **kwargs
        )
    if layer.renorm:  # Keras keeps both arguments unused without renorm.
        clipping = layer.renorm_clipping
        kwargs.update(
            renorm=True,
            renorm_momentum=float(layer.renorm_momentum),
            renorm_clipping=None if clipping is None else dict(clipping),
        )
    return BatchNormalization(
        momentum=float(layer.momentum),
        **_initializers(
            layer, "moving_mean_initializer", "moving_variance_initializer"
        ),
        **kwargs,
    )


def _convolution_from_keras(obj: Any, kind: str) -> Any:
    if kind == "Masking":
        return Masking(mask_value=float(obj.mask_value))
    if kind in ("GlobalAveragePooling1D", "GlobalMaxPooling1D"):
        cls = (
            GlobalAveragePooling1D
            if kind == "GlobalAveragePooling1D"
            else GlobalMaxPooling1D
        )
        return cls(data_format=obj.data_format, keepdims=bool(obj.keepdims))
    if kind == "MaxPooling1D":
        return MaxPooling1D(
            pool_size=_first(obj.pool_size),
            strides=_first(obj.strides),
            padding=obj.padding,
            data_format=obj.data_format,
        )
    return Conv1D(
        obj.filters,
        _first(obj.kernel_size),
        strides=_first(obj.strides),
        padding=obj.padding,
        data_format=obj.data_format,
        dilation_rate=_first(obj.dilation_rate),
        groups=obj.groups,
        activation=_activation(obj, "activation", obj.activation),
        use_bias=obj.use_bias,
        **_initializers(obj, "kernel_initializer", "bias_initializer"),
        **_dtypes(obj, compute=False),
    )


def _first(value: Any) -> Any:
    """Keras keeps 1D sizes as 1-tuples; jaxrnn's 1D layers take ints."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return int(value[0])
    return value
