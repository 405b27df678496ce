"""examples/min_gru_long.py runs as a newcomer runs it (tiny setting)."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

# The examples train for real, even in their small settings: CI runs them
# after the default suite (`python -m pytest -m slow`).
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).parents[1]


def test_min_gru_long_tiny():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "min_gru_long.py"), "--tiny"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "2 residual minGRU blocks of 16 units" in out
    assert "loss went down: True" in out
    agree = float(re.search(r"agree to (\S+)", out).group(1))
    assert agree <= 1e-5
