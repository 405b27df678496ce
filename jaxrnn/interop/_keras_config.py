"""Keras 3 model configurations (``config.json``) -> jaxrnn layers.

The configuration is untrusted data: every object must be one of Keras'
built-in layers that jaxrnn implements (`LAYER_CLASSES`, an allowlist,
never an import), and every argument must have a jaxrnn counterpart or be
one that cannot change the outputs (regularizers, constraints, seeds).
`sequential_from_config` rebuilds the `Sequential`; the way back, what
Keras' own ``get_config`` would write, is
`jaxrnn.interop._keras_config_writer`'s.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jaxrnn
from jaxrnn import activations, initializers
from jaxrnn import layers as jaxrnn_layers
from jaxrnn.cells.stacked import StackedCells
from jaxrnn.interop._untrusted_h5 import refuse
from jaxrnn.layers.bidirectional import Bidirectional
from jaxrnn.layers.sequential import Sequential, keras_snake_case

CONFIG = "config.json"
# Keras class name -> the jaxrnn class built from its configuration.
LAYER_CLASSES = (
    "SimpleRNN",
    "LSTM",
    "GRU",
    "RNN",
    "Bidirectional",
    "TimeDistributed",
    "Embedding",
    "Dense",
    "Dropout",
    "BatchNormalization",
    "LayerNormalization",
    "ConvLSTM1D",
    "ConvLSTM2D",
    "ConvLSTM3D",
    "Masking",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "Conv1D",
    "MaxPooling1D",
)
CELL_CLASSES = ("SimpleRNNCell", "LSTMCell", "GRUCell")


def jaxrnn_class(class_name: str) -> Any:
    """The jaxrnn class for a Keras class name; None if jaxrnn lacks it."""
    if class_name in CELL_CLASSES:
        return getattr(jaxrnn, class_name)
    if class_name == "StackedRNNCells":
        return StackedCells
    return getattr(jaxrnn_layers, class_name, None)


def supported() -> list[str]:
    """The Keras class names a ``.keras`` file may hold, for messages."""
    return sorted(
        n
        for n in (*LAYER_CLASSES, *CELL_CLASSES)
        if jaxrnn_class(n) is not None
    ) + ["StackedRNNCells"]


# Keras arguments that cannot change what a loaded model computes: names,
# training-only settings (regularizers, constraints, dropout seeds).
_IGNORED_KEYS = frozenset(
    {"name", "trainable", "dtype", "seed", "activity_regularizer"}
)
_IGNORED_SUFFIXES = ("_regularizer", "_constraint")
# Keras arguments jaxrnn has no counterpart for, accepted at these values.
_ACCEPTED_DEFAULTS = {
    "quantization_config": None,
    "lora_rank": None,
    "lora_alpha": None,
    "synchronized": False,
    "sparse": False,
    "ragged": False,
    "optional": False,
    "renorm": False,
    "renorm_clipping": None,
    "renorm_momentum": 0.99,
    "rms_scaling": False,
}
# jaxrnn fields with no Keras argument: how each is written into a file.
JAXRNN_ONLY = ("time_major", "remat", "precision", "dtype", "param_dtype")
_NESTED = ("cell", "cells", "layer", "backward_layer")
DTYPE_POLICIES = {  # Keras policy name -> (compute dtype, variable dtype).
    "float32": (None, "float32"),
    "float64": (None, "float64"),
    "float16": (None, "float16"),
    "bfloat16": (None, "bfloat16"),
    "mixed_float16": ("float16", "float32"),
    "mixed_bfloat16": ("bfloat16", "float32"),
}


# Reading a configuration.
def _expect_dict(name: str, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise refuse(
            name, f"{where} must be a JSON object, got {type(value).__name__}."
        )
    return value


def _object(name: str, entry: Any, where: str) -> tuple[str, dict[str, Any]]:
    """A serialised Keras object's class name and config, refusing anything
    that would need code from outside Keras' own layers."""
    entry = _expect_dict(name, entry, where)
    class_name = entry.get("class_name")
    if not isinstance(class_name, str):
        raise refuse(
            name, f"{where} has no class_name string: got {class_name!r}."
        )
    label = f"{where} ({class_name})"
    registered = entry.get("registered_name")
    module = entry.get("module")
    if class_name == "Lambda":
        raise refuse(
            name,
            f"{label} is a Lambda layer, whose Python code is "
            "stored in the file: it is never run (Keras' "
            "safe_mode refuses it too); rebuild the model "
            "without it.",
        )
    if registered not in (None, class_name) or not (
        module is None
        or module == "keras"
        or (isinstance(module, str) and module.startswith("keras."))
    ):
        raise refuse(
            name,
            f"{label} is a custom object (module {module!r}, "
            f"registered_name {registered!r}); only Keras' "
            "built-in layers are rebuilt, no code from the "
            "file or elsewhere is imported.",
        )
    config = _expect_dict(name, entry.get("config", {}), f"{label}'s config")
    return class_name, config


