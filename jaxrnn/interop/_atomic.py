"""Writing a file so that a crash never leaves it half written.

`atomic_path` hands the writer a temporary name in the target's directory;
only when the writer returns is the temporary flushed to disk and renamed
over the target (`os.replace`, atomic on POSIX and Windows). An exception
removes the temporary, and a killed process leaves the old file as it was
(plus, at worst, a hidden ``.<name>.<random>.tmp`` beside it).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator


def _fsync(path: str, flags: int = os.O_RDONLY) -> None:
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path to write; on success it replaces `target`.

    The temporary is created empty with the permissions a new file would
    get (the umask applies), or the target's own where it exists.

    Example:
      >>> import os, tempfile
      >>> path = os.path.join(tempfile.mkdtemp(), "out.txt")
      >>> with atomic_path(path) as tmp:
      ...     with open(tmp, "w") as f:
      ...         _ = f.write("done")
      >>> open(path).read()
      'done'
    """
    target = os.fspath(target)
    directory, base = os.path.split(os.path.abspath(target))
    tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    os.close(descriptor)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    # The rename itself is durable only once the directory is synced.
    with contextlib.suppress(OSError):  # Not possible on every platform.
        _fsync(directory, getattr(os, "O_DIRECTORY", os.O_RDONLY))
