"""Sequential scan vs parallel (associative) scan for the linear cells.

Times ``jaxrnn.rnn(cell, ..., parallel=False)`` (``lax.scan``, T dependent
steps) against ``parallel=True`` (``lax.associative_scan``, O(log T) depth)
for MinGRUCell, its log-space variant, LRUCell, RGLRUCell and MLSTMCell
(chunkwise, not an associative scan), forward and one training
step (loss, gradients and an Adam-free SGD update), at growing T. Runs on
whatever device JAX picks (CPU, GPU or TPU); the two runs of a row are
interleaved so that a busy machine slows both alike.

Run: python benchmarks/parallel_scan.py [--batch 8 --units 64
     --steps 256 1024 4096 16384 --cells min_gru lru --repeats 7]
     python benchmarks/parallel_scan.py --smoke     # seconds, checks it runs
     python benchmarks/parallel_scan.py --min-speedup 10 --at 4096  # exit 1
                                                    # if parallel is slower
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax
import jax.numpy as jnp
import numpy as np

from jaxrnn import (
    LRUCell,
    MinGRUCell,
    MinLSTMCell,
    MLSTMCell,
    RGLRUCell,
    rnn,
)

CELLS = {
    "min_gru": lambda h: MinGRUCell(h),
    "min_gru_log": lambda h: MinGRUCell(h, log_space=True),
    "min_lstm": lambda h: MinLSTMCell(h),
    "lru": lambda h: LRUCell(h, r_min=0.9, r_max=0.999),
    "rg_lru": lambda h: RGLRUCell(h, num_heads=4 if h % 4 == 0 else 1),
    # Chunkwise: quadratic in 64-step chunks, recurrent across them.
    "mlstm": lambda h: MLSTMCell(h, num_heads=4 if h % 4 == 0 else 1),
}


def machine() -> str:
    device = jax.devices()[0]
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                line.split(":", 1)[1].strip()
                for line in f
                if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    load = (
        " load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
        if hasattr(os, "getloadavg")
        else ""
    )
    return (
        f"jax {jax.__version__}, {device.platform} ({device.device_kind}), "
        f"{os.cpu_count()} CPU cores ({cpu}),{load}"
    )


def programs(cell, parallel):
    """(forward, train_step), jitted."""

    def forward(params, x):
        return rnn(cell, params, x, parallel=parallel)[0]

    def loss(params, x, target):
        return jnp.mean((forward(params, x) - target) ** 2)

    def train_step(params, x, target):
        value, grads = jax.value_and_grad(loss)(params, x, target)
        params = jax.tree.map(lambda p, g: p - 1e-3 * g, params, grads)
        return params, value

    return jax.jit(forward), jax.jit(train_step)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def bench_row(name, steps, args):
    cell = CELLS[name](args.units)
    params = cell.init(jax.random.key(0), args.units)
    rng = np.random.default_rng(0)
    x = jnp.asarray(
        rng.normal(size=(args.batch, steps, args.units)), jnp.float32
    )
    target = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
    runs = {}
    for parallel in (False, True):
        forward, train = programs(cell, parallel)
        compile_s = timed(forward, params, x) + timed(train, params, x, target)
        runs[parallel] = (forward, train, compile_s)
    error = float(
        jnp.max(jnp.abs(runs[True][0](params, x) - runs[False][0](params, x)))
    )
    times = {(p, k): [] for p in (False, True) for k in ("fwd", "train")}
    for _ in range(args.repeats):
        for parallel in (False, True):  # interleaved
            forward, train, _ = runs[parallel]
            times[parallel, "fwd"].append(timed(forward, params, x))
            times[parallel, "train"].append(timed(train, params, x, target))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "cell": name,
        "steps": steps,
        "error": error,
        "seq_fwd": med[False, "fwd"],
        "par_fwd": med[True, "fwd"],
        "seq_train": med[False, "train"],
        "par_train": med[True, "train"],
        "compile_seq": runs[False][2],
        "compile_par": runs[True][2],
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}" if seconds < 1 else f"{seconds * 1e3:.0f}"


def table(rows) -> str:
    lines = [
        "| cell | T | fwd seq ms | fwd par ms | fwd speedup | "
        "train seq ms | train par ms | train speedup | max abs diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['cell']} | {r['steps']} | {ms(r['seq_fwd'])} | "
            f"{ms(r['par_fwd'])} | {r['seq_fwd'] / r['par_fwd']:.2f}x | "
            f"{ms(r['seq_train'])} | {ms(r['par_train'])} | "
            f"{r['seq_train'] / r['par_train']:.2f}x | {r['error']:.1e} |"
        )
    return "\n".join(lines)


def wins(rows, cell, kind) -> str:
    """The T at which parallel is faster, as a phrase."""
    won = [
        r["steps"]
        for r in rows
        if r["cell"] == cell and r[f"par_{kind}"] < r[f"seq_{kind}"]
    ]
    tried = [r["steps"] for r in rows if r["cell"] == cell]
    if not won:
        return "at no T tried"
    if won == tried:
        return "at every T tried"
    return "at T = " + ", ".join(map(str, won))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument(
        "--steps", type=int, nargs="+", default=[256, 1024, 4096, 16384]
    )
    parser.add_argument(
        "--cells", nargs="+", default=["min_gru", "lru"], choices=sorted(CELLS)
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, one repeat: checks the script runs",
    )
    parser.add_argument(
        "--min-speedup",
        type=float,
        default=None,
        help="exit 1 unless forward parallel is this many "
        "times faster at --at steps",
    )
    parser.add_argument("--at", type=int, default=4096)
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.repeats, args.batch, args.units = [16, 64], 1, 2, 8
    print(machine())
    print(
        f"B={args.batch}, H=D={args.units}, float32, median of "
        f"{args.repeats} interleaved runs; 'train' is loss + grads + SGD."
    )
    rows = []
    for name in args.cells:
        for steps in args.steps:
            rows.append(bench_row(name, steps, args))
            r = rows[-1]
            print(
                f"  {name} T={steps}: fwd {ms(r['seq_fwd'])} -> "
                f"{ms(r['par_fwd'])} ms, train {ms(r['seq_train'])} -> "
                f"{ms(r['par_train'])} ms (compile {r['compile_seq']:.1f} s"
                f" / {r['compile_par']:.1f} s)",
                flush=True,
            )
    print()
    print(table(rows))
    print()
    for name in args.cells:
        print(
            f"{name}: parallel is faster forward {wins(rows, name, 'fwd')}"
            f", training {wins(rows, name, 'train')}"
        )
    if args.min_speedup is not None:
        at = [r for r in rows if r["steps"] == args.at]
        worst = min((r["seq_fwd"] / r["par_fwd"] for r in at), default=0.0)
        ok = worst >= args.min_speedup
        print(
            f"forward speedup at T={args.at}: {worst:.1f}x "
            f"({'PASS' if ok else 'FAIL'}: needs {args.min_speedup}x)"
        )
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
