"""A char_lm run stopped, saved with orbax and resumed equals an unbroken one.

Both runs use examples/char_lm.py's own `main`: 12 steps straight, against 6
steps saved to a checkpoint, then a new `main` call (new state, new jitted
step) that restores the checkpoint and runs to 12. On CPU, XLA runs the
same program on the same inputs to the same bits, so everything must match
exactly, not merely closely: params, optimizer state (Adam's moments and
count), the LSTM carry threaded between steps, the PRNG key (dropout is
on, so a wrongly restored key would show) and every step's loss.
"""

import jax
import numpy as np
import pytest
from integration.scripts import EXAMPLES, load_script

SMALL = [
    "--hidden",
    "32",
    "--embed",
    "8",
    "--batch",
    "8",
    "--seq-len",
    "16",
    "--dropout",
    "0.1",
    "--sample-length",
    "0",
    "--no-progress",
]

# Runs an example end to end (20 s or more): with the slow set, which CI
# runs after the default suite.
pytestmark = pytest.mark.slow


char_lm = load_script(EXAMPLES / "char_lm.py", "char_lm")


def _main(*args):
    # optax's Adam mixes int32 counts with floats, which the suite's strict
    # promotion rejects.
    with jax.numpy_dtype_promotion("standard"):
        return char_lm.main(SMALL + list(args))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(uninterrupted run, resumed run, checkpoint directory)."""
    directory = tmp_path_factory.mktemp("char_lm_checkpoints")
    straight = _main("--steps", "12")
    _main("--steps", "6", "--checkpoint-dir", str(directory))
    resumed = _main(
        "--steps", "12", "--checkpoint-dir", str(directory), "--resume"
    )
    return straight, resumed, directory


def _assert_bitwise_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y), np.max(np.abs(x - y))


@pytest.mark.parametrize(
    "part", ["params", "opt_state", "carry", "key", "step"]
)
def test_resumed_state_equals_uninterrupted(runs, part):
    straight, resumed, _ = runs
    assert int(resumed["state"]["step"]) == 12
    _assert_bitwise_equal(straight["state"][part], resumed["state"][part])


def test_resumed_losses_equal_uninterrupted(runs):
    straight, resumed, _ = runs
    assert len(resumed["losses"]) == 12
    assert resumed["losses"] == straight["losses"]
    assert resumed["val_loss"] == straight["val_loss"]


def test_state_actually_moved(runs):
    """Guards the test itself: six more steps change params and carry."""
    straight, _, directory = runs
    manager = char_lm.ocp.CheckpointManager(directory)
    assert manager.all_steps() == [6, 12]
    halfway, history = char_lm.restore_checkpoint(
        manager, straight["state"], _setting(), step=6
    )
    manager.close()
    assert len(history["losses"]) == 6
    for part in ("params", "carry", "key"):
        assert not all(
            np.array_equal(x, y)
            for x, y in zip(
                jax.tree.leaves(halfway[part]),
                jax.tree.leaves(straight["state"][part]),
            )
        )


def _setting():
    args = char_lm.parse_args(SMALL)
    return {name: getattr(args, name) for name in char_lm.MODEL_AND_DATA_FLAGS}


def test_resume_refuses_another_setting(runs):
    _, _, directory = runs
    args = SMALL + [
        "--steps",
        "14",
        "--checkpoint-dir",
        str(directory),
        "--resume",
    ]
    args[args.index("--hidden") + 1] = "48"
    with (
        pytest.raises(ValueError, match="--hidden was 32, now 48"),
        jax.numpy_dtype_promotion("standard"),
    ):
        char_lm.main(args)


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint"):
        _main("--steps", "2", "--checkpoint-dir", str(tmp_path), "--resume")


def test_a_new_run_refuses_a_used_directory(runs):
    _, _, directory = runs
    with pytest.raises(FileExistsError, match="pass --resume"):
        _main("--steps", "2", "--checkpoint-dir", str(directory))
