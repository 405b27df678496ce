"""Where `rnn(..., parallel=True)` starts to pay: the crossover in T, per size.

For each cell and each step width B x H, times the sequential scan
(``parallel=False``) and the associative scan (``parallel=True``) at growing
T, forward and one training step (MSE loss, gradients, SGD update; the
programs of `benchmarks/parallel_scan.py`), and reports the speedup of
parallel over sequential at every T and where it crosses 1: parallel may
win from some T on (narrow steps), or only up to some T (wider steps, whose
(T, B, H) arrays fall out of cache at long T). The two runs of a cell are
interleaved sample by sample so that a busy machine slows both alike, a
sample repeats a call until it lasts about 2 ms (``--sample-ms``), so that
small T is not all dispatch noise, and each time is the best of the
samples: on a shared machine other jobs only ever add time, so the minimum
of many short samples is the least disturbed estimate (medians moved by 2x
between runs on a loaded 2-core CPU).

Run: python benchmarks/parallel_crossover.py [--cells min_gru lru
     --sizes 1x16 1x64 8x16 8x64 --steps 16 64 256 1024 4096 16384
     --repeats 15 --sample-ms 2]
     python benchmarks/parallel_crossover.py --smoke   # seconds, checks it runs
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax
import jax.numpy as jnp
import numpy as np
from parallel_scan import CELLS, machine, programs


def size(text: str) -> tuple[int, int]:
    """'8x64' -> (8, 64): batch B and width H (= D)."""
    try:
        batch, units = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a size is BxH such as 8x64, got {text!r}"
        ) from None
    if batch < 1 or units < 1:
        raise argparse.ArgumentTypeError(
            f"B and H must be positive, got {text!r}"
        )
    return batch, units


def calls_per_sample(pair, seconds) -> int:
    """How many calls make a sample of about `seconds` for the slower of a
    pair of jobs (at least one). Both jobs of a pair make the same number
    of calls: a sample of many calls overlaps dispatch with work, one of a
    single call does not, so unequal counts would bias the ratio."""
    once = max(min(sample(fn, args, 1) for _ in range(3)) for fn, args in pair)
    return max(1, min(1000, round(seconds / max(once, 1e-7))))


def sample(fn, args, calls) -> float:
    """Seconds per call, over `calls` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / calls


def speedups(name, batch, units, steps, repeats, sample_seconds):
    """(forward speedup, training speedup, max abs difference of outputs)."""
    cell = CELLS[name](units)
    params = cell.init(jax.random.key(0), units)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch, steps, units)), jnp.float32)
    target = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
    programs_of = {
        parallel: programs(cell, parallel) for parallel in (False, True)
    }
    jobs = {}
    for i, (kind, args) in enumerate(
        (("fwd", (params, x)), ("train", (params, x, target)))
    ):
        pair = [(programs_of[parallel][i], args) for parallel in (False, True)]
        for fn, _ in pair:
            jax.block_until_ready(fn(*args))  # compile
        calls = calls_per_sample(pair, sample_seconds)
        for parallel, (fn, _) in zip((False, True), pair):
            jobs[parallel, kind] = (fn, args, calls)
    error = float(
        jnp.max(
            jnp.abs(
                jobs[True, "fwd"][0](params, x)
                - jobs[False, "fwd"][0](params, x)
            )
        )
    )
    times = {job: [] for job in jobs}
    for _ in range(repeats):
        for job, (fn, args, calls) in jobs.items():  # interleaved
            times[job].append(sample(fn, args, calls))
    best = {job: min(t) for job, t in times.items()}
    return (
        best[False, "fwd"] / best[True, "fwd"],
        best[False, "train"] / best[True, "train"],
        error,
    )


def crossover(steps, ratios) -> str:
    """The T at which parallel is faster, as a phrase: every T, T >= X (it
    wins from X on), T <= X (it wins up to X: wide steps, whose (T, B, H)
    arrays fall out of cache at long T), no T, or a list."""
    won = [ratio > 1.0 for ratio in ratios]
    if all(won):
        return "every T tried"
    if not any(won):
        return "no T tried"
    first, last = won.index(True), len(won) - 1 - won[::-1].index(True)
    if all(won[first : last + 1]):
        if last == len(won) - 1:
            return f"T >= {steps[first]}"
        if first == 0:
            return f"T <= {steps[last]}"
    return "T = " + ", ".join(str(t) for t, w in zip(steps, won) if w)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--cells", nargs="+", default=["min_gru", "lru"], choices=sorted(CELLS)
    )
    parser.add_argument(
        "--sizes",
        nargs="+",
        type=size,
        default=[(1, 16), (1, 64), (8, 16), (8, 64)],
        help="step widths BxH (H = D)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        nargs="+",
        default=[16, 64, 256, 1024, 4096, 16384],
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--sample-ms",
        type=float,
        default=2.0,
        help="the least length of a timed sample",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, one repeat: checks the script runs",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.steps, args.repeats = [(2, 8)], [8, 32], 1
    print(machine())
    print(
        f"float32, best of {args.repeats} interleaved samples of at "
        f"least {args.sample_ms:g} ms; speedup = sequential time / "
        "parallel time; 'train' is loss + grads + SGD."
    )
    header = " | ".join(f"T={t}" for t in args.steps)
    lines = [
        f"| cell | B x H | mode | {header} | parallel faster at |",
        "|---|---|---|" + "---:|" * len(args.steps) + "---|",
    ]
    worst_error = 0.0
    for name in args.cells:
        for batch, units in args.sizes:
            ratios = {"fwd": [], "train": []}
            for steps in args.steps:
                fwd, train, error = speedups(
                    name,
                    batch,
                    units,
                    steps,
                    args.repeats,
                    args.sample_ms / 1e3,
                )
                ratios["fwd"].append(fwd)
                ratios["train"].append(train)
                worst_error = max(worst_error, error)
                print(
                    f"  {name} {batch}x{units} T={steps}: forward "
                    f"{fwd:.2f}x, training {train:.2f}x",
                    flush=True,
                )
            for kind, label in (("fwd", "forward"), ("train", "training")):
                cells = " | ".join(f"{r:.2f}x" for r in ratios[kind])
                lines.append(
                    f"| {name} | {batch} x {units} | {label} | "
                    f"{cells} | {crossover(args.steps, ratios[kind])} |"
                )
    print()
    print("\n".join(lines))
    print(
        f"\nlargest |parallel - sequential| forward difference: "
        f"{worst_error:.1e}"
    )
    print(machine())  # the load average at the end, beside the start's
    return 0


if __name__ == "__main__":
    sys.exit(main())
