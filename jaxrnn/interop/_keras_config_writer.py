"""jaxrnn layers -> Keras 3 model configurations (``config.json``).

`sequential_config` writes what Keras' own ``get_config`` would for the
equivalent Keras ``Sequential``, each layer through `layer_config`, so that
``keras.saving.load_model`` rebuilds the same model: Keras' class names
and argument names, its dtype policies, and the names Keras would give the
layers. A layer without a Keras counterpart, or a setting Keras lacks
(``time_major``), is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxrnn.cells.stacked import StackedCells
from jaxrnn.interop._keras_config import (
    CELL_CLASSES,
    DTYPE_POLICIES,
    JAXRNN_ONLY,
    LAYER_CLASSES,
    jaxrnn_class,
    supported,
)
from jaxrnn.interop._keras_h5_layout import keras_class_name, unique_names
from jaxrnn.layers.bidirectional import Bidirectional
from jaxrnn.layers.rnn import RNN
from jaxrnn.layers.sequential import Sequential, keras_snake_case


def _policy(layer: Any) -> dict[str, Any]:
    compute = getattr(layer, "dtype", None)
    variable = getattr(layer, "param_dtype", None) or "float32"
    compute, variable = (
        None if compute is None else np.dtype(compute).name,
        np.dtype(variable).name,
    )
    for policy, dtypes in DTYPE_POLICIES.items():
        if dtypes == (compute, variable) or (
            dtypes == (None, variable) and compute == variable
        ):
            return {
                "module": "keras",
                "class_name": "DTypePolicy",
                "config": {"name": policy},
                "registered_name": None,
            }
    raise ValueError(
        f"{type(layer).__name__}: compute dtype {compute} with "
        f"parameters in {variable} has no Keras dtype policy."
    )


def sequential_config(model: Sequential, input_shape: tuple) -> dict:
    """The ``config.json`` Keras writes for the equivalent ``Sequential``
    built for `input_shape`."""
    shapes = [input_shape, *model.output_shapes(input_shape)]
    names = unique_names(model.layers)
    first = model.layers[0]
    entries = [
        {
            "module": "keras.layers",
            "class_name": "InputLayer",
            "config": {
                "batch_shape": list(input_shape),
                "dtype": (
                    "int32"
                    if keras_class_name(first) == "Embedding"
                    else "float32"
                ),
                "sparse": False,
                "ragged": False,
                "name": "input_layer",
            },
            "registered_name": None,
        }
    ]
    for layer, layer_name, shape in zip(model.layers, names, shapes):
        entry = layer_config(layer, layer_name, f"layers[{len(entries) - 1}]")
        entry["build_config"] = {"input_shape": _json_shape(shape)}
        entries.append(entry)
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": model.name,
            "trainable": True,
            "dtype": _policy(first),
            "layers": entries,
        },
        "registered_name": None,
        "build_config": {"input_shape": list(input_shape)},
    }


def _json_shape(shape: Any) -> Any:
    if isinstance(shape, (list, tuple)):
        return [_json_shape(d) for d in shape]
    return None if shape is None else int(shape)


def layer_config(layer: Any, layer_name: str, where: str) -> dict[str, Any]:
    """One layer's (or cell's) serialised Keras object; `where` places it
    in messages."""
    class_name = keras_class_name(layer)
    if isinstance(layer, StackedCells):
        class_name = "StackedRNNCells"
    elif isinstance(layer, RNN) and type(layer).__name__ == "RNN":
        class_name = "RNN"
    if jaxrnn_class(class_name) is None or class_name not in (
        *LAYER_CLASSES,
        *CELL_CLASSES,
        "StackedRNNCells",
    ):
        raise TypeError(
            f"{where}: jaxrnn's {type(layer).__name__} has no "
            f"Keras counterpart; the layers a .keras file can "
            f"hold are {supported()}."
        )
    label = f"{where} ({type(layer).__name__})"
    if getattr(layer, "time_major", False):
        raise ValueError(
            f"{label}: time_major=True has no Keras counterpart "
            "(Keras 3 layers are batch-major); save "
            "dataclasses.replace(layer, time_major=False) and "
            "feed it (B, T, ...) inputs."
        )
    config: dict[str, Any] = {"name": layer_name, "trainable": True}
    if {"dtype", "param_dtype"} & {f.name for f in dataclasses.fields(layer)}:
        config["dtype"] = _policy(layer)
    for field in dataclasses.fields(layer):
        if field.name in JAXRNN_ONLY or not field.init:
            continue
        value = getattr(layer, field.name)
        if field.name == "use_cudnn" and value == "auto":
            continue  # Keras' default, which its own files leave out
        config[field.name] = _config_value(
            layer, field.name, value, layer_name, where
        )
    if isinstance(layer, Bidirectional):
        backward = layer.backward_layer
        config["backward_layer"] = layer_config(
            backward,
            f"backward_{keras_snake_case(keras_class_name(backward))}",
            f"{where}.backward_layer",
        )
    return {
        "module": "keras.layers",
        "class_name": class_name,
        "config": config,
        "registered_name": None,
    }


def _config_value(
    layer: Any, key: str, value: Any, layer_name: str, where: str
) -> Any:
    if key in ("cell", "layer"):
        if key == "layer" and isinstance(layer, Bidirectional):
            value = layer.forward_layer
            inner_name = f"forward_{keras_snake_case(keras_class_name(value))}"
        else:
            if isinstance(value, (list, tuple)):
                value = StackedCells(tuple(value))
            inner_name = keras_snake_case(keras_class_name(value))
            if isinstance(value, StackedCells):
                inner_name = "stacked_rnn_cells"
        return layer_config(value, inner_name, f"{where}.{key}")
    if key == "cells":
        return [
            layer_config(cell, cell_name, f"{where}.cells[{i}]")
            for i, (cell, cell_name) in enumerate(
                zip(value, unique_names(value))
            )
        ]
    if key == "backward_layer":
        return None  # written from the layer's resolved backward_layer
    if key == "activation" and value is None:
        return "linear"
    if isinstance(value, tuple):
        return [_config_value(layer, key, v, layer_name, where) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, Mapping):  # e.g. renorm_clipping
        return {
            str(k): _config_value(layer, key, v, layer_name, where)
            for k, v in value.items()
        }
    return value
