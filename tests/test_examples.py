"""The examples run as a newcomer runs them and print what they promise."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[1]


def _run(script):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_quickstart():
    out = _run("quickstart.py")
    assert "LSTM(8, return_state=True): 416 params" in out
    assert (
        "GRU(8, return_sequences=True): 336 params, output shape (None, 6, 8)"
        in out
    )
    assert "last output equals the final h: True" in out
    assert "masked steps repeat the last valid output: True" in out


# The quickstart (the README's example) runs by default; this one in CI's
# slow pass.
@pytest.mark.slow
def test_custom_cell_example():
    out = _run("custom_cell.py")
    assert "Bidirectional(RNN(cell)):  outputs (4, 12, 16)" in out
