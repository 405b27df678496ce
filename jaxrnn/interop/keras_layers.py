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

from jaxrnn.interop._keras_layer_config import layer_from_keras
from jaxrnn.interop._keras_objects import (
    ARRAYS,
    keras_kind,
    keras_module,
    object_label,
)

__all__ = ["from_keras", "layer_from_keras", "to_keras"]


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
    kind = keras_kind(obj)
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
            for name in ARRAYS[kind]
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
        name: jnp.asarray(keras_module().ops.convert_to_numpy(v))
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
    return _read(
        _tree(keras_layer_or_model, object_label(keras_layer_or_model))
    )


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
    tree = _tree(keras_layer_or_model, object_label(keras_layer_or_model))
    for variable, value in _pairs(tree, params, "params"):
        variable.assign(value)
