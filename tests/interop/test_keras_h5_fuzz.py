"""Mutated weight files: each loads to params of the model's layout or is
refused with a ValueError, TypeError or OSError naming the file; never
another exception, never a crash, never a read of another file.

A seeded loop: the default run tries a few dozen mutations, CI's thorough
run (JAXRNN_THOROUGH=1) a few thousand. A failure prints the seed, and
``fuzz_case(seed, tmp_path)`` replays it.
"""

import os
import zipfile

import h5py
import jax
import numpy as np
import pytest
from properties import examples
from untrusted_files import OpenWatch

import jaxrnn
from jaxrnn.interop import load_keras_weights, save_keras_weights
from jaxrnn.layers import Dense, Embedding, Sequential

MODEL = Sequential(
    [Embedding(20, 4), jaxrnn.Bidirectional(jaxrnn.GRU(3)), Dense(2)]
)
PARAMS = MODEL.init(jax.random.key(0), (None, None))
TEMPLATE = jax.eval_shape(lambda: PARAMS)


def _datasets(f):
    found = []
    f.visititems(
        lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) else None
    )
    return found


def _structural(rng, path, secret):
    """One h5py-level change: swap, remove, retype, resize, relink."""
    with h5py.File(path, "r+") as f:
        names = _datasets(f)
        name = names[rng.integers(len(names))]
        other = names[rng.integers(len(names))]
        data = f[name][()]
        kind = rng.integers(9)
        if kind == 0 and name != other:  # Swap two arrays.
            swapped = f[other][()]
            del f[name], f[other]
            f[name], f[other] = swapped, data
        elif kind == 1:
            del f[name]
        elif kind == 2:
            dtype = [
                np.int32,
                np.float64,
                np.float16,
                np.complex64,
                bool,
                np.uint16,
                "S4",
            ][rng.integers(7)]
            del f[name]
            f[name] = np.zeros(data.shape, dtype)
        elif kind == 3:
            shape = tuple(
                int(s) + int(rng.integers(-1, 2)) for s in data.shape
            )
            del f[name]
            f[name] = np.zeros(tuple(max(s, 0) for s in shape), np.float32)
        elif kind == 4:
            del f[name]
            f[name] = h5py.SoftLink("/" + other)
        elif kind == 5:
            del f[name]
            f[name] = h5py.ExternalLink(os.fspath(secret), "/x")
        elif kind == 6:
            del f[name]
            f.create_dataset(
                name,
                shape=data.shape,
                dtype="f4",
                external=[(os.fspath(secret), 0, 4 * data.size)],
            )
        elif kind == 7:
            del f[name]
            f.create_dataset(
                name,
                data=data,
                chunks=True,
                compression="gzip",
                shuffle=bool(rng.integers(2)),
            )
        else:
            f[name].attrs["dtype"] = ["bfloat16", "float8", 3][rng.integers(3)]


def _bytes(rng, path):
    """Truncation or a few flipped bytes anywhere in the file."""
    data = bytearray(path.read_bytes())
    if rng.integers(3) == 0:
        del data[int(rng.integers(len(data))) :]
    else:
        for _ in range(int(rng.integers(1, 9))):
            data[int(rng.integers(len(data)))] ^= int(rng.integers(1, 256))
    path.write_bytes(bytes(data))


def fuzz_case(seed, tmp_path):
    """Builds the mutated file of `seed`; returns (path, the secret file)."""
    rng = np.random.default_rng(seed)
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as f:
        f["x"] = np.full(64, 7.25, np.float32)
    path = tmp_path / "model.weights.h5"
    save_keras_weights(PARAMS, MODEL, path)
    family = rng.integers(4)
    if family in (0, 1):
        _structural(rng, path, secret)
    if family in (1, 2):
        _bytes(rng, path)
    if family == 3:  # The same inside a .keras archive, zip bytes included.
        _structural(rng, path, secret)
        archive = tmp_path / "model.keras"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
            out.writestr("config.json", "{}")
            out.write(path, "model.weights.h5")
        _bytes(rng, archive)
        path = archive
    return path, secret


def check_case(seed, tmp_path):
    path, secret = fuzz_case(seed, tmp_path)
    with OpenWatch(secret) as watch:
        try:
            loaded = load_keras_weights(path, MODEL)
        except (ValueError, TypeError, OSError) as error:
            assert os.fspath(path) in str(error), (seed, error)
        else:
            assert jax.tree.structure(loaded) == jax.tree.structure(PARAMS)
            for a, b in zip(
                jax.tree.leaves(loaded), jax.tree.leaves(TEMPLATE)
            ):
                assert a.shape == b.shape and np.issubdtype(
                    a.dtype, np.floating
                )
    assert watch.events == 0, f"seed {seed} read another file"


@pytest.mark.property
def test_mutated_files_load_or_are_refused(tmp_path):
    for seed in range(examples(40, 2000)):
        case = tmp_path / str(seed)
        case.mkdir()
        check_case(seed, case)


def test_unmutated_file_loads_exactly(tmp_path):
    path = tmp_path / "model.weights.h5"
    save_keras_weights(PARAMS, MODEL, path)
    loaded = load_keras_weights(path, MODEL)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(PARAMS)):
        np.testing.assert_array_equal(a, b)
