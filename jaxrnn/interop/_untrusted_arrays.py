"""Reading one array of an untrusted Keras weight file.

The file is already audited (`jaxrnn.interop._untrusted_h5`); here each
array is checked from its metadata before its data is read: `dataset`
refuses what is not an array, `stored_dtype` anything but float16/32/64 or
Keras' 2-byte ``bfloat16``, and `read_array` reads it only once its bytes
are known to lie in the file, inflating compressed chunks here, each at
most to its chunk's size, so a small file cannot expand into gigabytes;
filters other than gzip and shuffle are refused.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np

from jaxrnn.interop._untrusted_h5 import h5py_module, refuse

# A chunk may be larger than its dataset only within reason: reading one
# allocates the whole chunk.
_MAX_CHUNK_SLACK_BYTES = 1 << 24
# Weights compress about 1.1:1; beyond a small array's worth, more than
# 100:1 is a bomb, not weights.
_MAX_INFLATED_SLACK_BYTES = 1 << 24
_MAX_COMPRESSION_RATIO = 100


def dataset(f: Any, name: str, where: str) -> Any:
    """The dataset at `where` (a path whose every link is a hard link)."""
    h5py = h5py_module()
    obj = f.get(where)
    if obj is None:
        raise refuse(name, f"no array at {where!r}.")
    if not isinstance(obj, h5py.Dataset):
        raise refuse(
            name,
            f"{where!r} is a {type(obj).__name__.lower()} "
            "where an array should be.",
        )
    if obj.shape is None:
        raise refuse(
            name,
            f"{where!r} has a null dataspace (no shape, no "
            "values) where an array should be.",
        )
    return obj


def stored_dtype(ds: Any, name: str) -> np.dtype:
    """The dtype `ds` loads as, read from its metadata: float16/32/64, or
    bfloat16 for 2-byte data marked as such (Keras' convention)."""
    where = ds.name.lstrip("/")
    marker = None
    if "dtype" in ds.attrs:
        attribute = ds.attrs.get_id("dtype")
        if (
            attribute.shape not in ((), None)
            or attribute.dtype.kind not in "SOU"
        ):
            raise refuse(
                name,
                f"{where!r} has a 'dtype' attribute that is not a string.",
            )
        marker = ds.attrs["dtype"]
        if isinstance(marker, bytes):
            marker = marker.decode("utf-8", "replace")
        if marker != "bfloat16":
            raise refuse(
                name,
                f"{where!r} has an unknown 'dtype' attribute "
                f"{marker!r} (Keras writes only 'bfloat16').",
            )
    dtype = ds.dtype
    if marker == "bfloat16":
        if dtype.itemsize != 2 or dtype.kind not in "Vu" or dtype.names:
            raise refuse(
                name,
                f"{where!r} is marked bfloat16 but holds "
                f"{dtype.itemsize}-byte {dtype} data; bfloat16 "
                "is 2-byte raw data.",
            )
        import ml_dtypes  # A dependency of jax.

        return np.dtype(ml_dtypes.bfloat16)
    if dtype.kind != "f" or dtype.itemsize not in (2, 4, 8):
        raise refuse(
            name,
            f"{where!r} holds {_describe(dtype)} data; weights "
            "must be floating (float16, bfloat16, float32 or "
            "float64).",
        )
    return dtype.newbyteorder("=")


def _describe(dtype: np.dtype) -> str:
    kinds = {
        "i": "integer",
        "u": "unsigned integer",
        "b": "bool",
        "c": "complex",
        "S": "string",
        "O": "string",
        "U": "string",
        "V": "opaque",
        "f": f"{dtype.itemsize}-byte float",
    }
    if dtype.names:
        return "compound"
    return f"{kinds.get(dtype.kind, 'non-numeric')} ({dtype})"


def read_array(ds: Any, name: str, dtype: np.dtype) -> np.ndarray:
    """Reads `ds`, whose shape the caller has checked, as `dtype` (from
    `stored_dtype`): HDF5 reads plain data; compressed chunks are inflated
    here, each bounded by its chunk's size."""
    h5py = h5py_module()
    where = ds.name.lstrip("/")
    plist = ds.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    unknown = [
        f
        for f in filters
        if f not in (h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE)
    ]
    if unknown:
        raise refuse(
            name,
            f"{where!r} uses HDF5 filters {unknown}; only gzip "
            "and shuffle are read.",
        )
    stored = ds.dtype  # The bytes as HDF5 keeps them (byte order included).
    _check_backed_by_file(ds, name, where, stored, bool(filters))
    if ds.chunks is not None:
        chunk_bytes = math.prod(ds.chunks) * stored.itemsize
        if chunk_bytes > max(
            ds.size * stored.itemsize, _MAX_CHUNK_SLACK_BYTES
        ):
            raise refuse(
                name,
                f"{where!r} declares chunks of {chunk_bytes} "
                f"bytes for {ds.size} values.",
            )
    if filters:
        out = _read_filtered(ds, name, where, stored, filters)
    else:
        out = np.empty(ds.shape, stored)
        if out.size:
            ds.read_direct(out)
    if dtype.kind != "f":  # bfloat16: Keras stores its bits as opaque data.
        if out.dtype.kind == "u":  # Raw bits as integers, maybe big-endian.
            out = out.astype(np.uint16)
        return out.view(dtype)
    return out.astype(dtype, copy=False)


def _check_backed_by_file(
    ds: Any, name: str, where: str, stored: np.dtype, filtered: bool
) -> None:
    """Refuses an array whose bytes are not in the file: the model pins
    every shape but the first layer's input size, which a file of a few
    KB could otherwise declare as gigabytes of fill values or of gzip."""
    declared = ds.size * stored.itemsize
    kept = ds.id.get_storage_size()
    if not filtered and kept < declared:
        raise refuse(
            name,
            f"{where!r} declares {declared} bytes but stores "
            f"{kept} in the file (the rest would be fill "
            "values; Keras writes every value).",
        )
    if filtered and declared > max(
        _MAX_INFLATED_SLACK_BYTES, _MAX_COMPRESSION_RATIO * kept
    ):
        raise refuse(
            name,
            f"{where!r} declares {declared} bytes from {kept} "
            f"compressed bytes, more than "
            f"{_MAX_COMPRESSION_RATIO}:1.",
        )


def _read_filtered(
    ds: Any, name: str, where: str, dtype: np.dtype, filters: list[int]
) -> np.ndarray:
    h5py = h5py_module()
    chunk_shape = ds.chunks
    chunk_bytes = math.prod(chunk_shape) * dtype.itemsize
    fill = ds.fillvalue
    out = np.zeros(ds.shape, dtype)
    if fill is not None and np.asarray(fill).tobytes().strip(b"\0"):
        out[...] = np.frombuffer(np.asarray(fill).tobytes(), dtype)[0]
    for index in range(ds.id.get_num_chunks()):
        info = ds.id.get_chunk_info(index)
        offset = tuple(info.chunk_offset)
        if any(
            o % c or o >= s for o, c, s in zip(offset, chunk_shape, ds.shape)
        ):
            raise refuse(
                name,
                f"{where!r} has a chunk at {offset}, outside "
                f"its shape {ds.shape}.",
            )
        mask, data = ds.id.read_direct_chunk(offset)
        for position in reversed(range(len(filters))):
            if mask & (1 << position):
                continue
            if filters[position] == h5py.h5z.FILTER_DEFLATE:
                data = _inflate(data, chunk_bytes, name, where)
            else:
                data = _unshuffle(data, dtype.itemsize)
        if len(data) != chunk_bytes:
            raise refuse(
                name,
                f"{where!r} has a chunk of {len(data)} bytes "
                f"where {chunk_bytes} belong.",
            )
        chunk = np.frombuffer(data, dtype).reshape(chunk_shape)
        target = tuple(
            slice(o, min(o + c, s))
            for o, c, s in zip(offset, chunk_shape, ds.shape)
        )
        out[target] = chunk[tuple(slice(0, t.stop - t.start) for t in target)]
    return out


def _inflate(data: bytes, limit: int, name: str, where: str) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit)
    except zlib.error as error:
        raise refuse(
            name, f"{where!r} has a damaged compressed chunk ({error})."
        ) from error
    if inflater.unconsumed_tail:
        raise refuse(
            name,
            f"{where!r} has a compressed chunk that inflates "
            f"past its {limit} bytes.",
        )
    return out


def _unshuffle(data: bytes, itemsize: int) -> bytes:
    """Undoes HDF5's shuffle filter: byte planes back to elements (a
    remainder shorter than an element stays as it is)."""
    count = len(data) // itemsize
    body = np.frombuffer(data[: count * itemsize], np.uint8)
    return body.reshape(itemsize, count).T.tobytes() + data[count * itemsize :]
