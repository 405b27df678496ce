"""What `rnn`'s options and a few XLA:CPU settings cost, on one size.

In one process, interleaved: the default call against `time_major=True`
inputs, a cell with `precision="highest"`, `unroll=2` and `unroll=4`, an
all-valid mask, right-padded random lengths given as `mask` and as
`seq_lengths`, and `remat=True` (LSTM, forward and training step). With
--xla-flags, each flag set instead runs the default call in a process of
its own (XLA reads its flags once per process), alternating with a process
without flags.

Run: python benchmarks/options.py [--batch 32 --steps 128 --units 256]
     python benchmarks/options.py --xla-flags \
         xla_cpu_multi_thread_eigen=false xla_cpu_enable_fast_math=true
(flags without their leading dashes, which argparse would take for options;
several flags in one setting separated by spaces, in one quoted argument)
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn


def variants(args):
    """name -> (cell, inputs, rnn keyword arguments)."""
    cell = jaxrnn.LSTMCell(args.units)
    x = jax.random.normal(
        jax.random.key(1), (args.batch, args.steps, args.units)
    )
    lengths = jnp.asarray(
        np.random.default_rng(0).integers(
            args.steps // 2, args.steps + 1, args.batch
        )
    )
    mask = jaxrnn.lengths_to_mask(lengths, args.steps)
    everything = {
        "default": (cell, x, {}),
        "time_major=True": (cell, jnp.swapaxes(x, 0, 1), {"time_major": True}),
        "precision=highest": (
            jaxrnn.LSTMCell(args.units, precision="highest"),
            x,
            {},
        ),
        "unroll=2": (cell, x, {"unroll": 2}),
        "unroll=4": (cell, x, {"unroll": 4}),
        "mask, all valid": (cell, x, {"mask": jnp.ones_like(mask)}),
        "mask, right-padded": (cell, x, {"mask": mask}),
        "seq_lengths": (cell, x, {"seq_lengths": lengths}),
        "remat=True": (cell, x, {"remat": True}),
    }
    return {name: everything[name] for name in args.only or everything}


def measure(args) -> dict:
    """(name, mode) -> median ms, interleaved over the variants."""
    params = jaxrnn.LSTMCell(args.units).init(jax.random.key(0), args.units)
    programs = {}
    for name, (cell, x, options) in variants(args).items():
        # Masks and lengths are arguments, as in training: a closed-over
        # mask would be folded into the program.
        arrays = {k: v for k, v in options.items() if isinstance(v, jax.Array)}
        static = {k: v for k, v in options.items() if k not in arrays}

        def forward(p, x, arrays, cell=cell, static=static):
            return jaxrnn.rnn(cell, p, x, **arrays, **static)[0]

        train = jax.value_and_grad(
            lambda p, x, arrays, forward=forward: jnp.mean(
                forward(p, x, arrays) ** 2
            ),
            (0, 1),
        )
        for mode, fn in (("forward", forward), ("train", train)):
            compiled = jax.jit(fn).lower(params, x, arrays).compile()
            jax.block_until_ready(compiled(params, x, arrays))
            programs[name, mode] = (compiled, (params, x, arrays))
    times = {key: [] for key in programs}
    for _ in range(args.repeats):
        for key, (compiled, inputs) in programs.items():
            start = time.perf_counter()
            jax.block_until_ready(compiled(*inputs))
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(t) * 1e3 for key, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--only", nargs="+", help="variants to run")
    parser.add_argument(
        "--xla-flags",
        nargs="+",
        help="compare these XLA_FLAGS settings instead, "
        "each flag without its leading --",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="with --xla-flags: processes per flag set",
    )
    args = parser.parse_args()
    size = f"LSTM B={args.batch} T={args.steps} D=H={args.units}"
    if not args.xla_flags:
        medians = measure(args)
        print(
            f"{size}, jax {jax.__version__}, median of {args.repeats} "
            "interleaved runs"
        )
        print(f"{'variant':20s} {'forward ms':>11s} {'train ms':>9s}")
        for name in dict.fromkeys(name for name, _ in medians):
            print(
                f"{name:20s} {medians[name, 'forward']:11.2f} "
                f"{medians[name, 'train']:9.2f}"
            )
        return
    settings = [
        " ".join("--" + flag.lstrip("-") for flag in setting.split())
        for setting in args.xla_flags
    ]
    runs = {flags: [] for flags in ["", *settings]}
    for _ in range(args.rounds):
        for flags in runs:
            env = {**os.environ, "XLA_FLAGS": flags}
            command = [
                sys.executable,
                __file__,
                "--batch",
                str(args.batch),
                "--steps",
                str(args.steps),
                "--units",
                str(args.units),
                "--repeats",
                str(args.repeats),
                "--only",
                "default",
            ]
            out = subprocess.run(
                command, env=env, capture_output=True, text=True, check=True
            ).stdout
            forward, train = out.strip().splitlines()[-1].split()[1:3]
            runs[flags].append((float(forward), float(train)))
    print(
        f"{size}, jax {jax.__version__}, median over {args.rounds} "
        f"alternating processes of {args.repeats} runs each"
    )
    print(f"{'XLA_FLAGS':45s} {'forward ms':>11s} {'train ms':>9s}")
    for flags, results in runs.items():
        forward = statistics.median(r[0] for r in results)
        train = statistics.median(r[1] for r in results)
        print(f"{flags or '(none)':45s} {forward:11.2f} {train:9.2f}")


if __name__ == "__main__":
    main()
