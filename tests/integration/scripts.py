"""Runs the repository's scripts as a newcomer runs them, or imports them.

The integration tests check examples/, benchmarks/ and docs/ the way they
are used: `python <script> args...` in a fresh interpreter (`run_script`,
which conftest.py's fixture of that name hands out), or, for tests that
call a script's functions, the script imported as a module
(`load_script`). tests/ is on pytest's path, so a test module imports this
one as `integration.scripts`.

A script sees the tests' environment (tests/conftest.py's
`JAX_DISABLE_MOST_OPTIMIZATIONS=1` included) with this checkout first on
PYTHONPATH, so it imports the jaxrnn under test, installed or not; a
test's `env` overrides single variables.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# Characters of each stream a failure shows: the end, where the error is.
TAIL = 4000


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ with ROOT prepended to PYTHONPATH, then `env` over it."""
    merged = dict(os.environ)
    merged["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), merged.get("PYTHONPATH")])
    )
    merged.update(env or {})
    return merged


def start_script(
    *args: object,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.Popen[str]:
    """Starts `python *args` in the background; `finish` collects it.

    For scripts that run side by side (processes that talk to each other,
    or runs that overlap the test module's other work).
    """
    return subprocess.Popen(
        [sys.executable, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(env),
        cwd=cwd,
    )


def finish(process: subprocess.Popen[str], timeout: float) -> str:
    """Waits up to `timeout` seconds for `process` and returns its stdout.

    Fails the test, with the command, its exit code and the tail of both
    streams, unless it exits with 0 in time (it is killed then).
    """
    __tracebackhide__ = True  # failures point at the test's line
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        stderr += f"\n(killed after {timeout} s)"
    if process.returncode != 0:
        pytest.fail(_report(process.args, process.returncode, stdout, stderr))
    return stdout


def run_script(
    *args: object,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 600,
) -> str:
    """Runs `python *args` (a script's path and its arguments, or `-c`
    code, or `-m` module) to its end and returns its stdout.

    Args:
      *args: what follows `python` on the command line; each passes
        through `str`, so paths and numbers may be given as they are.
      env: variables to set over the inherited environment.
      cwd: the working directory; the tests' own by default.
      timeout: seconds before the script is killed and the test fails.

    Fails the test, with the command, its exit code and the tail of
    stdout and stderr, unless the script exits with 0.
    """
    __tracebackhide__ = True  # as in finish
    return finish(start_script(*args, env=env, cwd=cwd), timeout)


def load_script(path: str | os.PathLike[str], name: str) -> ModuleType:
    """Imports the script at `path` (relative to ROOT, or absolute) as a
    module called `name`, without putting its folder on sys.path.

    The module goes into sys.modules under `name`, as an import would put
    it (a dataclass looks its module up there as the script runs).
    """
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _report(command, returncode: int, stdout: str, stderr: str) -> str:
    shown = shlex.join(
        arg if len(arg) <= 200 else f"<{len(arg)} characters>"
        for arg in map(str, command)
    )
    return (
        f"{shown}\nexited with {returncode}\n"
        f"--- stdout (tail) ---\n{stdout[-TAIL:]}\n"
        f"--- stderr (tail) ---\n{stderr[-TAIL:]}"
    )
