"""Where each array of a jaxrnn model sits in a Keras 3 weight file.

`model_layout` walks a layer or `Sequential` as Keras' ``saving_lib`` walks
the equivalent Keras model and returns one `Group` per Keras object: its
path, the name Keras gives it, where its params dict sits in the params
and the jaxrnn names of its datasets ``'0'``, ``'1'``, ... in order. The
checks against that layout need no file: `check_structure` (the params'
lists, dicts and dtypes) and `check_shapes` (each array's shape, as
``model.init`` gives it). `jaxrnn.interop.keras_h5` shows the layout.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import core

from jaxrnn.cells.conv_lstm import ConvLSTMCell
from jaxrnn.cells.gru import GRUCell
from jaxrnn.cells.lstm import LSTMCell
from jaxrnn.cells.simple import SimpleRNNCell
from jaxrnn.cells.stacked import StackedCells
from jaxrnn.layers.bidirectional import Bidirectional
from jaxrnn.layers.conv_lstm import ConvLSTMLayer
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
from jaxrnn.layers.rnn import RNN, RecurrentLayer
from jaxrnn.layers.sequential import Sequential, keras_snake_case

# The Keras class each jaxrnn class stands for; its name names the file's
# groups, so a subclass of a jaxrnn class takes its base's name.
KERAS_CLASS: dict[type, str] = {
    cls: cls.__name__
    for cls in (
        SimpleRNNCell,
        LSTMCell,
        GRUCell,
        RNN,
        SimpleRNN,
        LSTM,
        GRU,
        Dense,
        Dropout,
        Embedding,
        TimeDistributed,
        BatchNormalization,
        LayerNormalization,
        Bidirectional,
        Sequential,
        Conv1D,
        Masking,
        GlobalAveragePooling1D,
        GlobalMaxPooling1D,
        MaxPooling1D,
    )
}
KERAS_CLASS[StackedCells] = "StackedRNNCells"


@dataclasses.dataclass(frozen=True)
class Group:
    """One Keras object's ``<path>/vars`` group."""

    path: str
    name: str
    keys: tuple[Any, ...]  # where its params dict sits in the params
    arrays: tuple[str, ...]  # jaxrnn names of its datasets '0', '1', ...
    owner: str


