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

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.cells.conv_lstm import ConvLSTMCell
from jaxrnn.cells.gru import GRUCell
from jaxrnn.cells.lstm import LSTMCell
from jaxrnn.cells.simple import SimpleRNNCell
from jaxrnn.cells.stacked import StackedCells
from jaxrnn.interop._atomic import atomic_path
from jaxrnn.interop._untrusted_h5 import (
    dataset,
    h5py_module,
    open_weights,
    read_array,
    refuse,
    stored_dtype,
)
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
from jaxrnn.layers.recurrent import GRU, LSTM, RNN, RecurrentLayer, SimpleRNN
from jaxrnn.layers.sequential import Sequential, keras_snake_case

# The Keras class each jaxrnn class stands for; its name names the file's
# groups, so a subclass of a jaxrnn class takes its base's name.
_KERAS_CLASS = {
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
_KERAS_CLASS[StackedCells] = "StackedRNNCells"


_h5py = h5py_module


@dataclasses.dataclass(frozen=True)
class _Group:
    """One Keras object's ``<path>/vars`` group."""

    path: str
    name: str
    keys: tuple[Any, ...]  # where its params dict sits in the params
    arrays: tuple[str, ...]  # jaxrnn names of its datasets '0', '1', ...
    owner: str


_WEIGHT_DTYPES = tuple(
    np.dtype(t) for t in (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64)
)


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def _where(keys: Sequence[Any], name: str | None = None) -> str:
    tail = keys if name is None else (*keys, name)
    return "params" + "".join(f"[{k!r}]" for k in tail)


def _class_name(obj: Any) -> str:
    for cls in type(obj).__mro__:
        if cls in _KERAS_CLASS:
            return _KERAS_CLASS[cls]
    return type(obj).__name__


def _unique_names(objs: Sequence[Any]) -> list[str]:
    """Keras' names for a list's members: ``lstm``, ``lstm_1``, ``dense``."""
    used: dict[str, int] = {}
    names = []
    for obj in objs:
        stem = keras_snake_case(_class_name(obj))
        count = used.get(stem, -1) + 1
        used[stem] = count
        names.append(stem if count == 0 else f"{stem}_{count}")
    return names


def _own_arrays(obj: Any) -> tuple[str, ...]:
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
    obj: Any, path: str, name: str, keys: tuple[Any, ...], groups: list[_Group]
) -> Any:
    """Appends `obj`'s groups to `groups`; returns its params skeleton (lists
    and dicts as the params have them, arrays as None)."""
    arrays = _own_arrays(obj)
    groups.append(_Group(path, name, keys, arrays, type(obj).__name__))
    if isinstance(obj, Sequential):
        return [
            _layout(layer, _join(path, "layers", n), n, (*keys, i), groups)
            for i, (layer, n) in enumerate(
                zip(obj.layers, _unique_names(obj.layers))
            )
        ]
    if isinstance(obj, RecurrentLayer):
        return _layout(
            obj.cell,
            _join(path, "cell"),
            keras_snake_case(_class_name(obj.cell)),
            keys,
            groups,
        )
    if isinstance(obj, StackedCells):
        return [
            _layout(cell, _join(path, "cells", n), n, (*keys, i), groups)
            for i, (cell, n) in enumerate(
                zip(obj.cells, _unique_names(obj.cells))
            )
        ]
    if isinstance(obj, Bidirectional):
        return {
            direction: _layout(
                layer,
                _join(path, f"{direction}_layer"),
                f"{direction}_{keras_snake_case(_class_name(layer))}",
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
            _join(path, "layer"),
            keras_snake_case(_class_name(obj.layer)),
            keys,
            groups,
        )
    return dict.fromkeys(arrays)


def _model_layout(
    model: Any, single_layer_root: bool
) -> tuple[Any, list[_Group]]:
    """The groups for `model`: a `Sequential` at the file's root; any other
    layer at the root (a file of that layer alone) or as the only layer of a
    model (``layers/<name>``)."""
    groups: list[_Group] = []
    if isinstance(model, Sequential):
        return _layout(model, "", model.name, (), groups), groups
    name = keras_snake_case(_class_name(model))
    if single_layer_root:
        return _layout(model, "", name, (), groups), groups
    groups.append(_Group("", "sequential", (), (), "Sequential"))
    return _layout(model, _join("layers", name), name, (), groups), groups


def _at(tree: Any, keys: Sequence[Any]) -> Any:
    for key in keys:
        tree = tree[key]
    return tree


def _check_structure(
    skeleton: Any, params: Any, keys: tuple[Any, ...]
) -> None:
    """Raises unless `params` has the skeleton's lists, dict keys and arrays."""
    where = _where(keys)
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
            _check_structure(s, p, (*keys, i))
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
            _check_structure(skeleton[k], params[k], (*keys, k))
    elif not hasattr(params, "shape"):
        raise TypeError(
            f"{where} must be an array, got {type(params).__name__}."
        )
    elif isinstance(params, jax.core.Tracer):
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


def _input_shape(layer: Any, params: Any) -> tuple[Any, ...] | None:
    """An input shape that fits the first arrays of `params`, or None when
    they do not tell (a layer without params)."""
    if isinstance(layer, Sequential):
        for inner, p in zip(layer.layers, params):
            shape = _input_shape(inner, p)
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
        return _input_shape(layer.forward_layer, params["forward"])
    if isinstance(layer, TimeDistributed):
        inner = _input_shape(layer.layer, params)
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


def _check_shapes(
    model: Any,
    params: Any,
    groups: list[_Group],
    input_shape: Any,
    refuse_with: Any = ValueError,
) -> None:
    """Raises ``refuse_with(message)`` unless every array of `params` (arrays
    or anything with a ``shape``) has the shape `model.init` gives it."""
    if input_shape is None:
        input_shape = _input_shape(model, params) or (None, None, 1)
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
            want = tuple(_at(template, group.keys)[name].shape)
            got = tuple(np.shape(_at(params, group.keys)[name]))
            if got != want:
                raise refuse_with(
                    f"{_join(group.path, 'vars', str(i))} "
                    f"({_where(group.keys, name)}, the {group.owner}'s "
                    f"{name}) must have shape {want}, got {got}."
                )


def _is_group(f: Any, path: str) -> bool:
    return isinstance(f.get(path), _h5py().Group)


def _missing_group(f: Any, path: str) -> str:
    """Says what the file has where `path` was expected."""
    if path in f:
        return f"a dataset where the group {path!r} should be"
    parent = path
    while parent and not _is_group(f, parent):
        parent = parent.rpartition("/")[0]
    node = f[parent] if parent else f
    return (
        f"no group {path!r}; under {parent or '/'!r} the file has "
        f"{sorted(node.keys())}"
    )


def _datasets(f: Any) -> set[str]:
    h5py = _h5py()
    found: set[str] = set()
    f.visititems(
        lambda name, obj: (
            found.add(name) if isinstance(obj, h5py.Dataset) else None
        )
    )
    # A compiled model's file also holds its optimizer's state.
    return {name for name in found if not name.startswith("optimizer/")}


def _stored_group(f: Any, group: _Group, name: str) -> list[tuple[str, Any]]:
    """The group's datasets, in order, with their load dtypes (from the
    metadata alone)."""
    vars_path = _join(group.path, "vars")
    if not _is_group(f, vars_path):
        raise refuse(
            name,
            f"the {group.owner} at {_where(group.keys)} needs "
            f"{group.arrays}, but there is "
            f"{_missing_group(f, vars_path)}.",
        )
    stored = sorted(f[vars_path].keys(), key=lambda k: (len(k), k))
    expected = [str(i) for i in range(len(group.arrays))]
    if stored != expected:
        raise refuse(
            name,
            f"{vars_path} holds {len(stored)} arrays {stored}, "
            f"but the {group.owner} at {_where(group.keys)} "
            f"expects {len(expected)}: "
            f"{', '.join(group.arrays)}.",
        )
    found = []
    for key in expected:
        ds = dataset(f, name, _join(vars_path, key))
        found.append((_join(vars_path, key), ds, stored_dtype(ds, name)))
    return found


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
    _check_max_bytes(max_bytes)
    nested, nested_groups = _model_layout(model, single_layer_root=False)
    bare, bare_groups = _model_layout(model, single_layer_root=True)
    with open_weights(path, max_bytes) as (f, name):
        at_root = not isinstance(model, Sequential) and "layers" not in f
        return _load(
            f,
            name,
            model,
            input_shape,
            *((bare, bare_groups) if at_root else (nested, nested_groups)),
        )


def _check_max_bytes(max_bytes: Any) -> None:
    if (
        isinstance(max_bytes, bool)
        or not isinstance(max_bytes, int)
        or max_bytes <= 0
    ):
        raise TypeError(
            f"`max_bytes` must be a positive int, got {max_bytes!r}."
        )


def _load(
    f: Any,
    name: str,
    model: Any,
    input_shape: Any,
    params: Any,
    groups: list[_Group],
) -> Any:
    """Checks every array from the file's metadata, then reads them."""
    if "model_weights" in f or "layer_names" in f.attrs:
        raise refuse(
            name,
            "a legacy Keras 2 HDF5 file; expected Keras 3's "
            ".weights.h5 layout.",
        )
    stored = {
        group: _stored_group(f, group, name)
        for group in groups
        if group.arrays
    }
    unused = sorted(
        _datasets(f)
        - {path for found in stored.values() for path, _, _ in found}
    )
    if unused:
        raise refuse(
            name,
            f"the file holds arrays the {type(model).__name__} "
            f"has no place for: {unused[:6]}"
            f"{' ...' if len(unused) > 6 else ''}.",
        )
    for group, found in stored.items():
        target = _at(params, group.keys)
        for array, (_, ds, dtype) in zip(group.arrays, found):
            target[array] = jax.ShapeDtypeStruct(ds.shape, dtype)
    _check_shapes(
        model,
        params,
        groups,
        input_shape,
        lambda message: refuse(name, message),
    )
    for group, found in stored.items():
        target = _at(params, group.keys)
        for array, (_, ds, dtype) in zip(group.arrays, found):
            target[array] = jnp.asarray(read_array(ds, name, dtype))
    return params


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
    skeleton, groups = _model_layout(model, single_layer_root=False)
    _check_structure(skeleton, params, ())
    _check_shapes(model, params, groups, None)
    h5py = _h5py()
    # A crash or an exception midway leaves the previous file as it was.
    try:
        with atomic_path(name) as tmp, h5py.File(tmp, "w") as f:
            _write(f, params, groups)
    except (OSError, RuntimeError) as error:  # h5py's, e.g. a full disk.
        raise OSError(
            f"{name}: writing the weights failed ({error}); any "
            "previous file there is unchanged."
        ) from error


def _write(f: Any, params: Any, groups: list[_Group]) -> None:
    for group in groups:
        vars_group = f.require_group(_join(group.path, "vars"))
        vars_group.attrs["name"] = group.name
        target = _at(params, group.keys)
        for i, array_name in enumerate(group.arrays):
            value = np.asarray(target[array_name])
            written = vars_group.create_dataset(str(i), data=value)
            if value.dtype == jnp.bfloat16:
                written.attrs["dtype"] = "bfloat16"
