"""The training examples run with small settings and reach what they promise.

Each example runs as a newcomer runs it, in a subprocess, with small
settings and with its defaults (checking the figures the examples'
docstrings and the README quote).
"""

import re

import pytest
from integration.scripts import EXAMPLES

# The examples train for real, even in their small settings: CI runs them
# after the default suite (`python -m pytest -m slow`).
pytestmark = pytest.mark.slow

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _number(pattern, text):
    """The float that `pattern`'s first group captures in `text`."""
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in output:\n{text}"
    return float(found.group(1))


def _assert_png(path):
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def _char_lm_figures(out):
    return (
        _number(r"validation: loss ([\d.]+)", out),
        _number(r"on validation ([\d.]+)", out),
    )


def test_char_lm_falls_below_the_unigram_baseline(tmp_path, run_script):
    out = run_script(
        EXAMPLES / "char_lm.py",
        "--steps",
        300,
        "--hidden",
        64,
        "--batch",
        16,
        "--seq-len",
        32,
        "--lr",
        1e-2,
        "--sample-length",
        40,
        "--no-progress",
        "--plot",
        tmp_path / "loss.png",
    )
    val_loss, unigram = _char_lm_figures(out)
    # This setting reaches about 71% of the baseline (defaults: about 51%).
    assert val_loss < 0.85 * unigram, out
    assert "below the unigram baseline: True" in out
    sample = out.split("-" * 60)[1]
    assert sample.strip().startswith("def ") and len(sample.strip()) >= 40
    _assert_png(tmp_path / "loss.png")


def test_classify_sequences_learns_from_masked_strokes(tmp_path, run_script):
    out = run_script(
        EXAMPLES / "classify_sequences.py",
        "--train-size",
        1000,
        "--test-size",
        300,
        "--epochs",
        15,
        "--units",
        32,
        "--lr",
        1e-2,
        "--plot",
        tmp_path / "strokes.png",
    )
    # Chance is 1/6; this small setting reaches about 70% (defaults: 99%).
    assert _number(r"test accuracy: ([\d.]+)%", out) > 50, out
    assert "confusion (rows: truth, columns: prediction)" in out
    _assert_png(tmp_path / "strokes.png")


def test_forecast_beats_the_naive_forecasts(tmp_path, run_script):
    out = run_script(
        EXAMPLES / "forecast.py",
        "--steps",
        150,
        "--units",
        16,
        "--train-size",
        512,
        "--test-size",
        256,
        "--plot",
        tmp_path / "forecast.png",
    )
    assert _number(r"model / best naive: ([\d.]+)", out) < 0.8, out
    _assert_png(tmp_path / "forecast.png")


def test_per_example_gradients_match_the_batched_call(run_script):
    out = run_script(
        EXAMPLES / "per_example_grads.py", "--batch", 16, "--steps", 30
    )
    assert "vmapped and batched calls agree: True" in out
    assert (
        _number(r"outputs, vmapped vs batched: max \|difference\| (\S+)", out)
        < 1e-5
    )
    assert (
        _number(
            r"mean gradient, vmapped vs batched: max \|difference\| "
            r"(\S+)",
            out,
        )
        < 1e-6
    )
    assert "gru/kernel (16, 4, 96)" in out


def test_char_lm_defaults(tmp_path, run_script):
    """About two minutes: the figures the docstring quotes."""
    out = run_script(
        EXAMPLES / "char_lm.py",
        "--no-progress",
        "--plot",
        tmp_path / "loss.png",
    )
    val_loss, unigram = _char_lm_figures(out)
    assert val_loss < 0.6 * unigram, out


@pytest.mark.parametrize(
    "script, pattern, bound",
    [
        ("classify_sequences.py", r"test accuracy: ([\d.]+)%", 90),
        ("per_example_grads.py", r"DP-SGD test accuracy after: ([\d.]+)%", 85),
    ],
)
def test_accuracy_with_defaults(script, pattern, bound, run_script):
    out = run_script(EXAMPLES / script)
    assert _number(pattern, out) > bound, out


def test_forecast_defaults(run_script):
    out = run_script(EXAMPLES / "forecast.py")
    assert _number(r"model / best naive: ([\d.]+)", out) < 0.3, out
