"""Helpers for the hostile-file tests: a watch that sees any process open a
file (inotify), and peak memory of a load in a fresh process."""

import ctypes
import json
import os
import struct
import subprocess
import sys
import textwrap

_IN_OPEN, _IN_ACCESS = 0x20, 0x1
_IN_NONBLOCK = os.O_NONBLOCK


class OpenWatch:
    """Records whether `path` is opened or read while the block runs, by any
    code (HDF5's C library included): Linux inotify through ctypes."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.events = 0

    def __enter__(self):
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(_IN_NONBLOCK)
        if (
            self._fd < 0
            or libc.inotify_add_watch(
                self._fd, self.path.encode(), _IN_OPEN | _IN_ACCESS
            )
            < 0
        ):
            raise OSError(ctypes.get_errno(), "inotify is unavailable")
        return self

    def __exit__(self, *exc):
        try:
            while True:
                data = os.read(self._fd, 4096)
                offset = 0
                while offset < len(data):
                    _, mask, _, length = struct.unpack_from(
                        "iIII", data, offset
                    )
                    self.events += bool(mask & (_IN_OPEN | _IN_ACCESS))
                    offset += 16 + length
        except BlockingIOError:
            pass
        finally:
            os.close(self._fd)
        return False


_PEAK_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import jax
    import jaxrnn
    from jaxrnn.interop import load_keras_weights
    from jaxrnn.layers import Dense, Sequential
    model = Sequential([jaxrnn.LSTM(4), Dense(2)])
    warm, path, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    load_keras_weights(warm, model)  # Imports and first-call costs.
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        load_keras_weights(path, model, **kwargs)
        outcome = "loaded"
    except (ValueError, TypeError, OSError) as error:
        kind = next(t for t in (ValueError, TypeError, OSError)
                    if isinstance(error, t))
        outcome = f"{kind.__name__}: {error}"
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"outcome": outcome, "peak_mb": (after - before) / 1024}))
""")


def load_in_fresh_process(warm_path, path, **kwargs):
    """Loads `path` into ``Sequential([LSTM(4), Dense(2)])`` in a new
    process; returns (outcome, MB of peak memory above the warmed-up one)."""
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            _PEAK_SCRIPT,
            os.fspath(warm_path),
            os.fspath(path),
            json.dumps(kwargs),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    result = json.loads(run.stdout.strip().splitlines()[-1])
    return result["outcome"], result["peak_mb"]
