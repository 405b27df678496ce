"""examples/xlstm_long_range.py runs as a newcomer runs it (tiny setting)."""

import math
import re

import pytest
from integration.scripts import EXAMPLES

# The examples train for real, even in their small settings: CI runs them
# after the default suite (`python -m pytest -m slow`).
pytestmark = pytest.mark.slow

# A row of the final table: model, params, test MSE, within, train seconds.
ROW = re.compile(r"^(xLSTM|LSTM)\s+(\d+)\s+(\S+)\s+(\S+)%\s+(\d+)\s*$", re.M)


def test_xlstm_long_range_tiny(run_script):
    out = run_script(EXAMPLES / "xlstm_long_range.py", "--tiny", timeout=300)
    assert "1 x (mLSTM block, sLSTM block) of 16 units" in out
    rows = {name: rest for name, *rest in ROW.findall(out)}
    assert set(rows) == {"xLSTM", "LSTM"}, out
    params = {name: int(rest[0]) for name, rest in rows.items()}
    # The baseline's width is chosen to match the xLSTM's parameter count.
    assert abs(params["LSTM"] / params["xLSTM"] - 1) <= 0.1
    for name, (_, mse, within, _) in rows.items():
        assert math.isfinite(float(mse)), (name, out)
        assert 0 <= float(within) <= 100, (name, out)
    agree = float(re.search(r"agree to (\S+)", out).group(1))
    assert agree <= 1e-4
