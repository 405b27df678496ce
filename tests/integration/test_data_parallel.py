"""The sharded train step of examples/data_parallel.py equals the one-device one.

The example runs twice in subprocesses, on a CPU split into four devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=4``) and on one device,
and saves the first step's loss and gradients and every step's loss.

Tolerance. The two runs add the same float32 numbers in another order: four
per-device partial sums and an all-reduce instead of one sum over the batch
of 16, so they cannot be expected to match bit for bit. Reordering a sum of
n terms moves it by at most about n * eps of the terms' magnitude (eps =
1.2e-7 in float32), here ~2e-6; observed differences are 0.9-1.6e-7 of each
gradient's largest entry, and 0 to 7e-8 on the losses. So each gradient must
match to 1e-5 of its largest entry and the loss to 1e-6, relative: 60 times
the observed rounding, and far below any real fault (a gradient from one
shard only, a sum where a mean belongs, a shard counted twice: errors of
25% and more).
"""

import os
import socket

import numpy as np
import pytest
from integration.scripts import EXAMPLES, finish, start_script

SCRIPT = EXAMPLES / "data_parallel.py"
SMALL = [
    "--batch",
    "16",
    "--steps",
    "3",
    "--train-size",
    "64",
    "--test-size",
    "0",
    "--units",
    "16",
    "--max-length",
    "32",
]

# Runs an example end to end (20 s or more): with the slow set, which CI
# runs after the default suite.
pytestmark = pytest.mark.slow


def _environment(devices):
    """XLA_FLAGS (the inherited ones kept) for a CPU of `devices` devices."""
    flags = [
        flag
        for flag in os.environ.get("XLA_FLAGS", "").split()
        if not flag.startswith("--xla_force_host_platform_device_count")
    ]
    flags.append(f"--xla_force_host_platform_device_count={devices}")
    return {"XLA_FLAGS": " ".join(flags), "JAX_PLATFORMS": "cpu"}


def _run(run_script, devices, save_to, args=SMALL):
    out = run_script(
        SCRIPT,
        *args,
        "--save",
        save_to,
        env=_environment(devices),
        timeout=600,
    )
    return out, dict(np.load(save_to))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, run_script):
    directory = tmp_path_factory.mktemp("data_parallel")
    return {
        devices: _run(run_script, devices, directory / f"{devices}.npz")
        for devices in (4, 1)
    }


def test_runs_on_four_devices(runs):
    out, _ = runs[4]
    assert "devices: 4 (cpu" in out
    assert "4 per device" in out
    assert (
        "each device holds a (4, 32, 2) slice of the (16, 32, 2) strokes"
        in out
    )


def test_reports_its_own_one_device_comparison(runs):
    out, _ = runs[4]
    assert "first step on 4 devices vs one: loss" in out
    difference = float(out.split("max |gradient difference| ")[1].split()[0])
    assert difference < 1e-6


def _assert_same_step(saved, reference):
    """Loss to 1e-6 relative, each gradient to 1e-5 of its largest entry."""
    np.testing.assert_allclose(saved["loss"], reference["loss"], rtol=1e-6)
    names = [name for name in reference if name.startswith("grad")]
    assert len(names) == 5  # GRU kernel, recurrent kernel, bias; Dense's two
    for name in names:
        scale = np.max(np.abs(reference[name]))
        assert scale > 0, name
        np.testing.assert_allclose(
            saved[name],
            reference[name],
            rtol=0,
            atol=1e-5 * scale,
            err_msg=name,
        )


def test_loss_and_gradients_equal_one_device(runs):
    _assert_same_step(runs[4][1], runs[1][1])


def test_training_losses_follow_one_device(runs):
    """Three Adam steps later the losses still agree: rounding differences
    do not grow into a different trajectory."""
    sharded, single = runs[4][1], runs[1][1]
    np.testing.assert_allclose(
        sharded["train_losses"], single["train_losses"], rtol=1e-5
    )


@pytest.mark.slow
def test_defaults_on_four_devices(tmp_path, run_script):
    out, _ = _run(run_script, 4, tmp_path / "run.npz", args=[])
    accuracy = float(out.split("test accuracy: ")[1].split("%")[0])
    assert accuracy > 85, out


def _free_port():
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one(runs, tmp_path):
    """--distributed: two processes of two CPU devices each (coordinated by
    jax.distributed over localhost, collectives over Gloo) compute what one
    process of four devices does, from the rows each process feeds."""
    args = [
        *SMALL,
        "--distributed",
        "--coordinator",
        f"localhost:{_free_port()}",
        "--num-processes",
        "2",
    ]
    processes = [
        start_script(
            SCRIPT,
            *args,
            "--process-id",
            rank,
            "--save",
            tmp_path / "two.npz",
            env=_environment(2),
        )
        for rank in (0, 1)
    ]
    try:
        outputs = [finish(process, timeout=300) for process in processes]
    finally:
        for process in processes:
            process.kill()
    assert "devices: 4 (cpu, 2 process(es))" in outputs[0]
    assert "devices:" not in outputs[1]  # only process 0 reports
    # Gloo's all-reduce adds the shards in its own order: equal to the same
    # tolerance as one device against four.
    two = dict(np.load(tmp_path / "two.npz"))
    _assert_same_step(two, runs[4][1])
    np.testing.assert_allclose(
        two["train_losses"], runs[4][1]["train_losses"], rtol=1e-5
    )
