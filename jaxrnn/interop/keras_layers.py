"""Live Keras 3 layers and models <-> jaxrnn params and layers.

`from_keras` copies a built Keras object's weights into jaxrnn params,
`to_keras` copies params back into it, and `layer_from_keras` builds the
jaxrnn layer (or `Sequential`) that computes what the Keras one does:

| Keras | jaxrnn params |
| --- | --- |
| ``SimpleRNN``, ``LSTM``, ``GRU``, ``RNN(cell)``, cells | the cell's ``{'kernel', 'recurrent_kernel', 'bias'}`` (no bias without ``use_bias``) |
| ``RNN([cell, ...])`` | a list with one such dict per cell |
| ``Bidirectional`` | ``{'forward': ..., 'backward': ...}`` |
| ``Embedding`` | ``{'embeddings'}`` |
| ``Dense``, ``Conv1D`` | ``{'kernel', 'bias'}`` (no bias without ``use_bias``) |
| ``Masking``, ``MaxPooling1D``, ``GlobalAveragePooling1D``, ``GlobalMaxPooling1D`` | ``{}`` |
| ``TimeDistributed(layer)`` | the inner layer's params |
| ``Dropout`` | ``{}`` |
| ``BatchNormalization`` | ``{'gamma', 'beta', 'moving_mean', 'moving_variance'}`` (gamma, beta as present; with ``renorm`` also ``'moving_stddev', 'renorm_mean', 'renorm_stddev'``) |
| ``LayerNormalization`` | ``{'gamma', 'beta'}`` (as present) |
| ``Sequential`` | a list with one entry per layer |

Keras is imported only when a function here is called, so jaxrnn itself needs
nothing beyond jax and numpy; pass objects of Keras 3 (any backend).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxrnn import activations, initializers
from jaxrnn.cells.gru import GRUCell
from jaxrnn.cells.lstm import LSTMCell
from jaxrnn.cells.simple import SimpleRNNCell
from jaxrnn.interop.keras_h5 import keras_snake_case
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
from jaxrnn.layers.recurrent import GRU, LSTM, RNN, SimpleRNN
from jaxrnn.layers.sequential import Sequential

# Variables each Keras leaf layer may own, in Keras' order; absent ones (a
# bias with use_bias=False, gamma with scale=False) are None on the layer.
_ARRAYS = {
    "SimpleRNNCell": ("kernel", "recurrent_kernel", "bias"),
    "LSTMCell": ("kernel", "recurrent_kernel", "bias"),
    "GRUCell": ("kernel", "recurrent_kernel", "bias"),
    "Embedding": ("embeddings",),
    "Dense": ("kernel", "bias"),
    "Conv1D": ("kernel", "bias"),
    "Dropout": (),
    "Masking": (),
    "MaxPooling1D": (),
    "GlobalAveragePooling1D": (),
    "GlobalMaxPooling1D": (),
    "BatchNormalization": (
        "gamma",
        "beta",
        "moving_mean",
        "moving_variance",
        "moving_stddev",
        "renorm_mean",
        "renorm_stddev",
    ),
    "LayerNormalization": ("gamma", "beta"),
}
_CONTAINERS = (
    "Sequential",
    "RNN",
    "StackedRNNCells",
    "Bidirectional",
    "TimeDistributed",
)
_SUPPORTED = sorted(
    set(_ARRAYS) | set(_CONTAINERS) | {"SimpleRNN", "LSTM", "GRU"}
)


def _keras():
    import keras  # Lazy: Keras is an optional, test-time dependency.

    return keras


def _kind(obj: Any) -> str:
    """The supported Keras class `obj` is an instance of (subclasses too)."""
    keras = _keras()
    if isinstance(obj, keras.Sequential):
        return "Sequential"
    for name in (
        "SimpleRNN",
        "LSTM",
        "GRU",
        "RNN",
        "StackedRNNCells",
        *_ARRAYS,
        "Bidirectional",
        "TimeDistributed",
    ):
        if isinstance(obj, getattr(keras.layers, name)):
            return name
    label = getattr(obj, "name", type(obj).__name__)
    raise TypeError(
        f"{label}: Keras {type(obj).__name__} is not supported; "
        f"expected one of {_SUPPORTED}."
    )


# The Keras object as a tree whose shape is the params' shape.
@dataclasses.dataclass
class _Arrays:
    """A params dict: jaxrnn name -> Keras variable."""

    label: str
    variables: dict[str, Any]


@dataclasses.dataclass
class _Items:
    """A params list, one node per layer (Sequential) or cell (stacked)."""

    label: str
    what: str
    items: list[Any]


@dataclasses.dataclass
class _Directions:
    """Bidirectional params: {'forward': node, 'backward': node}."""

    label: str
    forward: Any
    backward: Any


def _tree(obj: Any, label: str) -> Any:
    kind = _kind(obj)
    if not obj.built:
        raise ValueError(
            f"{label}: the Keras {type(obj).__name__} is not "
            "built; call it on data or build(input_shape) first."
        )
    if kind == "Sequential":
        return _Items(
            label, "layer", [_tree(sub, sub.name) for sub in obj.layers]
        )
    if kind in ("SimpleRNN", "LSTM", "GRU", "RNN"):
        return _tree(
            obj.cell, label
        )  # the layer's name says more than its cell's
    if kind == "StackedRNNCells":
        return _Items(
            label,
            "cell",
            [_tree(c, f"{label}.cells[{i}]") for i, c in enumerate(obj.cells)],
        )
    if kind == "Bidirectional":
        return _Directions(
            label,
            _tree(obj.forward_layer, f"{label}.{obj.forward_layer.name}"),
            _tree(obj.backward_layer, f"{label}.{obj.backward_layer.name}"),
        )
    if kind == "TimeDistributed":
        return _tree(obj.layer, f"{label}.{obj.layer.name}")
    return _Arrays(
        label,
        {
            name: getattr(obj, name)
            for name in _ARRAYS[kind]
            if getattr(obj, name, None) is not None
        },
    )


def _read(node: Any) -> Any:
    if isinstance(node, _Items):
        return [_read(item) for item in node.items]
    if isinstance(node, _Directions):
        return {
            "forward": _read(node.forward),
            "backward": _read(node.backward),
        }
    return {
        name: jnp.asarray(_keras().ops.convert_to_numpy(v))
        for name, v in node.variables.items()
    }


def from_keras(keras_layer_or_model: Any) -> Any:
    """Copies a built Keras layer's (or Sequential's) weights into params.

    Args:
      keras_layer_or_model: a built Keras 3 ``SimpleRNN``, ``LSTM``, ``GRU``,
        ``RNN``, cell, ``Bidirectional``, ``Embedding``, ``Dense``,
        ``TimeDistributed``, ``Dropout``, ``BatchNormalization``,
        ``LayerNormalization`` or a ``Sequential`` of these.

    Returns:
      Params for ``layer_from_keras(keras_layer_or_model)``: the table in this
      module's docstring, each array a jax array of the variable's dtype.

    Raises:
      TypeError: for an unsupported Keras class.
      ValueError: for a Keras object that is not built.

    Example:
      Needs Keras (with ``KERAS_BACKEND=jax`` or any other backend), so it
      is not run as a doctest:

      ```python
      import keras, jax.numpy as jnp
      from jaxrnn.interop import from_keras, layer_from_keras

      keras_model = keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4)])
      params = from_keras(keras_model)  # [{'kernel': (3, 16), ...}]
      x = jnp.ones((2, 5, 3))
      y = layer_from_keras(keras_model)(params, x)  # (2, 4), as keras_model(x)
      ```
    """
    return _read(_tree(keras_layer_or_model, _label(keras_layer_or_model)))


def _label(obj: Any) -> str:
    return getattr(obj, "name", None) or type(obj).__name__


def _where(path: str, key: Any) -> str:
    return f"{path}[{key!r}]"


def _check_keys(
    label: str, params: Any, path: str, expected: list[str], why: str = ""
) -> None:
    if not isinstance(params, Mapping):
        raise TypeError(
            f"{label}: {path} must be a dict with keys "
            f"{sorted(expected)}, got {type(params).__name__}."
        )
    missing = [k for k in expected if k not in params]
    extra = [k for k in params if k not in expected]
    if missing or extra:
        raise ValueError(
            f"{label}: {path} must have keys {sorted(expected)}"
            f"{why}, got {sorted(params, key=str)} (missing "
            f"{missing}, unexpected {extra})."
        )


def _pairs(node: Any, params: Any, path: str) -> list[tuple[Any, np.ndarray]]:
    """Matches params against the Keras tree; returns (variable, value)."""
    if isinstance(node, _Items):
        expected = (
            f"{node.label}: {path} must be a list of {len(node.items)} "
            f"entries (one per {node.what}), got"
        )
        if not isinstance(params, (list, tuple)):
            raise TypeError(f"{expected} {type(params).__name__}.")
        if len(params) != len(node.items):
            raise ValueError(
                f"{expected} {type(params).__name__} of length {len(params)}."
            )
        return [
            pair
            for i, (item, p) in enumerate(zip(node.items, params))
            for pair in _pairs(item, p, f"{path}[{i}]")
        ]
    if isinstance(node, _Directions):
        _check_keys(node.label, params, path, ["forward", "backward"])
        return _pairs(
            node.forward, params["forward"], _where(path, "forward")
        ) + _pairs(node.backward, params["backward"], _where(path, "backward"))
    _check_keys(node.label, params, path, list(node.variables))
    pairs = []
    for name, variable in node.variables.items():
        value = np.asarray(params[name])
        want = tuple(variable.shape)
        if value.shape != want:
            raise ValueError(
                f"{node.label}: {name} must have shape {want}, "
                f"got {value.shape} ({_where(path, name)})."
            )
        if not jnp.issubdtype(value.dtype, jnp.floating):
            raise TypeError(
                f"{node.label}: {name} must have a floating dtype, "
                f"got {value.dtype} ({_where(path, name)})."
            )
        pairs.append((variable, value))
    return pairs


def to_keras(params: Any, keras_layer_or_model: Any) -> None:
    """Assigns params into a built Keras layer's (or Sequential's) variables.

    Everything is checked before anything is assigned, so a mismatch leaves
    the Keras object as it was.

    Args:
      params: params in the layout `from_keras` returns (jax or NumPy
        arrays); values are cast to each variable's dtype.
      keras_layer_or_model: a built Keras object of a type `from_keras`
        supports.

    Raises:
      TypeError: for an unsupported Keras class, or params of the wrong kind
        (a dict where a list belongs, an integer array).
      ValueError: for an unbuilt Keras object, a missing or unexpected array,
        a list of the wrong length, or an array of the wrong shape; the
        message names the Keras layer, the array and where it sits in params,
        e.g. ``lstm_1: recurrent_kernel must have shape (8, 32), got (8, 16)
        (params[1]['recurrent_kernel']).``

    Example:
      Needs Keras, so it is not run as a doctest:

      ```python
      import jax, keras
      from jaxrnn.interop import layer_from_keras, to_keras

      keras_model = keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4)])
      params = layer_from_keras(keras_model).init(jax.random.key(0), (None, None, 3))
      to_keras(params, keras_model)  # keras_model now computes what params do
      keras_model.save_weights("model.weights.h5")
      ```
    """
    tree = _tree(keras_layer_or_model, _label(keras_layer_or_model))
    for variable, value in _pairs(tree, params, "params"):
        variable.assign(value)


# Keras configuration -> jaxrnn layers.
def _activation(owner: Any, name: str, fn: Any) -> str:
    serialized = _keras().activations.serialize(fn)
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
    kind = _kind(cell)
    if kind == "StackedRNNCells":
        return [_cell_from_keras(c) for c in cell.cells]
    if kind not in ("SimpleRNNCell", "LSTMCell", "GRUCell"):
        raise TypeError(
            f"{_label(cell)}: Keras {type(cell).__name__} is not "
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
    kind = _kind(obj)
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
