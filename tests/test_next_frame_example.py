"""examples/next_frame.py runs as a newcomer runs it, on a tiny setting."""

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


def test_next_frame_example_beats_copying_the_last_frame(tmp_path):
    plot = tmp_path / "frames.png"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "next_frame.py"),
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
            str(plot),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    ratio = re.search(r"model / copy last frame: ([\d.]+)", done.stdout)
    assert ratio, done.stdout
    assert float(ratio.group(1)) < 1.0, done.stdout
    assert plot.stat().st_size > 1000
