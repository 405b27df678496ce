"""Reading and writing a model's groups in an open Keras 3 weight file.

`load_params` finds each `Group` of a `model_layout` in an audited h5py
file, checks every array's shape and dtype from its metadata (and that the
file holds nothing the model has no place for), and only then reads the
arrays; `write_params` writes params group by group as Keras does. Opening
the file, and reading an array as untrusted data, is
`jaxrnn.interop._untrusted_h5`'s.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn.interop._keras_h5_layout import (
    Group,
    check_shapes,
    join_path,
    params_path,
    subtree,
)
from jaxrnn.interop._untrusted_arrays import dataset, read_array, stored_dtype
from jaxrnn.interop._untrusted_h5 import h5py_module, refuse


def check_max_bytes(max_bytes: Any) -> None:
    """The loaders' `max_bytes` argument: a positive int."""
    if (
        isinstance(max_bytes, bool)
        or not isinstance(max_bytes, int)
        or max_bytes <= 0
    ):
        raise TypeError(
            f"`max_bytes` must be a positive int, got {max_bytes!r}."
        )


def load_params(
    f: Any,
    name: str,
    model: Any,
    input_shape: Any,
    params: Any,
    groups: list[Group],
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
        target = subtree(params, group.keys)
        for array, (_, ds, dtype) in zip(group.arrays, found):
            target[array] = jax.ShapeDtypeStruct(ds.shape, dtype)
    check_shapes(
        model,
        params,
        groups,
        input_shape,
        lambda message: refuse(name, message),
    )
    for group, found in stored.items():
        target = subtree(params, group.keys)
        for array, (_, ds, dtype) in zip(group.arrays, found):
            target[array] = jnp.asarray(read_array(ds, name, dtype))
    return params


def _stored_group(
    f: Any, group: Group, name: str
) -> list[tuple[str, Any, np.dtype]]:
    """The group's datasets, in order, as (path, dataset, load dtype), the
    dtype from the metadata alone."""
    vars_path = join_path(group.path, "vars")
    if not _is_group(f, vars_path):
        raise refuse(
            name,
            f"the {group.owner} at {params_path(group.keys)} needs "
            f"{group.arrays}, but there is "
            f"{_missing_group(f, vars_path)}.",
        )
    stored = sorted(f[vars_path].keys(), key=lambda k: (len(k), k))
    expected = [str(i) for i in range(len(group.arrays))]
    if stored != expected:
        raise refuse(
            name,
            f"{vars_path} holds {len(stored)} arrays {stored}, "
            f"but the {group.owner} at {params_path(group.keys)} "
            f"expects {len(expected)}: "
            f"{', '.join(group.arrays)}.",
        )
    found = []
    for key in expected:
        ds = dataset(f, name, join_path(vars_path, key))
        found.append((join_path(vars_path, key), ds, stored_dtype(ds, name)))
    return found


def _is_group(f: Any, path: str) -> bool:
    return isinstance(f.get(path), h5py_module().Group)


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
    h5py = h5py_module()
    found: set[str] = set()
    f.visititems(
        lambda name, obj: (
            found.add(name) if isinstance(obj, h5py.Dataset) else None
        )
    )
    # A compiled model's file also holds its optimizer's state.
    return {name for name in found if not name.startswith("optimizer/")}


def write_params(f: Any, params: Any, groups: list[Group]) -> None:
    """Writes each group's arrays into `f` (an h5py file open for
    writing), bfloat16 ones marked as Keras marks them."""
    for group in groups:
        vars_group = f.require_group(join_path(group.path, "vars"))
        vars_group.attrs["name"] = group.name
        target = subtree(params, group.keys)
        for i, array_name in enumerate(group.arrays):
            value = np.asarray(target[array_name])
            written = vars_group.create_dataset(str(i), data=value)
            if value.dtype == jnp.bfloat16:
                written.attrs["dtype"] = "bfloat16"
