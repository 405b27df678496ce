r"""Data-parallel training: the batch split over every device with jax.sharding.

The stroke classifier of ``classify_sequences.py`` (a masked GRU and a Dense
layer), trained with each batch sharded along its first axis over a 1-D
`jax.sharding.Mesh` of all devices (``NamedSharding(mesh, P('data'))``),
and the params and optimizer state replicated (``P()``). The train step is
an ordinary `jax.jit` function given these shardings: XLA runs each device
on its slice of the batch and all-reduces the gradients, so the update is the
one-device update (up to the order of float32 sums, which the script
measures against a one-device run of the same step).

Run on the devices you have (GPUs, TPUs), or on a CPU split into four:

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python examples/data_parallel.py

(``--cpu-devices 4`` does the same through ``jax_num_cpu_devices``.) The
global batch must be a multiple of the device count.

Many hosts: start this same program on every host with ``--distributed``,
which calls ``jax.distributed.initialize()`` before anything else touches
the devices. On Cloud TPU, SLURM, Open MPI and Kubernetes it finds the
coordinator, the process count and its own id by itself; elsewhere pass
them, the same address everywhere and a different id on each host::

    python examples/data_parallel.py --distributed --coordinator host0:1234 \
        --num-processes 2 --process-id 0        # 1 on the second host

Then `jax.devices()` lists every host's devices, so the same mesh spans
them all, and each process feeds only its own devices: `global_batch` asks
the sharding which rows this process's devices hold and builds the global
array from them with `jax.make_array_from_process_local_data`. Every host
generates the same seeded data here; with real data, each host reads only
its share. Only process 0 prints.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

import jax
import numpy as np
import optax

# The model and data of the masked-sequence classification example.
from classify_sequences import (
    SHAPES,
    init_params,
    logits_fn,
    make_dataset,
    make_model,
    predict,
)
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--batch",
        type=int,
        default=64,
        help="global batch, a multiple of the device count",
    )
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--train-size", type=int, default=4096)
    parser.add_argument(
        "--test-size", type=int, default=1000, help="test strokes (0: no test)"
    )
    parser.add_argument("--max-length", type=int, default=80)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cpu-devices", type=int, help="split the CPU into this many devices"
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: call jax.distributed.initialize()",
    )
    parser.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="with --distributed: process 0's address "
        "(detected on known clusters)",
    )
    parser.add_argument(
        "--num-processes",
        type=int,
        help="with --distributed: how many processes",
    )
    parser.add_argument(
        "--process-id",
        type=int,
        help="with --distributed: this process's id, from 0",
    )
    parser.add_argument(
        "--save",
        metavar="PATH",
        help="save the first step's loss and gradients and "
        "every step's loss (npz), to compare runs",
    )
    return parser.parse_args(argv)


def loss_fn(params, model, strokes, lengths, labels):
    logits = logits_fn(model, params, strokes, lengths)
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, labels
    ).mean()


def make_steps(
    model, optimizer, replicated: NamedSharding, sharded: NamedSharding
):
    """Returns (loss_and_grads, apply_grads), jitted for these shardings.

    `loss_and_grads` is where the data parallelism happens: params come in
    replicated, the batch (strokes, lengths, labels) split along its first
    axis, and the gradients go out replicated, so XLA all-reduces them.
    Two functions rather than one fused step so the script can show the
    gradients; one jitted step with the same shardings works the same way.
    """

    def loss_and_grads(params, strokes, lengths, labels):
        return jax.value_and_grad(loss_fn)(
            params, model, strokes, lengths, labels
        )

    def apply_grads(params, opt_state, grads):
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return (
        jax.jit(
            loss_and_grads,
            in_shardings=(replicated, sharded, sharded, sharded),
            out_shardings=replicated,
        ),
        jax.jit(
            apply_grads, in_shardings=replicated, out_shardings=replicated
        ),
    )


def global_batch(sharding: NamedSharding, *arrays: np.ndarray) -> list:
    """Global arrays sharded by `sharding`, each process giving its rows.

    Every process holds the whole batch here; `sharding` says which rows
    its own devices hold, and only those are handed to JAX. With one process
    that is every row.
    """
    rows = sharding.addressable_devices_indices_map(arrays[0].shape).values()
    local = np.unique(
        np.concatenate(
            [np.arange(arrays[0].shape[0])[index[0]] for index in rows]
        )
    )
    return [
        jax.make_array_from_process_local_data(
            sharding, array[local], array.shape
        )
        for array in arrays
    ]


def local_copy(tree):
    """A replicated pytree as numpy arrays, from this process's first device
    (on many hosts, no process can address the whole global array)."""
    return jax.tree.map(
        lambda leaf: np.asarray(leaf.addressable_data(0)), tree
    )


def max_difference(a, b) -> float:
    return max(
        float(np.max(np.abs(np.asarray(u) - np.asarray(v))))
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def one_device_loss_and_grads(model, params, batch, device):
    """The same loss and gradients computed on `device` alone."""
    on_device = jax.device_put((local_copy(params), batch), device)
    return jax.jit(jax.value_and_grad(loss_fn), static_argnums=1)(
        on_device[0], model, *on_device[1]
    )


def set_up_devices(args) -> tuple[list, NamedSharding, NamedSharding]:
    """Returns (devices, replicated sharding, batch-split sharding)."""
    if args.distributed:
        # None leaves a value to the cluster's detection.
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    if args.cpu_devices:
        jax.config.update("jax_num_cpu_devices", args.cpu_devices)
    devices = jax.devices()
    if args.batch % len(devices):
        raise SystemExit(
            f"--batch {args.batch} must be a multiple of the "
            f"device count, {len(devices)}."
        )
    mesh = Mesh(np.array(devices), ("data",))
    # P(): the same whole array on every device; P("data"): the first axis
    # cut in len(devices) consecutive blocks, one per device.
    return devices, NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))


def check_first_batch(
    model, params, batch, loss_and_grads, sharded, devices, say
) -> dict:
    """Runs the sharded loss and gradients on `batch` and, with several
    devices, compares them with the same computation on one device.

    Returns:
      The sharded loss and gradients as numpy arrays, named for ``np.savez``.
    """
    global_arrays = global_batch(sharded, *batch)
    say(
        f"each device holds a {global_arrays[0].addressable_shards[0].data.shape}"
        f" slice of the {global_arrays[0].shape} strokes"
    )
    loss, grads = local_copy(loss_and_grads(params, *global_arrays))
    if len(devices) > 1:
        # This process's own first device: on many hosts, devices[0]
        # belongs to process 0 and no other process may run on it.
        one_loss, one_grads = one_device_loss_and_grads(
            model, params, batch, jax.local_devices()[0]
        )
        say(
            f"first step on {len(devices)} devices vs one: loss "
            f"{float(loss):.6f} vs {float(one_loss):.6f}, max |gradient "
            f"difference| {max_difference(grads, one_grads):.1e}"
        )
    return {
        "loss": loss,
        **{
            "grad" + jax.tree_util.keystr(path): leaf
            for path, leaf in jax.tree_util.tree_leaves_with_path(grads)
        },
    }


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    devices, replicated, sharded = set_up_devices(args)
    say = print if jax.process_index() == 0 else (lambda *_, **__: None)
    say(
        f"devices: {len(devices)} ({devices[0].platform}, "
        f"{jax.process_count()} process(es)); global batch {args.batch}, "
        f"{args.batch // len(devices)} per device"
    )

    rng = np.random.default_rng(args.seed)
    data = make_dataset(args.train_size, 20, args.max_length, 0.02, rng)
    model = make_model(args.units)
    params = jax.device_put(
        init_params(model, jax.random.key(args.seed), args.max_length),
        replicated,
    )
    optimizer = optax.adam(args.lr)
    opt_state = jax.device_put(optimizer.init(params), replicated)
    loss_and_grads, apply_grads = make_steps(
        model, optimizer, replicated, sharded
    )
    saved = check_first_batch(
        model,
        params,
        [a[: args.batch] for a in data],
        loss_and_grads,
        sharded,
        devices,
        say,
    )

    started, losses = time.perf_counter(), []
    for step in range(1, args.steps + 1):
        rows = rng.choice(args.train_size, args.batch, replace=False)
        loss, grads = loss_and_grads(
            params, *global_batch(sharded, *(array[rows] for array in data))
        )
        params, opt_state = apply_grads(params, opt_state, grads)
        losses.append(float(local_copy(loss)))
        if step % max(1, args.steps // 5) == 0 or step == args.steps:
            say(f"step {step:4d}: loss {np.mean(losses[-20:]):.3f}")
    say(f"trained {args.steps} steps in {time.perf_counter() - started:.1f} s")
    if args.save and jax.process_index() == 0:
        # Written beside the target and renamed over it: a crash midway
        # leaves any earlier file whole.
        partial = f"{args.save}.partial"
        with open(partial, "wb") as f:
            np.savez(f, **saved, train_losses=np.array(losses))
        os.replace(partial, args.save)

    accuracy = None
    if args.test_size:
        strokes, lengths, labels = make_dataset(
            args.test_size, 20, args.max_length, 0.02, rng
        )
        accuracy = float(
            np.mean(
                predict(model, local_copy(params), strokes, lengths) == labels
            )
        )
        say(f"test accuracy: {accuracy:.1%} ({len(SHAPES)} classes)")
    return {"devices": len(devices), "accuracy": accuracy, "losses": losses}


if __name__ == "__main__":
    main()
