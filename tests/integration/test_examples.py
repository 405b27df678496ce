"""The examples run as a newcomer runs them and print what they promise."""

import pytest
from integration.scripts import EXAMPLES


def test_quickstart(run_script):
    out = run_script(EXAMPLES / "quickstart.py", timeout=300)
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
def test_custom_cell_example(run_script):
    out = run_script(EXAMPLES / "custom_cell.py", timeout=300)
    assert "Bidirectional(RNN(cell)):  outputs (4, 12, 16)" in out
