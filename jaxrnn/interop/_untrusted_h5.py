"""Opening Keras weight files as untrusted input.

A weight file comes from anywhere, so nothing in it is taken on trust:

- The path must be a regular file; a ``.keras`` archive must be a zip
  archive without duplicate member names, whose ``model.weights.h5``
  declares at most `max_bytes` and is streamed to a private temporary file
  (never held in memory, never read past its declared size).
- Before any array is read, every link in the file must be a hard link
  inside it, and no dataset may keep its bytes elsewhere (external storage,
  virtual datasets): HDF5 would follow those to other files.
- An array is read only after its shape (checked by the caller against
  the model) and its dtype (float16/32/64, or Keras' 2-byte ``bfloat16``)
  have been read from its metadata. Compressed chunks are inflated here,
  each at most to its chunk's size, so a small file cannot expand into
  gigabytes; filters other than gzip and shuffle are refused.

Every refusal is a `FileRefused` (a ``ValueError``) whose message starts
with the file's name and says in plain words what is wrong.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

ARCHIVE_WEIGHTS = "model.weights.h5"
# A chunk may be larger than its dataset only within reason: reading one
# allocates the whole chunk.
_MAX_CHUNK_SLACK_BYTES = 1 << 24
_COPY_BYTES = 1 << 20
# Weights compress about 1.1:1; beyond a small array's worth, more than
# 100:1 is a bomb, not weights.
_MAX_INFLATED_SLACK_BYTES = 1 << 24
_MAX_COMPRESSION_RATIO = 100


class FileRefused(ValueError):
    """A weight file that is damaged, not what it claims, or unsafe."""


def h5py_module():
    try:
        import h5py  # Lazy: h5py is an optional dependency.
    except ImportError as error:
        raise ImportError(
            "Reading and writing Keras weight files needs h5py "
            "(pip install h5py)."
        ) from error
    return h5py


def refuse(name: str, message: str) -> FileRefused:
    return FileRefused(f"{name}: {message}")


def _regular_file(name: str) -> None:
    """Raises FileNotFoundError, or refuses a directory, pipe or device."""
    mode = os.stat(name).st_mode  # FileNotFoundError names the path.
    if not stat.S_ISREG(mode):
        raise refuse(
            name,
            "not a regular file (a directory, pipe or device "
            "cannot be a weights file).",
        )


def _h5_open_error(name: str, error: OSError) -> FileRefused:
    text = str(error)
    if "signature not found" in text:
        return refuse(
            name,
            "not an HDF5 file (Keras weight files are HDF5; "
            "its first bytes hold no HDF5 signature).",
        )
    if "truncated" in text:
        return refuse(
            name,
            f"truncated: the HDF5 file ends before the data "
            f"it declares ({text}).",
        )
    if "driver" in text:
        return refuse(
            name,
            "an HDF5 file split over several files (family, "
            f"split or multi driver), which is refused ({text}).",
        )
    return refuse(name, f"a damaged HDF5 file that cannot be opened ({text}).")


@contextlib.contextmanager
def _open_h5(name: str, display: str) -> Iterator[Any]:
    """Yields the audited file; any error but a refusal while it is read
    (h5py's, on a damaged file) becomes a refusal naming the file."""
    h5py = h5py_module()
    try:
        handle = h5py.File(name, "r")
    except OSError as error:
        raise _h5_open_error(display, error) from error
    with handle:
        try:
            check_self_contained(handle, display)
            yield handle
        except FileRefused:
            raise
        except Exception as error:
            raise refuse(
                display,
                f"a damaged HDF5 file: reading it failed "
                f"with {type(error).__name__}: "
                f"{error}",
            ) from error


@contextlib.contextmanager
def _zip_errors(name: str, member_name: str, verb: str) -> Iterator[None]:
    """zipfile's errors on a damaged archive as refusals naming the file."""
    try:
        yield
    except FileRefused:
        raise
    except zipfile.BadZipFile as error:
        raise refuse(
            name,
            f"not a zip archive, or a damaged one (a .keras "
            f"file is a zip archive holding {member_name}; "
            f"{error}).",
        ) from error
    except Exception as error:
        raise refuse(
            name,
            f"a damaged zip archive: its {member_name} cannot "
            f"be {verb} ({type(error).__name__}: {error}).",
        ) from error


def _extract_weights(name: str, directory: str, max_bytes: int) -> str:
    """Streams the archive's weights member to a file in `directory`."""
    with _zip_errors(name, ARCHIVE_WEIGHTS, "extracted"):
        return _extract_member(name, directory, max_bytes)


def _member(
    archive: zipfile.ZipFile, name: str, member_name: str, max_bytes: int
) -> zipfile.ZipInfo:
    """The archive's `member_name`, checked from the zip's directory alone:
    the only member of that name, not encrypted, at most `max_bytes`."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise refuse(
            name,
            f"the archive holds several members named "
            f"{duplicates}, which is refused (which one is "
            "meant is ambiguous).",
        )
    member = next((i for i in infos if i.filename == member_name), None)
    if member is None:
        raise refuse(
            name, f"the archive holds no {member_name}, only {names[:20]}."
        )
    if member.flag_bits & 0x1:
        raise refuse(name, f"the archive's {member_name} is encrypted.")
    if member.file_size > max_bytes:
        raise refuse(
            name,
            f"the archive's {member_name} declares "
            f"{member.file_size} bytes uncompressed, more "
            f"than max_bytes={max_bytes}.",
        )
    return member


def _extract_member(name: str, directory: str, max_bytes: int) -> str:
    with zipfile.ZipFile(name) as archive:
        member = _member(archive, name, ARCHIVE_WEIGHTS, max_bytes)
        target = os.path.join(directory, ARCHIVE_WEIGHTS)
        # zipfile stops at the declared size and checks the CRC.
        with archive.open(member) as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out, _COPY_BYTES)
    return target


def read_archive_member(path: Any, member_name: str, max_bytes: int) -> bytes:
    """The bytes of a small member of a zip archive (a ``.keras`` file's
    ``config.json``), at most `max_bytes`, checked as the weights are."""
    name = os.fsdecode(path)
    _regular_file(name)
    with (
        _zip_errors(name, member_name, "read"),
        zipfile.ZipFile(name) as archive,
    ):
        member = _member(archive, name, member_name, max_bytes)
        with archive.open(member) as source:
            return source.read(max_bytes + 1)


@contextlib.contextmanager
def open_weights(path: Any, max_bytes: int) -> Iterator[tuple[Any, str]]:
    """Yields ``(h5py.File, name)`` for a ``.weights.h5`` file or the weights
    member of a ``.keras`` archive, audited by `check_self_contained`."""
    h5py_module()  # Say first that h5py is missing.
    name = os.fsdecode(path)
    if name.endswith(".keras"):
        _regular_file(name)
        with tempfile.TemporaryDirectory(prefix="jaxrnn-keras-") as directory:
            extracted = _extract_weights(name, directory, max_bytes)
            display = f"{name} ({ARCHIVE_WEIGHTS})"
            with _open_h5(extracted, display) as f:
                yield f, display
    elif name.endswith(".h5"):
        _regular_file(name)
        with _open_h5(name, name) as f:
            yield f, name
    else:
        raise ValueError(
            "`path` must name a Keras 3 .weights.h5 file or a "
            f".keras archive, got {name!r}."
        )


def check_self_contained(f: Any, name: str) -> None:
    """Refuses any link that is not a hard link inside the file, and any
    dataset whose bytes live elsewhere, before anything is read."""
    h5py = h5py_module()
    links: list[tuple[str, str]] = []

    def visit_link(link_name: str, link: Any) -> None:
        if not isinstance(link, h5py.HardLink):
            kind = {"SoftLink": "soft link", "ExternalLink": "external link"}
            links.append(
                (link_name, kind.get(type(link).__name__, "user-defined link"))
            )

    f.visititems_links(visit_link)
    if links:
        where, kind = links[0]
        raise refuse(
            name,
            f"{where!r} is {'an' if kind[0] == 'e' else 'a'} "
            f"{kind}, not an object inside the "
            "file; links that could lead outside the file are "
            "refused (Keras writes only hard links).",
        )
    outward: list[str] = []

    def visit_object(object_name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            if obj.is_virtual:
                outward.append(f"{object_name!r} is a virtual dataset")
            elif obj.external:
                outward.append(
                    f"{object_name!r} keeps its bytes in an external file"
                )

    f.visititems(visit_object)
    if outward:
        raise refuse(
            name, f"{outward[0]}; datasets that read other files are refused."
        )


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
