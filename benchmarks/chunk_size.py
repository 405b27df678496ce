"""How the input projection is hoisted: per chunk of K steps vs the whole
sequence vs not at all (LSTM, forward and training step, interleaved); with
--blocks, the hand-written backward pass's block size instead
(`SPLIT_STEP_BLOCK_ROWS`; 0: one chunk per block).

Run: python benchmarks/chunk_size.py [--batch 32 --steps 128 --units 256]
     python benchmarks/chunk_size.py --batch 16 --steps 2048 --units 128 \
         --blocks 0 256 512 1024
"""

import argparse
import resource
import statistics
import time

import jax
import jax.numpy as jnp
from jax import lax

import jaxrnn
from jaxrnn import _engines, _fused_plan


def whole_sequence(cell, params, x):
    """One (T*B, D) x (D, 4H) GEMM, then a scan over the projected steps."""
    xs = jnp.swapaxes(x, 0, 1)
    projected = cell.project_inputs(params, xs)

    def step(carry, p):
        carry, y = cell.step_projected(params, carry, p)
        return carry, y

    _, ys = lax.scan(step, cell.initial_carry((x.shape[0],)), projected)
    return jnp.swapaxes(ys, 0, 1)


def not_hoisted(cell, params, x):
    """Keras' layout: the whole cell, input matmul included, in the scan."""

    def step(carry, x_t):
        return cell(params, carry, x_t)

    _, ys = lax.scan(
        step, cell.initial_carry((x.shape[0],)), jnp.swapaxes(x, 0, 1)
    )
    return jnp.swapaxes(ys, 0, 1)


def with_setting(module, name, value):
    """jaxrnn.rnn with the setting `module.<name>` set to `value` while it
    traces (`_engines.CHUNK_STEPS`, `_fused_plan.SPLIT_STEP_BLOCK_ROWS`)."""

    def run(cell, params, x):
        old = getattr(module, name)
        setattr(module, name, value)
        try:
            return jaxrnn.rnn(cell, params, x)[0]
        finally:
            setattr(module, name, old)

    return run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--chunks", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument(
        "--blocks",
        type=int,
        nargs="+",
        help="compare these SPLIT_STEP_BLOCK_ROWS instead",
    )
    args = parser.parse_args()
    cell = jaxrnn.LSTMCell(args.units)
    params = cell.init(jax.random.key(0), args.units)
    x = jax.random.normal(
        jax.random.key(1), (args.batch, args.steps, args.units)
    )
    variants = {"not hoisted": not_hoisted, "whole sequence": whole_sequence}
    if args.blocks:
        variants = {
            f"block rows={r}": with_setting(
                _fused_plan, "SPLIT_STEP_BLOCK_ROWS", r
            )
            for r in args.blocks
        }
    else:
        variants.update(
            {
                f"chunk K={k}": with_setting(_engines, "CHUNK_STEPS", k)
                for k in args.chunks
            }
        )
    programs = {}
    for name, fn in variants.items():
        forward = jax.jit(lambda p, x, fn=fn: fn(cell, p, x))
        train = jax.jit(
            jax.value_and_grad(
                lambda p, x, fn=fn: jnp.mean(fn(cell, p, x) ** 2), (0, 1)
            )
        )
        reference = forward(params, x)
        programs[name] = (forward, train)
        jax.block_until_ready(train(params, x))
        err = float(jnp.abs(reference - not_hoisted(cell, params, x)).max())
        assert err < 1e-4, (name, err)
    times = {(n, m): [] for n in programs for m in ("forward", "train")}
    faults = {(n, m): [] for n in programs for m in ("forward", "train")}
    for _ in range(args.repeats):
        for name, (forward, train) in programs.items():
            for mode, fn in (("forward", forward), ("train", train)):
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start = time.perf_counter()
                jax.block_until_ready(fn(params, x))
                times[name, mode].append(time.perf_counter() - start)
                faults[name, mode].append(
                    resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
                )
    print(
        f"LSTM B={args.batch} T={args.steps} D=H={args.units}, jax "
        f"{jax.__version__}, median of {args.repeats} interleaved runs"
    )
    print(
        f"{'variant':16s} {'forward ms':>11s} {'faults':>7s} {'train ms':>9s} {'faults':>7s}"
    )
    for name in programs:
        f = statistics.median(times[name, "forward"]) * 1e3
        t = statistics.median(times[name, "train"]) * 1e3
        print(
            f"{name:16s} {f:11.1f} {statistics.median(faults[name, 'forward']):7.0f} "
            f"{t:9.1f} {statistics.median(faults[name, 'train']):7.0f}"
        )


if __name__ == "__main__":
    main()