def sequential_from_config(
    name: str, config: Any
) -> tuple[Sequential, tuple | None]:
    """The `Sequential` that the archive `name`'s parsed ``config.json``
    describes, and its input shape where the configuration gives one."""
    class_name, body = _object(name, config, CONFIG)
    if class_name != "Sequential":
        raise refuse(
            name,
            f"it holds a Keras {class_name}; only Sequential "
            "models are rebuilt (functional and subclassed "
            "models are code, not configuration).",
        )
    entries = body.get("layers")
    if not isinstance(entries, list):
        raise refuse(
            name,
            f"the Sequential's config has no list of layers: "
            f"got {type(entries).__name__}.",
        )
    input_shape = _shape(
        name,
        _expect_dict(
            name, config.get("build_config") or {}, "build_config"
        ).get("input_shape"),
        "build_config's input_shape",
    )
    layers = []
    for i, entry in enumerate(entries):
        where = f"layers[{i}]"
        class_name, layer_config = _object(name, entry, where)
        if class_name == "InputLayer":
            shape = layer_config.get(
                "batch_shape", layer_config.get("batch_input_shape")
            )
            input_shape = _shape(
                name, shape, f"{where} (InputLayer)'s batch_shape"
            )
            continue
        layers.append(
            _layer_from_config(
                name, class_name, layer_config, f"{where} ({class_name})"
            )
        )
    if not layers:
        raise refuse(name, "the Sequential holds no layers.")
    try:
        model = Sequential(layers, name=str(body.get("name", "sequential")))
        if input_shape is not None:
            model.output_shape(input_shape)  # layers that do not fit refuse
    except (TypeError, ValueError) as error:
        raise refuse(
            name, f"its layers do not make a jaxrnn Sequential: {error}"
        ) from error
    return model, input_shape


def _shape(name: str, shape: Any, where: str) -> tuple | None:
    if shape is None:
        return None
    if not isinstance(shape, list) or not all(
        d is None
        or (isinstance(d, int) and not isinstance(d, bool) and d >= 0)
        for d in shape
    ):
        raise refuse(
            name, f"{where} must be a list of sizes or nulls, got {shape!r}."
        )
    return tuple(shape)


def _layer_from_config(
    name: str, class_name: str, config: dict[str, Any], label: str
) -> Any:
    cls = jaxrnn_class(class_name)
    if (
        class_name not in (*LAYER_CLASSES, *CELL_CLASSES, "StackedRNNCells")
        or cls is None
    ):
        raise refuse(
            name,
            f"{label}: jaxrnn has no Keras {class_name}; "
            f"the layers it rebuilds are {supported()}.",
        )
    if class_name == "BatchNormalization" and not config.get("renorm"):
        # Keras keeps both unused without renorm; jaxrnn refuses them there.
        config = {
            k: v
            for k, v in config.items()
            if k not in ("renorm_clipping", "renorm_momentum")
        }
    fields = {f.name for f in dataclasses.fields(cls)}
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    unknown = []
    for key, value in config.items():
        if key in _NESTED and key in fields:
            kwargs[key] = _nested(name, key, value, label)
        elif key in _IGNORED_KEYS or key.endswith(_IGNORED_SUFFIXES):
            continue
        elif key.endswith("_initializer") and key not in fields:
            _object(name, value, f"{label}: {key}")  # still no custom code
            continue
        elif key in fields and key not in JAXRNN_ONLY:
            kwargs[key] = _value(name, key, value, label)
            if kwargs[key] == "linear" and defaults.get(key, "") is None:
                kwargs[key] = None  # Keras writes Dense's None as 'linear'.
        elif (
            key in _ACCEPTED_DEFAULTS and value == _ACCEPTED_DEFAULTS[key]
        ) or (key == "axis" and value in (-1, [-1])):
            continue
        else:
            unknown.append(f"{key}={value!r}")
    if unknown:
        raise refuse(
            name,
            f"{label}: the arguments {unknown} have no jaxrnn "
            "counterpart; rebuilding without them could change "
            "the outputs.",
        )
    kwargs.update(_dtype_kwargs(name, config.get("dtype"), fields, label))
    kwargs = {k: v for k, v in kwargs.items() if v is not _DEFAULT}
    try:
        layer = cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise refuse(name, f"{label}: {error}") from error
    if isinstance(layer, Bidirectional):
        layer = _normalised_bidirectional(layer)
    return layer


