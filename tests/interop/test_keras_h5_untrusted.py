"""Keras weight files as untrusted input: nothing outside the file is read,
no small file costs much memory, only floating arrays load, every refusal
names the file in plain words, and saving never destroys the old file."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import zipfile
import zlib

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from untrusted_files import OpenWatch, load_in_fresh_process

import jaxrnn
from jaxrnn.interop import load_keras_weights, save_keras_weights
from jaxrnn.layers import Dense, Sequential

D = 3
KERNEL = "layers/lstm/cell/vars/0"  # (D, 16) in the model below


def model():
    return Sequential([jaxrnn.LSTM(4), Dense(2)])


def params_of(seed=0):
    return model().init(jax.random.key(seed), (None, None, D))


@pytest.fixture
def saved(tmp_path):
    """A valid weights file of `model()`, and its params."""
    params = params_of()
    path = tmp_path / "model.weights.h5"
    save_keras_weights(params, model(), path)
    return path, params


@pytest.fixture
def secret(tmp_path):
    """A file outside the weights file that nothing may read."""
    path = tmp_path / "secret.bin"
    path.write_bytes(np.full(64, 7.25, np.float32).tobytes())
    return path


def assert_equal_params(ours, theirs):
    assert jax.tree.structure(ours) == jax.tree.structure(theirs)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def replace_kernel(path, **create):
    """Rewrites the LSTM kernel dataset with `create_dataset` arguments."""
    with h5py.File(path, "r+") as f:
        del f[KERNEL]
        f.create_dataset(KERNEL, **create)


# 1. Nothing outside the file is read.
def test_external_storage_is_refused_before_reading(saved, secret):
    path, _ = saved
    replace_kernel(
        path,
        shape=(D, 16),
        dtype="f4",
        external=[(os.fspath(secret), 0, 4 * D * 16)],
    )
    with (
        OpenWatch(secret) as watch,
        pytest.raises(
            ValueError,
            match=rf"{path}: '{KERNEL}' keeps its bytes in an "
            "external file",
        ),
    ):
        load_keras_weights(path, model())
    assert watch.events == 0


def test_external_link_is_refused(saved, secret, tmp_path):
    path, _ = saved
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f[KERNEL] = np.zeros((D, 16), np.float32)
    with h5py.File(path, "r+") as f:
        del f[KERNEL]
        f[KERNEL] = h5py.ExternalLink(os.fspath(other), KERNEL)
    with (
        OpenWatch(other) as watch,
        pytest.raises(
            ValueError,
            match=rf"'{KERNEL}' is an external link, not an object "
            "inside the file",
        ),
    ):
        load_keras_weights(path, model())
    assert watch.events == 0


def test_soft_link_is_refused(saved):
    """A soft link inside the file cannot leave it, but is no hard link: a
    Keras file never holds one."""
    path, _ = saved
    with h5py.File(path, "r+") as f:
        f["layers/lstm/cell/vars/extra"] = h5py.SoftLink("/" + KERNEL)
    with pytest.raises(ValueError, match="is a soft link"):
        load_keras_weights(path, model())


def test_virtual_dataset_is_refused(saved, secret, tmp_path):
    path, _ = saved
    source = tmp_path / "source.h5"
    with h5py.File(source, "w") as f:
        f["x"] = np.zeros((D, 16), np.float32)
    layout = h5py.VirtualLayout(shape=(D, 16), dtype="f4")
    layout[:] = h5py.VirtualSource(os.fspath(source), "x", shape=(D, 16))
    with h5py.File(path, "r+") as f:
        del f[KERNEL]
        f.create_virtual_dataset(KERNEL, layout)
    with (
        OpenWatch(source) as watch,
        pytest.raises(ValueError, match="is a virtual dataset"),
    ):
        load_keras_weights(path, model())
    assert watch.events == 0


# 2. A small file never costs much memory.
def test_huge_declared_dataset_is_refused_from_metadata(saved, tmp_path):
    """18 KB declaring a (32768, 32768) gzip dataset: today's refusal
    comes from its metadata, before 4 GB are filled."""
    path, _ = saved
    warm = tmp_path / "warm.weights.h5"
    shutil.copy(path, warm)
    replace_kernel(
        path,
        shape=(32768, 32768),
        dtype="f4",
        chunks=(256, 256),
        compression="gzip",
        fillvalue=1.0,
    )
    assert path.stat().st_size < 64 << 10
    outcome, peak_mb = load_in_fresh_process(warm, path)
    assert outcome.startswith("ValueError") and "must have shape" in outcome
    assert peak_mb < 100, (outcome, peak_mb)


def test_compressed_chunk_cannot_inflate_past_its_size(saved, tmp_path):
    """A chunk of the right shape whose gzip stream inflates to 400 MB:
    HDF5's own filter would allocate all of it."""
    path, _ = saved
    warm = tmp_path / "warm.weights.h5"
    shutil.copy(path, warm)
    replace_kernel(
        path, shape=(D, 16), dtype="f4", chunks=(D, 16), compression="gzip"
    )
    with h5py.File(path, "r+") as f:
        f[KERNEL].id.write_direct_chunk(
            (0, 0), zlib.compress(b"\0" * (400 << 20))
        )
    outcome, peak_mb = load_in_fresh_process(warm, path)
    assert "compressed chunk that inflates past its 192 bytes" in outcome
    assert peak_mb < 100, (outcome, peak_mb)


