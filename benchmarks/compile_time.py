"""Compile time of `rnn` against its `unroll` setting.

`unroll=True` turns the scan into a Python loop: one program of T steps,
whose compile time grows with T. This prints a Markdown table of the time to
lower and compile the forward pass and the training step (`value_and_grad`
w.r.t. params and inputs) of an LSTM, for a few sequence lengths and
`unroll` settings, and the time of one call after compiling.

Run:
  python benchmarks/compile_time.py
  python benchmarks/compile_time.py --steps 16 64 --unroll 1 True
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn


def _unroll(text: str) -> bool | int:
    return True if text == "True" else int(text)


def measure(
    batch: int, steps: int, units: int, unroll: bool | int, train: bool
) -> tuple[float, float]:
    """Returns (seconds to lower and compile, median seconds per call)."""
    cell = jaxrnn.LSTMCell(units)
    params = cell.init(jax.random.key(0), units)
    x = jax.random.normal(jax.random.key(1), (batch, steps, units))

    def forward(params, x):
        return jaxrnn.rnn(cell, params, x, unroll=unroll)[0]

    def loss(params, x):
        return jnp.mean(forward(params, x) ** 2)

    fn = jax.value_and_grad(loss, (0, 1)) if train else forward
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(params, x).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(params, x))
    calls = []
    for _ in range(5):
        start = time.perf_counter()
        jax.block_until_ready(compiled(params, x))
        calls.append(time.perf_counter() - start)
    return compile_s, float(np.median(calls))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--steps", type=int, nargs="+", default=[16, 64, 128])
    parser.add_argument(
        "--unroll", type=_unroll, nargs="+", default=[1, 4, True]
    )
    args = parser.parse_args(argv)
    print(
        f"jax {jax.__version__}, {platform.machine()}, "
        f"{jax.devices()[0].device_kind}, LSTM B={args.batch} "
        f"D=H={args.units}\n"
    )
    print(
        "| T | unroll | forward compile s | forward ms | "
        "train compile s | train ms |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for steps in args.steps:
        for unroll in args.unroll:
            fwd_c, fwd_t = measure(
                args.batch, steps, args.units, unroll, train=False
            )
            trn_c, trn_t = measure(
                args.batch, steps, args.units, unroll, train=True
            )
            print(
                f"| {steps} | {unroll} | {fwd_c:.2f} | {fwd_t * 1e3:.1f} | "
                f"{trn_c:.2f} | {trn_t * 1e3:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
