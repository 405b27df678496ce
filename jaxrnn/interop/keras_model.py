"""Whole Keras 3 model files (``.keras``) <-> jaxrnn models, without Keras.

`save_keras_model` writes a ``.keras`` archive that Keras'
``keras.saving.load_model(path)`` opens as the equivalent Keras
``Sequential``; `load_keras_model` rebuilds a jaxrnn `Sequential` and its
params from an archive Keras' ``model.save(path)`` wrote.

A ``.keras`` archive is a zip file of three members:

```text
metadata.json      {"keras_version": "3.x", "date_saved": "..."}
config.json        the model: {"module": "keras", "class_name":
                   "Sequential", "config": {"name", "layers": [...]}}, each
                   layer {"module": "keras.layers", "class_name": "LSTM",
                   "config": {its constructor arguments}, "registered_name":
                   null, "build_config": {"input_shape": [...]}}
model.weights.h5   the weights, laid out as in jaxrnn.interop.keras_h5
```

The loader treats the archive as untrusted input and never runs code from
it: the configuration is plain JSON, read within a size bound, and each
layer is matched against an allowlist of Keras classes jaxrnn implements.
``Lambda`` layers (which carry Python bytecode), custom or registered
classes, functional and subclassed models, custom activations and
initializers are refused with a `FileRefused` (a ``ValueError``) naming the
layer, as are configuration keys jaxrnn does not know: an argument that
could change the outputs is never dropped silently. The weights go through
the checks of `load_keras_weights` (docs/weight-files.md).
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import zipfile
from collections.abc import Sequence
from typing import Any

from jaxrnn.interop._atomic import atomic_path
from jaxrnn.interop._keras_config import CONFIG, sequential_from_config
from jaxrnn.interop._keras_config_writer import (
    layer_config,
    sequential_config,
)
from jaxrnn.interop._keras_h5_io import (
    check_max_bytes,
    load_params,
    write_params,
)
from jaxrnn.interop._keras_h5_layout import (
    check_shapes,
    check_structure,
    implied_input_shape,
    model_layout,
    unique_names,
)
from jaxrnn.interop._untrusted_h5 import (
    ARCHIVE_WEIGHTS,
    FileRefused,
    h5py_module,
    open_weights,
    read_archive_member,
    refuse,
)
from jaxrnn.layers.conv_lstm import ConvLSTMLayer
from jaxrnn.layers.sequential import Sequential

METADATA = "metadata.json"
# Keras' configurations are a few KB per layer; 16 MiB is thousands of layers.
_MAX_CONFIG_BYTES = 16 << 20
_KERAS_VERSION = "3.15.1"  # The Keras the written files were tested with.
# This module's own name for the writer, so that a test can make it fail
# midway (tests/interop/test_keras_model.py).
_write = write_params


# Reading a .keras archive.
def load_keras_model(
    path: str | os.PathLike, *, max_bytes: int = 4 << 30
) -> tuple[Sequential, list[Any]]:
    """Rebuilds a Keras 3 ``Sequential`` saved with ``model.save(path)``.

    Args:
      path: a ``.keras`` archive.
      max_bytes: the largest ``model.weights.h5`` the archive may declare
        (streamed to a temporary file, never held in memory).

    Returns:
      ``(model, params)``: the jaxrnn `Sequential` built from the archive's
      configuration (layer arguments as Keras saved them) and its params,
      read from the archive's weights, such that ``model(params, x)``
      equals the Keras model's output on ``x``.

    Raises:
      ValueError: (a `FileRefused`) the archive is damaged, not a ``.keras``
        archive, holds a model that is not a ``Sequential``, a layer jaxrnn
        does not implement, code (``Lambda``, custom objects, custom
        activations), an argument jaxrnn has no counterpart for, or weights
        that do not fit the model (see `load_keras_weights`). The message
        starts with the file's name.
      FileNotFoundError: there is no file at `path`.
      ImportError: h5py is not installed.

    Example:
      >>> import os, tempfile, jax
      >>> from jaxrnn.layers import Dense, Embedding, LSTM, Sequential
      >>> model = Sequential([Embedding(50, 8, mask_zero=True), LSTM(16), Dense(2)])
      >>> params = model.init(jax.random.key(0), (None, None))
      >>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
      >>> save_keras_model(params, model, path)
      >>> loaded, loaded_params = load_keras_model(path)
      >>> [type(layer).__name__ for layer in loaded.layers]
      ['Embedding', 'LSTM', 'Dense']
    """
    check_max_bytes(max_bytes)
    name = os.fsdecode(path)
    if not name.endswith(".keras"):
        raise ValueError(
            "`path` must name a Keras 3 .keras archive, got "
            f"{name!r} (for a .weights.h5 file, build the model "
            "and use load_keras_weights)."
        )
    h5py_module()  # Say first that h5py is missing.
    config = _parse_json(
        name, read_archive_member(name, CONFIG, _MAX_CONFIG_BYTES)
    )
    model, input_shape = sequential_from_config(name, config)
    skeleton, groups = model_layout(model, single_layer_root=False)
    with open_weights(name, max_bytes) as (f, display):
        params = load_params(f, display, model, input_shape, skeleton, groups)
    return model, params


def _parse_json(name: str, data: bytes) -> Any:
    if len(data) > _MAX_CONFIG_BYTES:
        raise refuse(
            name, f"its {CONFIG} is longer than {_MAX_CONFIG_BYTES} bytes."
        )

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:  # json keeps the last silently; which is meant?
            raise refuse(
                name,
                f"its {CONFIG} repeats the keys {repeated} in one object.",
            )
        return dict(pairs)

    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=unique_keys)
    except (UnicodeDecodeError, ValueError) as error:
        if isinstance(error, FileRefused):
            raise
        raise refuse(
            name, f"its {CONFIG} is not valid JSON ({error})."
        ) from error
    except RecursionError as error:
        raise refuse(name, f"its {CONFIG} is nested too deeply.") from error


# Writing a .keras archive.
def save_keras_model(
    params: Any,
    model: Any,
    path: str | os.PathLike,
    *,
    input_shape: Sequence[Any] | None = None,
) -> None:
    """Writes a jaxrnn model and its params as a Keras 3 ``.keras`` archive.

    ``keras.saving.load_model(path)`` opens it as the Keras ``Sequential``
    that computes what ``model(params, x)`` does. The archive is written
    beside `path` and renamed over it when complete, so a failure midway
    leaves any previous file as it was.

    Args:
      params: `model`'s params, as `model.init` returns them.
      model: a jaxrnn `Sequential` of layers with Keras counterparts
        (`load_keras_model` lists them), or one such layer, saved as a
        ``Sequential`` holding it (then `params` are the layer's own).
      path: where to write; must end in ``.keras``.
      input_shape: the model's input shape with the batch axis, e.g.
        ``(None, None, 8)``, for the Keras ``Input``; by default taken from
        `params` (every size unknown but the features). Stateful layers need
        the batch size here, as in Keras.

    Raises:
      ValueError: a wrong suffix, params of the wrong structure or shape, or
        a jaxrnn setting Keras lacks (``time_major=True``).
      TypeError: a layer has no Keras counterpart.
      ImportError: h5py is not installed.

    Example:
      >>> import os, tempfile, jax
      >>> from jaxrnn.layers import Bidirectional, Dense, LSTM, Sequential
      >>> model = Sequential([Bidirectional(LSTM(8)),
      ...                     Dense(3, activation="softmax")])
      >>> params = model.init(jax.random.key(0), (None, None, 5))
      >>> save_keras_model(params, model,
      ...                  os.path.join(tempfile.mkdtemp(), "bi.keras"))
    """
    name = os.fsdecode(path)
    if not name.endswith(".keras"):
        raise ValueError(
            "`path` must end in '.keras' (Keras' suffix for "
            f"model archives), got {name!r}."
        )
    if not isinstance(model, Sequential):
        model, params = Sequential([model]), [params]
    for i, (layer, layer_name) in enumerate(
        zip(model.layers, unique_names(model.layers))
    ):
        layer_config(layer, layer_name, f"layers[{i}]")  # refuses, by index,
        # a layer Keras has no counterpart for, before anything is written
    skeleton, groups = model_layout(model, single_layer_root=False)
    check_structure(skeleton, params, ())
    if input_shape is None:
        convolutional = [
            type(layer).__name__
            for layer in model.layers
            if isinstance(
                getattr(layer, "forward_layer", layer), ConvLSTMLayer
            )
        ]
        if convolutional:
            raise ValueError(
                f"`input_shape` is needed: Keras' "
                f"{convolutional[0]} builds only for frames of a "
                "fixed size, e.g. input_shape=(None, None, 64, "
                "64, 1) for (B, T, H, W, C)."
            )
        input_shape = implied_input_shape(model, params)
        if input_shape is None:
            raise ValueError(
                "`input_shape` is needed: the model's params do "
                "not tell its input's feature size."
            )
    input_shape = tuple(None if d is None else int(d) for d in input_shape)
    if model.stateful and (not input_shape or input_shape[0] is None):
        raise ValueError(
            f"`input_shape` needs the batch size for a model "
            f"with stateful layers, as Keras' batch_shape does, "
            f"e.g. {(32, *input_shape[1:])}; got {input_shape}."
        )
    check_shapes(model, params, groups, input_shape)
    config = sequential_config(model, input_shape)
    metadata = {
        "keras_version": _KERAS_VERSION,
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
    }
    h5py = h5py_module()
    try:
        with tempfile.TemporaryDirectory(prefix="jaxrnn-keras-") as directory:
            weights = os.path.join(directory, ARCHIVE_WEIGHTS)
            with h5py.File(weights, "w") as f:
                _write(f, params, groups)
            with (
                atomic_path(name) as tmp,
                zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive,
            ):
                archive.writestr(METADATA, json.dumps(metadata))
                archive.writestr(CONFIG, json.dumps(config))
                # Keras stores its weights uncompressed (read in place).
                archive.write(weights, ARCHIVE_WEIGHTS, zipfile.ZIP_STORED)
    except (OSError, RuntimeError) as error:  # h5py's, e.g. a full disk.
        raise OSError(
            f"{name}: writing the model failed ({error}); any "
            "previous file there is unchanged."
        ) from error