def test_compressed_and_shuffled_chunks_still_load(saved, tmp_path):
    path, params = saved
    kernel = np.asarray(params[0]["kernel"])
    replace_kernel(
        path,
        data=kernel.astype(">f4"),
        chunks=(2, 5),
        compression="gzip",
        shuffle=True,
    )
    assert_equal_params(load_keras_weights(path, model()), params)


def _archive(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)


def test_archive_member_is_capped_before_extraction(saved, tmp_path):
    path, _ = saved
    archive = tmp_path / "model.keras"
    _archive(
        archive,
        [("config.json", "{}"), ("model.weights.h5", path.read_bytes())],
    )
    size = path.stat().st_size
    with pytest.raises(
        ValueError,
        match=rf"{archive}: the archive's "
        rf"model.weights.h5 declares {size} bytes uncompressed, "
        rf"more than max_bytes={size - 1}",
    ):
        load_keras_weights(archive, model(), max_bytes=size - 1)


@pytest.mark.slow
def test_archive_bomb_costs_no_memory(saved, tmp_path):
    """A 1 MB .keras whose weights member inflates to 1 GiB is streamed to a
    temporary file (today: read whole, 2.2 GB)."""
    path, _ = saved
    archive = tmp_path / "bomb.keras"
    with (
        zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out,
        out.open("model.weights.h5", "w", force_zip64=True) as member,
    ):
        zeros = bytes(1 << 20)
        for _ in range(1024):
            member.write(zeros)
    assert archive.stat().st_size < 2 << 20
    outcome, peak_mb = load_in_fresh_process(path, archive)
    assert "not an HDF5 file" in outcome, outcome
    assert peak_mb < 100, (outcome, peak_mb)


def test_archive_with_duplicate_members_is_refused(saved, tmp_path):
    path, _ = saved
    archive = tmp_path / "model.keras"
    with pytest.warns(UserWarning, match="Duplicate name"):
        _archive(
            archive,
            [
                ("model.weights.h5", path.read_bytes()),
                ("model.weights.h5", path.read_bytes()),
            ],
        )
    with pytest.raises(
        ValueError,
        match=r"several members named "
        r"\['model.weights.h5'\]",
    ):
        load_keras_weights(archive, model())


def test_archive_loads(saved, tmp_path):
    path, params = saved
    archive = tmp_path / "model.keras"
    _archive(
        archive,
        [("config.json", "{}"), ("model.weights.h5", path.read_bytes())],
    )
    assert_equal_params(load_keras_weights(archive, model()), params)


# 3. Only floating arrays load.
@pytest.mark.parametrize(
    "data, kind",
    [
        (np.zeros((D, 16), np.int32), "integer"),
        (np.zeros((D, 16), bool), "bool"),
        (np.zeros((D, 16), np.complex64), "complex"),
        (np.full((D, 16), b"ab"), "string"),
        (np.zeros((D, 16), [("a", "f4"), ("b", "f4")]), "compound"),
        (np.zeros((D, 16), np.float16).view("V2"), "opaque"),
    ],
)
def test_non_floating_arrays_are_refused(saved, data, kind):
    path, _ = saved
    replace_kernel(path, data=data)
    with pytest.raises(
        ValueError,
        match=rf"{path}: '{KERNEL}' holds {kind}.* "
        "weights must be floating",
    ):
        load_keras_weights(path, model())


def test_bfloat16_marker_applies_to_two_byte_data_only(saved):
    path, _ = saved
    with h5py.File(path, "r+") as f:
        f[KERNEL].attrs["dtype"] = "bfloat16"
    with pytest.raises(ValueError, match=r"marked bfloat16 but holds 4-byte"):
        load_keras_weights(path, model())


def test_bfloat16_loads(tmp_path):
    params = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params_of())
    path = tmp_path / "bf16.weights.h5"
    save_keras_weights(params, model(), path)
    loaded = load_keras_weights(path, model())
    assert loaded[0]["kernel"].dtype == jnp.bfloat16
    assert_equal_params(loaded, params)


def test_half_and_double_load(saved):
    path, params = saved
    replace_kernel(path, data=np.asarray(params[0]["kernel"], np.float16))
    assert load_keras_weights(path, model())[0]["kernel"].dtype == jnp.float16