_DEFAULT = (
    object()
)  # An initializer jaxrnn lacks: the field keeps its default.


def _nested(name: str, key: str, value: Any, label: str) -> Any:
    if key == "backward_layer" and value is None:
        return None
    if key == "cells":
        if not isinstance(value, list):
            raise refuse(name, f"{label}: cells must be a list.")
        return [
            _nested(name, "cell", v, f"{label}.cells[{i}]")
            for i, v in enumerate(value)
        ]
    class_name, config = _object(name, value, f"{label}.{key}")
    built = _layer_from_config(
        name, class_name, config, f"{label}.{key} ({class_name})"
    )
    return built.cells if isinstance(built, StackedCells) else built


def _value(name: str, key: str, value: Any, label: str) -> Any:
    if key.endswith("_initializer"):
        return _initializer_name(name, value, f"{label}: {key}")
    if key.endswith("activation"):
        if value is None:
            return "linear"
        if not isinstance(value, str) or value not in activations.names():
            raise refuse(
                name,
                f"{label}: {key} {value!r} is not an "
                "activation jaxrnn knows by name; expected one "
                f"of {activations.names()}.",
            )
        return value
    if key == "axis" and isinstance(value, list) and len(value) == 1:
        return value[0]  # Keras writes LayerNormalization's -1 as [-1].
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):  # e.g. renorm_clipping: plain numbers only.
        if not all(
            isinstance(v, (int, float)) and not isinstance(v, bool)
            for v in value.values()
        ):
            raise refuse(
                name,
                f"{label}: {key} must map names to numbers, got {value!r}.",
            )
        return dict(value)
    return value


def _initializer_name(name: str, value: Any, where: str) -> Any:
    """A jaxrnn initializer name for a serialised Keras initializer; the
    weights come from the file, so one jaxrnn lacks keeps jaxrnn's default."""
    if value is None:
        return _DEFAULT
    if isinstance(value, str):
        snake = keras_snake_case(value) if value[:1].isupper() else value
        return snake if snake in initializers.names() else _DEFAULT
    if isinstance(value, dict) and value.get("class_name") is None:
        return _DEFAULT
    class_name, _ = _object(name, value, where)
    snake = keras_snake_case(class_name)
    return snake if snake in initializers.names() else _DEFAULT


def _dtype_kwargs(
    name: str, policy: Any, fields: set[str], label: str
) -> dict[str, Any]:
    if policy is None or not {"dtype", "param_dtype"} & fields:
        return {}
    if isinstance(policy, dict):
        class_name, config = _object(name, policy, f"{label}'s dtype")
        if class_name != "DTypePolicy":
            raise refuse(
                name,
                f"{label}: the dtype policy {class_name} (e.g. "
                "quantization) has no jaxrnn counterpart.",
            )
        policy = config.get("name")
    if policy not in DTYPE_POLICIES:
        raise refuse(
            name,
            f"{label}: the dtype policy {policy!r} is not one "
            f"of {sorted(DTYPE_POLICIES)}.",
        )
    compute, variable = DTYPE_POLICIES[policy]
    kwargs: dict[str, Any] = {"param_dtype": variable}
    if compute is not None:
        if "dtype" not in fields:
            raise refuse(
                name,
                f"{label}: jaxrnn's {label.split()[-1]} has no "
                f"compute dtype for the policy {policy!r}.",
            )
        kwargs["dtype"] = compute
    return kwargs


def _normalised_bidirectional(layer: Bidirectional) -> Bidirectional:
    # Both directions output zeros at masked steps whatever their flag says
    # (Keras forces it, jaxrnn too), so the flag is normalised away, and a
    # backward layer that mirrors the forward one is left implicit.
    forward = dataclasses.replace(layer.layer, zero_output_for_mask=False)
    backward = layer.backward_layer
    if backward is not None:
        backward = dataclasses.replace(backward, zero_output_for_mask=False)
        if backward == dataclasses.replace(forward, go_backwards=True):
            backward = None
    return Bidirectional(
        forward, merge_mode=layer.merge_mode, backward_layer=backward
    )
