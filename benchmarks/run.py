"""jaxrnn side by side with Flax (linen, NNX), Equinox, Haiku, Keras 3 (JAX
backend), PyTorch and a hand-written JAX reference; on a GPU also
jax.experimental.rnn's cuDNN LSTM, and PyTorch runs on CUDA.

LSTM and GRU, forward and training step, at four sizes plus a masked
(variable-length) and a bidirectional case. Every row is checked against
jaxrnn on the same weights before it is timed; rows of a workload are timed
round-robin in one process. Peers that are not installed are skipped with
the reason. The results files are rewritten after each workload, so a run
cut short keeps what it measured.

Run:
  python benchmarks/run.py                 # everything; writes RESULTS.md
  python benchmarks/run.py --smoke         # tiny sizes, 2 repetitions
  python benchmarks/run.py --sizes mid,long --cells LSTM --repeats 5
  python benchmarks/run.py --sizes large --merge   # re-measure one size
  python benchmarks/run.py --report                # re-render results.json
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
HERE = Path(__file__).resolve().parent
sys.path.insert(1, str(HERE.parent))  # jaxrnn from this checkout

import harness  # noqa: E402
import jax  # noqa: E402
import peers  # noqa: E402
import report  # noqa: E402
from workloads import SIZES, SMOKE_SIZES, make_data, workloads  # noqa: E402

from jaxrnn.interop._atomic import atomic_path  # noqa: E402

PACKAGES = [
    "jax",
    "jaxlib",
    "numpy",
    "flax",
    "equinox",
    "dm-haiku",
    "keras",
    "torch",
    "matplotlib",
]
# Named only where installed (a GPU machine's JAX).
GPU_PACKAGES = ["jax-cuda13-plugin", "jax-cuda12-plugin"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, 2 repetitions, no files unless --out",
    )
    parser.add_argument(
        "--sizes",
        help="comma-separated cases: "
        + ", ".join(SIZES)
        + " (smoke: "
        + ", ".join(SMOKE_SIZES)
        + ")",
    )
    parser.add_argument("--cells", default="LSTM,GRU")
    parser.add_argument(
        "--peers", help="comma-separated: " + ", ".join(peers.PEERS)
    )
    parser.add_argument(
        "--repeats",
        type=int,
        help="timed repetitions per row (default 10; smoke 2)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=20.0,
        help="seconds of timing per row before its "
        "repetitions are lowered (at least 3 are kept)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for results.json, results.png/.svg and the "
        "RESULTS.md section (default: benchmarks/; smoke: none)",
    )
    parser.add_argument(
        "--precision",
        choices=("highest", "default"),
        default="highest",
        help="float32 matmuls on a GPU: highest (true "
        "float32, checked to 1e-4) or default (TF32 for "
        "JAX, cuDNN and torch alike, checked to "
        f"{harness.TF32_TOLERANCE:g}); the CPU computes "
        "float32 either way",
    )
    parser.add_argument(
        "--results",
        help="name of the results files "
        "(NAME.json, .png, .svg): default results on the CPU, "
        "results-gpu on a GPU, whose RESULTS.md section is "
        "its own",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other workloads of OUT/NAME.json",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="measure nothing: rewrite the table, chart and "
        "RESULTS.md section from OUT/NAME.json",
    )
    args = parser.parse_args(argv)
    known = SMOKE_SIZES if args.smoke else SIZES
    args.sizes = args.sizes.split(",") if args.sizes else list(known)
    args.cells = args.cells.split(",")
    args.peers = args.peers.split(",") if args.peers else list(peers.PEERS)
    for name, chosen, valid in (
        ("--sizes", args.sizes, known),
        ("--cells", args.cells, ("LSTM", "GRU")),
        ("--peers", args.peers, peers.PEERS),
    ):
        unknown = sorted(set(chosen) - set(valid))
        if unknown:
            parser.error(
                f"{name}: unknown {unknown}; choose from {list(valid)}"
            )
    if args.repeats is None:
        args.repeats = 2 if args.smoke else 10
    if args.out is None and not args.smoke:
        args.out = HERE
    if args.results is None:
        backend = jax.default_backend()
        args.results = "results" if backend == "cpu" else f"results-{backend}"
    return args


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    memory = "unknown memory"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for name in PACKAGES + GPU_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if name in PACKAGES:
                versions[name] = "not installed"
    device = jax.devices()[0]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "platform": device.platform,
        "device": (
            getattr(device, "device_kind", device.platform)
            if device.platform != "cpu"
            else None
        ),
        "versions": versions,
    }


def set_precision(precision: str) -> float:
    """Sets float32 matmul precision for JAX and torch; returns the check's
    tolerance. On a CPU both compute float32 whatever is asked."""
    accelerated = jax.default_backend() != "cpu"
    highest = precision == "highest"
    jax.config.update(
        "jax_default_matmul_precision", "highest" if highest else None
    )
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.backends.cuda.matmul.allow_tf32 = not highest
        torch.backends.cudnn.allow_tf32 = not highest
    return (
        harness.TF32_TOLERANCE
        if accelerated and not highest
        else harness.TOLERANCE
    )


def measure(args, after_workload=None) -> tuple[list[dict], dict]:
    """Runs every workload; returns (row dicts, metadata with one run).
    `after_workload(rows, meta)` sees what is measured so far after each
    workload."""
    meta = machine()
    tolerance = set_precision(args.precision)
    meta["precision"], meta["tolerance"] = args.precision, tolerance
    size, tries = (
        (256, 3)
        if args.smoke
        else (2048, 10)
        if meta["platform"] == "cpu"
        else (8192, 10)
    )
    run = {
        "command": "python benchmarks/run.py " + shlex.join(sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "load_before": os.getloadavg(),
        "peak": harness.matmul_peak_gflops(size, tries),
    }
    try:
        import torch

        meta["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    print(
        f"{meta['cpu']}, {meta['cores']} cores"
        + (f", {meta['device']}" if meta["device"] else "")
        + "; matmul peak "
        f"{run['peak']['jax_gflops']:.1f} GFLOP/s; load average "
        f"{run['load_before'][0]:.1f}",
        flush=True,
    )
    rows = []
    for workload in workloads(args.cells, args.sizes):
        start = time.perf_counter()
        print(f"\n{workload.label}", flush=True)
        data = make_data(workload)
        cache: dict = {}
        built = []
        for name in args.peers:
            built += harness.build_rows(
                name,
                workload,
                data,
                cache,
                lambda text: print(text, flush=True),
                tolerance,
            )
        harness.time_rows(built, args.repeats, args.budget)
        for row in built:
            rows.append(
                {**row.as_dict(), "peak_gflops": run["peak"]["jax_gflops"]}
            )
        done = report.summarise(
            [r for r in rows if r["label"] == workload.label]
        )
        for _, lines, _ in report.full_lines(done):
            print(report.text_table(report.ROW_HEADER, lines))
        print(f"({time.perf_counter() - start:.0f} s)", flush=True)
        run["load_after"] = os.getloadavg()
        run["workloads"] = list(dict.fromkeys(r["label"] for r in rows))
        meta["runs"] = [run]
        if after_workload is not None:
            after_workload(rows, meta)
    return rows, meta


def merged(
    rows: list[dict], meta: dict, path: Path
) -> tuple[list[dict], dict]:
    """Adds the rows (and runs) of other workloads from an earlier
    results.json, in the canonical case order."""
    if not path.exists():
        return rows, meta
    earlier = json.loads(path.read_text())
    new = {r["label"] for r in rows}
    old = [r for r in earlier["rows"] if r["label"] not in new]
    kept = {r["label"] for r in old}
    runs = [
        dict(run, workloads=[w for w in run["workloads"] if w in kept])
        for run in earlier["meta"]["runs"]
    ]
    meta = {**meta, "runs": [r for r in runs if r["workloads"]] + meta["runs"]}
    order = list(SIZES) + list(SMOKE_SIZES)
    rows = sorted(
        old + rows,
        key=lambda r: (
            order.index(r["workload"]["case"]),
            r["workload"]["cell"] != "LSTM",
        ),
    )
    return rows, meta


def write(
    rows: list[dict],
    meta: dict,
    summary: list[dict],
    out: Path,
    name: str = "results",
) -> str | None:
    """Writes OUT/NAME.json, the chart (for benchmarks/results.json also
    the docs' own, docs/figures/benchmarks.svg) and the RESULTS.md section;
    returns the chart's file name (None without matplotlib)."""
    out.mkdir(parents=True, exist_ok=True)
    # One row per line: small enough to keep, and --merge reads it back.
    lines = ",\n".join(json.dumps(row, default=float) for row in rows)
    with atomic_path(out / f"{name}.json") as tmp:  # --merge reads it back.
        Path(tmp).write_text(
            f'{{"meta": {json.dumps(meta, indent=1)},\n"rows": [\n{lines}\n]}}\n'
        )
    chart_name = (
        f"{name}.png"
        if report.chart(summary, out / f"{name}.png", out / f"{name}.svg")
        else None
    )
    # The docs show the CPU results kept in benchmarks/, not a GPU run's or
    # a run written elsewhere with --out.
    if chart_name and out.resolve() == HERE and name == "results":
        report.docs_chart(summary, report.DOCS_CHART)
    report.write_section(
        out / "RESULTS.md",
        report.markdown(summary, meta, chart_name),
        meta.get("platform", "cpu"),
    )
    return chart_name


def save(
    args, rows: list[dict], meta: dict
) -> tuple[list[dict], dict, list[dict], str | None]:
    """Writes `rows` (with --merge, beside the other workloads of the
    file); returns (rows, meta, summary, chart name) as written."""
    if args.merge:
        rows, meta = merged(rows, meta, args.out / f"{args.results}.json")
    summary = report.summarise(rows)
    return (
        rows,
        meta,
        summary,
        write(rows, meta, summary, args.out, args.results),
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.report:
        if args.out is None:
            sys.exit("--report needs --out (or no --smoke)")
        earlier = json.loads((args.out / f"{args.results}.json").read_text())
        rows, meta, summary, chart_name = save(
            args, earlier["rows"], earlier["meta"]
        )
    elif args.out is None:
        rows, meta = measure(args)
        summary, chart_name = report.summarise(rows), None
    else:
        # Written after each workload, so that a run cut short (a GPU
        # lease's time limit) keeps what it measured; the last write is the
        # whole run's.
        written = {}
        rows, meta = measure(
            args,
            lambda rows, meta: written.update(result=save(args, rows, meta)),
        )
        rows, meta, summary, chart_name = written.get("result") or save(
            args, rows, meta
        )
    report.print_report(summary, meta)
    if args.out is not None:
        name = args.out / args.results
        print(
            f"\nwrote {name}.json, {args.out / 'RESULTS.md'}"
            + (
                f", {name}.png, {name}.svg"
                if chart_name
                else " (matplotlib not installed: no chart)"
            )
        )
    failed = [r for r in rows if r["status"] == "FAILED"]
    for row in failed:
        print(
            f"FAILED: {row['label']} {row['peer']} {row['mode']}: "
            f"{row['reason']}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