# 4. Every refusal names the file in plain words.
def test_truncated_file(saved):
    path, _ = saved
    path.write_bytes(path.read_bytes()[:1500])
    with pytest.raises(ValueError, match=rf"{path}: truncated"):
        load_keras_weights(path, model())


def test_not_an_hdf5_file(tmp_path):
    path = tmp_path / "model.weights.h5"
    path.write_bytes(b"PK\x03\x04 not hdf5" * 100)
    with pytest.raises(ValueError, match=rf"{path}: not an HDF5 file"):
        load_keras_weights(path, model())


def test_not_a_zip_archive(saved, tmp_path):
    path, _ = saved
    archive = tmp_path / "model.keras"
    shutil.copy(path, archive)
    with pytest.raises(
        ValueError,
        match=rf"{archive}: not a zip archive, or "
        "a damaged one",
    ):
        load_keras_weights(archive, model())


def test_archive_without_weights(tmp_path):
    archive = tmp_path / "model.keras"
    _archive(archive, [("config.json", "{}")])
    with pytest.raises(
        ValueError,
        match=rf"{archive}: the archive holds no "
        r"model.weights.h5, only \['config.json'\]",
    ):
        load_keras_weights(archive, model())


def test_damaged_archive_member(saved, tmp_path):
    path, _ = saved
    archive = tmp_path / "model.keras"
    _archive(archive, [("model.weights.h5", path.read_bytes())])
    data = bytearray(archive.read_bytes())
    data[200] ^= 0xFF  # Inside the deflated member: CRC or inflate fails.
    archive.write_bytes(bytes(data))
    with pytest.raises(
        ValueError,
        match=rf"{archive}: (a damaged zip archive"
        "|not a zip archive, or a damaged one)",
    ):
        load_keras_weights(archive, model())


def test_group_where_an_array_should_be(saved):
    path, _ = saved
    with h5py.File(path, "r+") as f:
        del f[KERNEL]
        f.create_group(KERNEL)
    with pytest.raises(
        ValueError,
        match=rf"{path}: '{KERNEL}' is a group "
        "where an array should be",
    ):
        load_keras_weights(path, model())


def test_array_where_a_group_should_be(saved):
    path, _ = saved
    with h5py.File(path, "r+") as f:
        del f["layers/dense/vars"]
        f["layers/dense/vars"] = np.zeros(3, np.float32)
    with pytest.raises(
        ValueError,
        match=r"but there is a dataset where the "
        r"group 'layers/dense/vars' should be",
    ):
        load_keras_weights(path, model())


def test_directory_is_not_a_weights_file(tmp_path):
    path = tmp_path / "dir.weights.h5"
    path.mkdir()
    with pytest.raises(ValueError, match=rf"{path}: not a regular file"):
        load_keras_weights(path, model())


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.weights.h5"):
        load_keras_weights(tmp_path / "nowhere.weights.h5", model())


# Saving never destroys the previous file.
def test_save_exception_midway_keeps_the_old_file(saved, monkeypatch):
    path, params = saved
    calls = []
    create = h5py.Group.create_dataset

    def fail_on_third(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return create(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", fail_on_third)
    with pytest.raises(
        OSError,
        match=r"writing the weights failed \(disk "
        r"full\); any previous file there is unchanged",
    ):
        save_keras_weights(params_of(seed=1), model(), path)
    monkeypatch.undo()
    assert_equal_params(load_keras_weights(path, model()), params)
    assert sorted(os.listdir(path.parent)) == ["model.weights.h5"]


_SAVE_SCRIPT = textwrap.dedent("""
    import sys, time
    import h5py, jax
    import jaxrnn
    from jaxrnn.interop import save_keras_weights
    from jaxrnn.layers import Dense, Sequential
    model = Sequential([jaxrnn.LSTM(4), Dense(2)])
    params = model.init(jax.random.key(int(sys.argv[2])), (None, None, 3))
    mode = sys.argv[3]
    if mode == "pause":  # Stop for good after the second array.
        create, calls = h5py.Group.create_dataset, []
        def paused(self, *args, **kwargs):
            calls.append(args)
            if len(calls) == 3:
                print("midway", flush=True)
                time.sleep(60)
            return create(self, *args, **kwargs)
        h5py.Group.create_dataset = paused
    print("ready", flush=True)
    while True:
        save_keras_weights(params, model, sys.argv[1])
        if mode == "pause":
            break
""")


def _saver(path, seed, mode):
    return subprocess.Popen(
        [sys.executable, "-c", _SAVE_SCRIPT, os.fspath(path), str(seed), mode],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )


def test_killed_save_keeps_the_old_file(saved):
    path, params = saved
    process = _saver(path, 1, "pause")
    assert process.stdout.readline().strip() == "ready"
    assert process.stdout.readline().strip() == "midway"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert_equal_params(load_keras_weights(path, model()), params)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.05, 0.2, 0.5])
