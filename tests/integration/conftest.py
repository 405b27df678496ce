"""The fixture that runs a script: tests/integration/scripts.py."""

import pytest
from integration import scripts


@pytest.fixture(scope="session")
def run_script():
    """`run_script(path, *args, env=None, cwd=None, timeout=600)` runs
    `python path args...` and returns its stdout; the test fails, showing
    the command, its exit code and the tail of its output, unless it exits
    with 0 (scripts.run_script)."""
    return scripts.run_script
