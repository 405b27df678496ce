"""examples/next_frame.py runs as a newcomer runs it, on a tiny setting."""

import re

import pytest
from integration.scripts import EXAMPLES

# The examples train for real, even in their small settings: CI runs them
# after the default suite (`python -m pytest -m slow`).
pytestmark = pytest.mark.slow


def test_next_frame_example_beats_copying_the_last_frame(tmp_path, run_script):
    plot = tmp_path / "frames.png"
    out = run_script(
        EXAMPLES / "next_frame.py",
        "--size",
        "12",
        "--frames",
        "6",
        "--max-squares",
        "1",
        "--train-size",
        "128",
        "--test-size",
        "32",
        "--filters",
        "6",
        "--steps",
        "40",
        "--batch",
        "8",
        "--lr",
        "1e-2",
        "--plot",
        plot,
        timeout=300,
    )
    ratio = re.search(r"model / copy last frame: ([\d.]+)", out)
    assert ratio, out
    assert float(ratio.group(1)) < 1.0, out
    assert plot.stat().st_size > 1000