def test_save_killed_at_any_time_leaves_old_or_new(saved, delay):
    path, old = saved
    new = params_of(seed=1)
    process = _saver(path, 1, "loop")
    assert process.stdout.readline().strip() == "ready"
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
    loaded = load_keras_weights(path, model())
    same_as_old = all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(old))
    )
    if not same_as_old:
        assert_equal_params(loaded, new)


def test_save_keeps_the_permissions_of_the_file_it_replaces(saved):
    path, params = saved
    os.chmod(path, 0o640)
    save_keras_weights(params, model(), path)
    assert (path.stat().st_mode & 0o777) == 0o640


def test_save_refuses_non_floating_params(tmp_path):
    params = params_of()
    params[1]["kernel"] = params[1]["kernel"].astype(jnp.int32)
    with pytest.raises(
        TypeError,
        match=r"params\[1\]\['kernel'\] must have a "
        "floating dtype .* got int32",
    ):
        save_keras_weights(params, model(), tmp_path / "m.weights.h5")
    assert not os.listdir(tmp_path)


# Found by a probe after the first fixes.
def test_input_size_without_stored_bytes_is_refused(saved, tmp_path):
    """The model pins every shape but the first layer's input size: a 16 KB
    file declaring D = 2**25 of fill values cost 2 GB."""
    path, _ = saved
    warm = tmp_path / "warm.weights.h5"
    shutil.copy(path, warm)
    replace_kernel(path, shape=(1 << 25, 16), dtype="f4", fillvalue=0.5)
    outcome, peak_mb = load_in_fresh_process(warm, path)
    assert "declares 2147483648 bytes but stores 0 in the file" in outcome
    assert peak_mb < 100, (outcome, peak_mb)


def test_input_size_behind_extreme_compression_is_refused(saved):
    path, _ = saved
    replace_kernel(
        path,
        shape=(1 << 20, 16),
        dtype="f4",
        chunks=(1 << 16, 16),
        compression="gzip",
        data=np.zeros((1 << 20, 16), np.float32),
    )
    with pytest.raises(
        ValueError,
        match=r"declares 67108864 bytes from \d+ "
        r"compressed bytes, more than 100:1",
    ):
        load_keras_weights(path, model())


def test_bfloat16_marker_on_big_endian_bits_loads_their_values(saved):
    path, params = saved
    bits = np.asarray(params[0]["kernel"].astype(jnp.bfloat16)).view(np.uint16)
    replace_kernel(path, data=bits.astype(">u2"))
    with h5py.File(path, "r+") as f:
        f[KERNEL].attrs["dtype"] = "bfloat16"
    loaded = load_keras_weights(path, model())[0]["kernel"]
    np.testing.assert_array_equal(
        np.asarray(loaded),
        np.asarray(params[0]["kernel"].astype(jnp.bfloat16)),
    )


def test_bfloat16_marker_on_two_byte_compound_is_refused(saved):
    path, _ = saved
    replace_kernel(path, data=np.zeros((D, 16), [("a", "i1"), ("b", "i1")]))
    with h5py.File(path, "r+") as f:
        f[KERNEL].attrs["dtype"] = "bfloat16"
    with pytest.raises(ValueError, match="marked bfloat16 but holds 2-byte"):
        load_keras_weights(path, model())


def test_null_dataspace_is_refused(saved):
    path, _ = saved
    replace_kernel(path, data=h5py.Empty("f4"))
    with pytest.raises(ValueError, match=rf"'{KERNEL}' has a null dataspace"):
        load_keras_weights(path, model())


def test_bytes_paths_work(saved, tmp_path):
    _path, params = saved
    target = os.fsencode(tmp_path / "again.weights.h5")
    save_keras_weights(params, model(), target)
    assert_equal_params(load_keras_weights(target, model()), params)


def test_save_inside_jit_says_to_call_it_outside(tmp_path):
    def save(params):
        save_keras_weights(params, model(), tmp_path / "m.weights.h5")
        return 0

    with pytest.raises(
        TypeError,
        match=r"params\[0\]\['kernel'\] is traced "
        r"\(save_keras_weights was called inside jax.jit",
    ):
        jax.jit(save)(params_of())


def test_save_refuses_dtypes_keras_files_cannot_hold(tmp_path):
    params = params_of()
    params[0]["bias"] = np.asarray(params[0]["bias"]).astype(np.longdouble)
    with pytest.raises(
        TypeError,
        match=r"params\[0\]\['bias'\] must have a "
        "floating dtype Keras files hold",
    ):
        save_keras_weights(params, model(), tmp_path / "m.weights.h5")
