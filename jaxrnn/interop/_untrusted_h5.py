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
  have been read from its metadata. Compressed chunks are inflated each
  at most to its chunk's size, so a small file cannot expand into
  gigabytes; filters other than gzip and shuffle are refused.

Every refusal is a `FileRefused` (a ``ValueError``) whose message starts
with the file's name and says in plain words what is wrong. Opening and
auditing the file is this module's; reading its arrays is
`jaxrnn.interop._untrusted_arrays`'.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from typing import Any

ARCHIVE_WEIGHTS = "model.weights.h5"
_COPY_BYTES = 1 << 20


class FileRefused(ValueError):
    """A weight file that is damaged, not what it claims, or unsafe."""


def h5py_module() -> Any:
    """The h5py module, imported on first use; ImportError saying how to
    install it."""
    try:
        import h5py  # Lazy: h5py is an optional dependency.
    except ImportError as error:
        raise ImportError(
            "Reading and writing Keras weight files needs h5py "
            "(pip install h5py)."
        ) from error
    return h5py


def refuse(name: str, message: str) -> FileRefused:
    """The refusal of the file `name`, for the caller to raise."""
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
