"""examples/min_gru_long.py runs as a newcomer runs it (tiny setting)."""

import re

import pytest
from integration.scripts import EXAMPLES

# The examples train for real, even in their small settings: CI runs them
# after the default suite (`python -m pytest -m slow`).
pytestmark = pytest.mark.slow


def test_min_gru_long_tiny(run_script):
    out = run_script(EXAMPLES / "min_gru_long.py", "--tiny", timeout=300)
    assert "2 residual minGRU blocks of 16 units" in out
    assert "loss went down: True" in out
    agree = float(re.search(r"agree to (\S+)", out).group(1))
    assert agree <= 1e-5