def join_path(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def params_path(keys: Sequence[Any], name: str | None = None) -> str:
    tail = keys if name is None else (*keys, name)
    return "params" + "".join(f"[{k!r}]" for k in tail)


def keras_class_name(obj: Any) -> str:
    for cls in type(obj).__mro__:
        if cls in KERAS_CLASS:
            return KERAS_CLASS[cls]
    return type(obj).__name__


def unique_names(objs: Sequence[Any]) -> list[str]:
    """Keras' names for a list's members: ``lstm``, ``lstm_1``, ``dense``."""
    used: dict[str, int] = {}
    names = []
    for obj in objs:
        stem = keras_snake_case(keras_class_name(obj))
        count = used.get(stem, -1) + 1
        used[stem] = count
        names.append(stem if count == 0 else f"{stem}_{count}")
    return names


def own_arrays(obj: Any) -> tuple[str, ...]:
    """The jaxrnn names of the variables Keras stores for `obj` itself."""
    if isinstance(obj, (SimpleRNNCell, LSTMCell, GRUCell, ConvLSTMCell)):
        return ("kernel", "recurrent_kernel") + (
            ("bias",) if obj.use_bias else ()
        )
    if isinstance(obj, (Dense, Conv1D)):
        return ("kernel",) + (("bias",) if obj.use_bias else ())
    if isinstance(obj, Embedding):
        return ("embeddings",)
    if isinstance(obj, BatchNormalization):
        renorm = ("moving_stddev", "renorm_mean", "renorm_stddev")
        return (
            ("gamma",) * obj.scale
            + ("beta",) * obj.center
            + ("moving_mean", "moving_variance")
            + renorm * bool(getattr(obj, "renorm", False))
        )
    if isinstance(obj, LayerNormalization):
        rms = bool(getattr(obj, "rms_scaling", False))  # gamma only, as Keras
        return ("gamma",) * (obj.scale or rms) + ("beta",) * (
            obj.center and not rms
        )
    if isinstance(
        obj,
        (
            Sequential,
            RecurrentLayer,
            StackedCells,
            Bidirectional,
            TimeDistributed,
            Dropout,
            Masking,
            MaxPooling1D,
            GlobalAveragePooling1D,
            GlobalMaxPooling1D,
        ),
    ):
        return ()
    raise TypeError(
        f"{type(obj).__name__} has no Keras weight-file layout; "
        "expected a jaxrnn SimpleRNN, LSTM, GRU, RNN of built-in "
        "cells, ConvLSTM1D/2D/3D, Bidirectional, Embedding, Dense, TimeDistributed, "
        "Dropout, BatchNormalization, LayerNormalization, "
        "Conv1D, MaxPooling1D, Masking, GlobalAveragePooling1D, "
        "GlobalMaxPooling1D or Sequential."
    )


def _layout(
    obj: Any, path: str, name: str, keys: tuple[Any, ...], groups: list[Group]
) -> Any:
    """Appends `obj`'s groups to `groups`; returns its params skeleton (lists
    and dicts as the params have them, arrays as None)."""
    arrays = own_arrays(obj)
    groups.append(Group(path, name, keys, arrays, type(obj).__name__))
    if isinstance(obj, Sequential):
        return [
            _layout(layer, join_path(path, "layers", n), n, (*keys, i), groups)
            for i, (layer, n) in enumerate(
                zip(obj.layers, unique_names(obj.layers))
            )
        ]
    if isinstance(obj, RecurrentLayer):
        return _layout(
            obj.cell,
            join_path(path, "cell"),
            keras_snake_case(keras_class_name(obj.cell)),
            keys,
            groups,
        )
    if isinstance(obj, StackedCells):
        return [
            _layout(cell, join_path(path, "cells", n), n, (*keys, i), groups)
            for i, (cell, n) in enumerate(
                zip(obj.cells, unique_names(obj.cells))
            )
        ]
    if isinstance(obj, Bidirectional):
        return {
            direction: _layout(
                layer,
                join_path(path, f"{direction}_layer"),
                f"{direction}_{keras_snake_case(keras_class_name(layer))}",
                (*keys, direction),
                groups,
            )
            for direction, layer in (
                ("forward", obj.forward_layer),
                ("backward", obj.backward_layer),
            )
        }
    if isinstance(obj, TimeDistributed):
        return _layout(
            obj.layer,
            join_path(path, "layer"),
            keras_snake_case(keras_class_name(obj.layer)),
            keys,
            groups,
        )
    return dict.fromkeys(arrays)


def model_layout(
    model: Any, single_layer_root: bool
) -> tuple[Any, list[Group]]:
    """The groups for `model`: a `Sequential` at the file's root; any other
    layer at the root (a file of that layer alone) or as the only layer of a
    model (``layers/<name>``)."""
    groups: list[Group] = []
    if isinstance(model, Sequential):
        return _layout(model, "", model.name, (), groups), groups
    name = keras_snake_case(keras_class_name(model))
    if single_layer_root:
        return _layout(model, "", name, (), groups), groups
    groups.append(Group("", "sequential", (), (), "Sequential"))
    return _layout(model, join_path("layers", name), name, (), groups), groups


def subtree(tree: Any, keys: Sequence[Any]) -> Any:
    for key in keys:
        tree = tree[key]
    return tree


_WEIGHT_DTYPES = tuple(
    np.dtype(t) for t in (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64)
)


def check_structure(skeleton: Any, params: Any, keys: tuple[Any, ...]) -> None:
    """Raises unless `params` has the skeleton's lists, dict keys and arrays."""
    where = params_path(keys)
    if isinstance(skeleton, list):
        if not isinstance(params, (list, tuple)) or len(params) != len(
            skeleton
        ):
            size = (
                f" of length {len(params)}"
                if isinstance(params, (list, tuple))
                else ""
            )
            raise ValueError(
                f"{where} must be a list of {len(skeleton)} "
                f"entries, got {type(params).__name__}{size}."
            )
        for i, (s, p) in enumerate(zip(skeleton, params)):
            check_structure(s, p, (*keys, i))
    elif isinstance(skeleton, dict):
        if not isinstance(params, dict) or set(params) != set(skeleton):
            got = (
                sorted(params, key=str)
                if isinstance(params, dict)
                else type(params).__name__
            )
            raise ValueError(
                f"{where} must be a dict with keys "
                f"{sorted(skeleton)}, got {got}."
            )
        for k in skeleton:
            check_structure(skeleton[k], params[k], (*keys, k))
    elif not hasattr(params, "shape"):
        raise TypeError(
            f"{where} must be an array, got {type(params).__name__}."
        )
    elif isinstance(params, core.Tracer):
        raise TypeError(
            f"{where} is traced (save_keras_weights was called "
            "inside jax.jit or another transformation); call it "
            "outside, with concrete arrays."
        )
    elif np.dtype(params.dtype) not in _WEIGHT_DTYPES:
        raise TypeError(
            f"{where} must have a floating dtype Keras files "
            f"hold (float16, bfloat16, float32 or float64), got "
            f"{params.dtype}."
        )


def _dim0(array: Any) -> int:
    return int(np.shape(array)[0]) if np.ndim(array) else 1


def implied_input_shape(layer: Any, params: Any) -> tuple[Any, ...] | None:
    """An input shape that fits the first arrays of `params`, or None when
    they do not tell (a layer without params)."""
    if isinstance(layer, Sequential):
        for inner, p in zip(layer.layers, params):
            shape = implied_input_shape(inner, p)
            if shape is not None:
                return shape
        return None
    if isinstance(layer, Embedding):
        return (None, None)
    if isinstance(layer, ConvLSTMLayer):
        # Frames of any spatial size: only their channel count is pinned.
        spatial = (None,) * layer.cell.rank
        channels = (int(np.shape(params["kernel"])[-2]),)
        frame = (
            spatial + channels
            if layer.cell.data_format == "channels_last"
            else channels + spatial
        )
        return (None, None, *frame)
    if isinstance(layer, RecurrentLayer):
        first = params[0] if isinstance(layer.cell, StackedCells) else params
        return (None, None, _dim0(first["kernel"]))
    if isinstance(layer, Bidirectional):
        return implied_input_shape(layer.forward_layer, params["forward"])
    if isinstance(layer, TimeDistributed):
        inner = implied_input_shape(layer.layer, params)
        return None if inner is None else (inner[0], None, *inner[1:])
    if isinstance(layer, Dense):
        return (None, None, _dim0(params["kernel"]))
    if isinstance(layer, Conv1D):  # kernel (k, C / groups, filters)
        channels = int(np.shape(params["kernel"])[-2]) * layer.groups
        return (
            (None, None, channels)
            if layer.data_format == "channels_last"
            else (None, channels, None)
        )
    for array in params.values():  # normalisation: every array is (D,)
        return (None, None, _dim0(array))
    return None


def check_shapes(
    model: Any,
    params: Any,
    groups: list[Group],
    input_shape: Any,
    refuse_with: Any = ValueError,
) -> None:
    """Raises ``refuse_with(message)`` unless every array of `params` (arrays
    or anything with a ``shape``) has the shape `model.init` gives it."""
    if input_shape is None:
        input_shape = implied_input_shape(model, params) or (None, None, 1)
    try:
        template = jax.eval_shape(
            lambda: model.init(jax.random.key(0), tuple(input_shape))
        )
    except (TypeError, ValueError) as error:
        raise refuse_with(
            f"the arrays imply the input shape {input_shape}, "
            f"which the {type(model).__name__} refuses: "
            f"{error}"
        ) from error
    for group in groups:
        for i, name in enumerate(group.arrays):
            want = tuple(subtree(template, group.keys)[name].shape)
            got = tuple(np.shape(subtree(params, group.keys)[name]))
            if got != want:
                raise refuse_with(
                    f"{join_path(group.path, 'vars', str(i))} "
                    f"({params_path(group.keys, name)}, the {group.owner}'s "
                    f"{name}) must have shape {want}, got {got}."
                )
