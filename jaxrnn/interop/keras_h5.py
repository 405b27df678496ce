"""Keras 3 weight files <-> jaxrnn params, without Keras (h5py only).

`load_keras_weights` reads what Keras' ``model.save_weights(path)`` writes
(a ``.weights.h5`` file) or the ``model.weights.h5`` inside a ``.keras``
archive; `save_keras_weights` writes a ``.weights.h5`` file that Keras'
``model.load_weights(path)`` accepts. The jaxrnn layer or `Sequential` you
pass says what the file must hold.

How Keras 3 lays these files out (``keras/src/saving/saving_lib.py``): every
Keras object with a name owns a group ``<path>/vars`` whose ``name``
attribute is the object's name and whose datasets ``'0'``, ``'1'``, ... are
its own variables in creation order (trainable first). Children sit under
the attribute that holds them, and members of a list under a snake_case form
of their class name, numbered from the second on within that list. User
names play no part, so a model's file reads the same whatever its layers are
called. For example:

```text
vars                              Sequential (no own variables)
layers/embedding/vars/0           embeddings (V, E)
layers/lstm/vars                  LSTM (no own variables)
layers/lstm/cell/vars/{0,1,2}     kernel, recurrent_kernel, bias
layers/lstm_1/cell/vars/...       the second LSTM of the model
layers/bidirectional/forward_layer/cell/vars/...   and backward_layer
layers/rnn/cell/cells/lstm_cell_1/vars/...         RNN([cell, cell])
layers/time_distributed/layer/vars/{0,1}           kernel, bias
layers/batch_normalization/vars/{0..3}   gamma, beta, moving_mean,
                                         moving_variance (as present), then
                                         moving_stddev, renorm_mean,
                                         renorm_stddev with renorm=True
optimizer/vars/...                saved too when the model was compiled;
                                  ignored here
```

A file written from a Functional model also holds ``layers/input_layer``
(empty); bfloat16 arrays are stored as opaque 2-byte values with a
``dtype='bfloat16'`` attribute.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from jaxrnn.interop._atomic import atomic_path
from jaxrnn.interop._keras_h5_io import (
    check_max_bytes,
    load_params,
    write_params,
)
from jaxrnn.interop._keras_h5_layout import (
    check_shapes,
    check_structure,
    model_layout,
)
from jaxrnn.interop._untrusted_h5 import h5py_module, open_weights
from jaxrnn.layers.sequential import Sequential

# The name Keras derives from a class name, as it was importable here.
from jaxrnn.layers.sequential import keras_snake_case as keras_snake_case


def load_keras_weights(
    path: str | os.PathLike,
    model: Any,
    input_shape: Sequence[Any] | None = None,
    *,
    max_bytes: int = 4 << 30,
) -> Any:
    """Reads a Keras 3 weight file into params for a matching jaxrnn model.

    Args:
      path: a ``.weights.h5`` file from Keras' ``model.save_weights`` (or
        `save_keras_weights`), or a ``.keras`` archive from ``model.save``.
      model: the jaxrnn layer or `Sequential` equivalent to the Keras model
        (`jaxrnn.interop.layer_from_keras` builds one). A single layer reads
        the file of a Keras model holding just that layer.
      input_shape: the model's input shape, e.g. (None, None, D), to check
        the first layer's input size as well; when None it is taken from
        the file and every other shape is checked against it.
      max_bytes: the largest ``model.weights.h5`` a ``.keras`` archive may
        declare; it is streamed to a temporary file, never held in memory.

    The file is untrusted input (docs/weight-files.md): links out of the
    file, external storage and virtual datasets are refused before
    anything is read, and every array's shape and dtype are checked from
    its metadata before its data is read.

    Returns:
      Params in `model`'s layout (as `model.init` returns), jax arrays of
      the stored dtypes.

    Raises:
      ValueError: the message starts with the file's name: the file is
        damaged, truncated or not a weights file, reaches outside itself,
        lacks a group the model needs, a group holds another number of
        arrays, an array is not floating or has the wrong shape (naming the
        h5 path and the params entry), or the file holds arrays the model
        has no place for.
      FileNotFoundError: there is no file at `path`.
      TypeError: `model` contains a layer with no Keras counterpart.
      ImportError: h5py is not installed.

    Example:
      >>> import os, tempfile, jax
      >>> from jaxrnn.layers import Dense, Embedding, LSTM, Sequential
      >>> model = Sequential([Embedding(50, 8, mask_zero=True), LSTM(16), Dense(2)])
      >>> params = model.init(jax.random.key(0), (None, None))
      >>> path = os.path.join(tempfile.mkdtemp(), "model.weights.h5")
      >>> save_keras_weights(params, model, path)
      >>> loaded = load_keras_weights(path, model)
      >>> loaded[1]["recurrent_kernel"].shape
      (16, 64)
    """
    check_max_bytes(max_bytes)
    nested, nested_groups = model_layout(model, single_layer_root=False)
    bare, bare_groups = model_layout(model, single_layer_root=True)
    with open_weights(path, max_bytes) as (f, name):
        at_root = not isinstance(model, Sequential) and "layers" not in f
        return load_params(
            f,
            name,
            model,
            input_shape,
            *((bare, bare_groups) if at_root else (nested, nested_groups)),
        )


def save_keras_weights(
    params: Any, model: Any, path: str | os.PathLike
) -> None:
    """Writes params as a Keras 3 ``.weights.h5`` file.

    Keras' ``keras_model.load_weights(path)`` accepts the file when
    ``keras_model`` is the Keras equivalent of `model` (a single jaxrnn layer
    stands for a Keras model holding just that layer). Arrays keep their
    dtype; Keras casts them to its variables' dtypes when loading. The file
    is written beside `path` and renamed over it when complete, so an
    exception or a crash midway leaves any previous file as it was.

    Args:
      params: `model`'s params, as `model.init` returns them.
      model: a jaxrnn layer or `Sequential` of layers with a Keras
        counterpart.
      path: where to write; must end in ``.weights.h5``.

    Raises:
      ValueError: a wrong path suffix, params of the wrong structure or
        shape (the message names the params entry and its h5 path).
      TypeError: `model` contains a layer with no Keras counterpart, or a
        params leaf is not an array of a floating dtype.
      ImportError: h5py is not installed.

    Example:
      >>> import os, tempfile, jax
      >>> from jaxrnn.layers import Bidirectional, GRU
      >>> layer = Bidirectional(GRU(4))
      >>> params = layer.init(jax.random.key(0), (None, 10, 3))
      >>> save_keras_weights(params, layer,
      ...                    os.path.join(tempfile.mkdtemp(), "bi.weights.h5"))
    """
    name = os.fsdecode(path)
    if not name.endswith(".weights.h5"):
        raise ValueError(
            "`path` must end in '.weights.h5' (Keras' suffix for "
            f"weight files), got {name!r}."
        )
    skeleton, groups = model_layout(model, single_layer_root=False)
    check_structure(skeleton, params, ())
    check_shapes(model, params, groups, None)
    h5py = h5py_module()
    # A crash or an exception midway leaves the previous file as it was.
    try:
        with atomic_path(name) as tmp, h5py.File(tmp, "w") as f:
            write_params(f, params, groups)
    except (OSError, RuntimeError) as error:  # h5py's, e.g. a full disk.
        raise OSError(
            f"{name}: writing the weights failed ({error}); any "
            "previous file there is unchanged."
        ) from error
