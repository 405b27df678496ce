"""Summaries of measured rows: the printed table, RESULTS.md and the charts."""

from __future__ import annotations

import math
import re
import statistics
from pathlib import Path

from jaxrnn.interop._atomic import atomic_path

START = "<!-- benchmarks/run.py: start (generated, do not edit) -->"
END = "<!-- benchmarks/run.py: end -->"
# docs/performance.md's chart, docs_chart() of the CPU results: MkDocs
# serves only files under docs/, so benchmarks/run.py writes it there.
DOCS_CHART = (
    Path(__file__).resolve().parents[1] / "docs" / "figures" / "benchmarks.svg"
)


def markers(platform: str = "cpu") -> tuple[str, str]:
    """The (start, end) comments around a platform's generated section: a
    GPU run has its own beside the CPU's."""
    if platform == "cpu":
        return START, END
    return (
        f"<!-- benchmarks/run.py {platform}: start (generated, do not "
        "edit) -->",
        f"<!-- benchmarks/run.py {platform}: end -->",
    )


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def summarise(rows: list[dict]) -> list[dict]:
    """Adds median, spread, ratios, GFLOP/s and % of peak (of the matmul
    peak measured by the row's own run) to each row."""
    out = [dict(row) for row in rows]
    for row in out:
        times = [t * 1e3 for t in row["times_s"]]
        if row["status"] != "ok" or not times:
            continue
        q1, median, q3 = _quantiles(times)
        row.update(
            median_ms=median,
            q1_ms=q1,
            q3_ms=q3,
            min_ms=min(times),
            max_ms=max(times),
            reps=len(times),
            faults_per_call=statistics.median(row["faults"]),
            gflops=row["flops"] / median / 1e6,
        )
        row["pct_peak"] = 100 * row["gflops"] / row["peak_gflops"]
    groups: dict[tuple, list[dict]] = {}
    for row in out:
        if "median_ms" in row:
            groups.setdefault((row["label"], row["mode"]), []).append(row)
    for members in groups.values():
        fastest = min(
            (r for r in members if r["comparable"]),
            key=lambda r: r["median_ms"],
        )
        jaxrnn = next((r for r in members if r["peer"] == "jaxrnn"), None)
        for row in members:
            row["fastest"] = fastest["peer"]
            row["vs_fastest"] = row["median_ms"] / fastest["median_ms"]
            row["vs_jaxrnn"] = (
                row["median_ms"] / jaxrnn["median_ms"] if jaxrnn else math.nan
            )
    return out


def _fmt(value, spec: str, missing: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, spec)


def _mb(value) -> str:
    return "" if value is None else f"{value / 2**20:.1f}"


def _worst_error(row: dict) -> str:
    return _fmt(max(row["errors"].values()) if row["errors"] else None, ".0e")


def _reps(row: dict) -> str:
    calls = row.get("calls_per_sample", 1)  # absent from older runs
    return str(row["reps"]) + (f"x{calls}" if calls > 1 else "")


def row_cells(row: dict) -> list[str]:
    """The per-row figures, in the order of ROW_HEADER."""
    if row["status"] != "ok":
        return [
            row["peer"],
            row["mode"],
            row["status"],
            row["reason"][:70],
        ] + [""] * (len(ROW_HEADER) - 4)
    spread = f"{row['q1_ms']:.3g}-{row['q3_ms']:.3g}"
    return [
        row["peer"] + (" *" if not row["comparable"] else ""),
        row["mode"],
        f"{row['median_ms']:.3g}",
        spread,
        f"{row['min_ms']:.3g}-{row['max_ms']:.3g}",
        _reps(row),
        f"{row['vs_fastest']:.2f}",
        _fmt(row["vs_jaxrnn"], ".2f"),
        f"{row['faults_per_call']:.0f}",
        f"{row['gflops']:.1f}",
        f"{row['pct_peak']:.1f}",
        f"{row['first_call_s']:.2f}",
        _mb(row["temp_bytes"]),
        _mb(row["remat_temp_bytes"]),
        _worst_error(row),
    ]


ROW_HEADER = [
    "peer",
    "mode",
    "median ms",
    "IQR ms",
    "min-max ms",
    "n",
    "x fastest",
    "x jaxrnn",
    "faults/call",
    "GFLOP/s",
    "% peak",
    "first call s",
    "temp MB",
    "remat temp MB",
    "max err",
]


def headline(summary: list[dict]) -> list[list[str]]:
    """Per workload and mode: jaxrnn against the fastest JAX library, the
    hand-written reference and PyTorch."""
    lines = []
    keys = list(dict.fromkeys((r["label"], r["mode"]) for r in summary))
    for label, mode in keys:
        members = [
            r
            for r in summary
            if (r["label"], r["mode"]) == (label, mode) and "median_ms" in r
        ]
        jaxrnn = next((r for r in members if r["peer"] == "jaxrnn"), None)
        if jaxrnn is None:
            continue
        libraries = [
            r for r in members if r["group"] == "jax" and r["comparable"]
        ]
        best = min(libraries, key=lambda r: r["median_ms"], default=None)
        ref = next((r for r in members if r["group"] == "reference"), None)
        remat = next(
            (r for r in members if r["peer"] == "jaxrnn remat=True"), None
        )
        torch = next((r for r in members if r["group"] == "torch"), None)

        def ratio(other):
            return (
                ""
                if other is None
                else f"{jaxrnn['median_ms'] / other['median_ms']:.2f}"
            )

        lines.append(
            [
                label,
                mode,
                f"{jaxrnn['median_ms']:.3g}",
                ""
                if best is None
                else f"{best['peer']} {best['median_ms']:.3g}",
                ratio(best),
                ratio(ref),
                ratio(torch),
                "" if torch is None else f"{torch['median_ms']:.3g}",
                f"{jaxrnn['pct_peak']:.1f}",
                _mb(jaxrnn["temp_bytes"]),
                _mb(jaxrnn["remat_temp_bytes"]),
                "" if remat is None else f"{remat['median_ms']:.3g}",
            ]
        )
    return lines


HEADLINE_HEADER = [
    "workload",
    "mode",
    "jaxrnn ms",
    "fastest JAX library ms",
    "jaxrnn / fastest JAX lib",
    "jaxrnn / reference",
    "jaxrnn / torch",
    "torch ms",
    "jaxrnn % peak",
    "jaxrnn temp MB",
    "remat temp MB",
    "remat ms",
]


def text_table(header: list[str], lines: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    out += [
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths))
        for line in lines
    ]
    return "\n".join(out)


def markdown_table(header: list[str], lines: list[list[str]]) -> str:
    out = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    out += [
        "| " + " | ".join(c.replace("|", "/") for c in line) + " |"
        for line in lines
    ]
    return "\n".join(out)


def full_lines(summary: list[dict]) -> list[tuple[str, list[list[str]], str]]:
    """(workload label, its rows' cells, a line on skipped peers) in run
    order."""
    out = []
    for label in dict.fromkeys(r["label"] for r in summary):
        rows = [r for r in summary if r["label"] == label]
        skipped = dict.fromkeys(
            f"{r['peer']} ({r['reason']})"
            for r in rows
            if r["status"] == "skipped"
        )
        out.append(
            (
                label,
                [row_cells(r) for r in rows if r["status"] != "skipped"],
                "Skipped: " + "; ".join(skipped) + "." if skipped else "",
            )
        )
    return out


def print_report(summary: list[dict], meta: dict) -> None:
    for run in meta["runs"]:
        print(
            f"\nmatmul peak (jnp.dot {run['peak']['size']}^2 float32): "
            f"{run['peak']['jax_gflops']:.1f} GFLOP/s ({run['command']})"
        )
    for label, lines, skipped in full_lines(summary):
        print(f"\n{label}")
        print(text_table(ROW_HEADER, lines))
        if skipped:
            print(skipped)
    print("\nSummary (ratios < 1: jaxrnn faster)")
    print(text_table(HEADLINE_HEADER, headline(summary)))


def _runs(meta: dict) -> str:
    lines = []
    for run in meta["runs"]:
        peak = run["peak"]
        torch_peak = (
            f", torch.mm {peak['torch_gflops']:.1f}"
            if "torch_gflops" in peak
            else ""
        )
        load = f"{run['load_before'][0]:.1f} / {run['load_after'][0]:.1f}"
        lines.append(
            f"- `{run['command']}` ({run['date']}): "
            f"{', '.join(run['workloads'])}. Matmul peak "
            f"(jitted {peak['size']}x{peak['size']} float32 "
            f"`jnp.dot`, best of {peak.get('tries', 10)}): "
            f"{peak['jax_gflops']:.1f} "
            f"GFLOP/s{torch_peak}. 1-min load average before / "
            f"after: {load}."
        )
    return "\n".join(lines)


def _short(number: float) -> str:
    """1e-4, 2e-2: a tolerance as people write it."""
    return f"{number:.0e}".replace("e-0", "e-").replace("e+0", "e")


def markdown(summary: list[dict], meta: dict, chart_name: str | None) -> str:
    """The generated RESULTS.md section."""
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    platform = meta.get("platform", "cpu")
    start, end = markers(platform)
    where = "" if platform == "cpu" else f" on a {platform.upper()}"
    parts = [
        start,
        "## jaxrnn beside Flax, NNX, Equinox, Haiku, Keras and PyTorch"
        f"{where} (`benchmarks/run.py`)",
        "",
        f"Machine: {meta['cpu']}, {meta['cores']} cores, {meta['memory']}, "
        + (
            f"device {meta['device']} (JAX and torch run there; matmul "
            f"precision: {meta.get('precision', 'highest')}); "
            if meta.get("device")
            else "no GPU used; "
        )
        + f"torch threads: {meta.get('torch_threads', 'n/a')}. "
        f"Versions: {versions}. Runs:",
        "",
        _runs(meta),
        "",
        "Float32. Forward returns the full sequence; the training step is "
        "`value_and_grad` of the mean-square loss (valid steps only when "
        "masked) w.r.t. params and inputs (torch: `loss.backward()` with "
        "inputs requiring grad). Every row was first checked against jaxrnn "
        "on the same weights (outputs, loss, input and parameter gradients "
        f"within {_short(meta.get('tolerance', 1e-4))}: `max err`). Times are "
        "medians of repetitions "
        "interleaved round-robin (a fresh random order each round) over a "
        "workload's rows in one process, IQR and min-max in ms; `n` "
        "repetitions (`n`x`k`: a repetition of a call under 20 ms is the "
        "mean of `k` back-to-back calls); `x fastest` is over the rows with the "
        "workload's maths (`*`: other maths); faults are minor page faults "
        "per call; GFLOP/s counts the recurrence's matmuls (forward "
        "2*T*B*(D+H)*G*H, training 3x, bidirectional twice) and % peak "
        "divides by the run's matmul peak. First call: compile plus first "
        "run. Temp MB: XLA's temp buffers of the training step "
        "(`memory_analysis()`), for jaxrnn also with `remat=True` (the "
        "`jaxrnn remat=True` row times that step).",
        "",
        "### Summary (ratios below 1: jaxrnn faster)",
        "",
        markdown_table(HEADLINE_HEADER, headline(summary)),
        "",
    ]
    if chart_name:
        vector = Path(chart_name).with_suffix(".svg").name
        parts += [
            f"![time relative to jaxrnn]({chart_name})",
            "",
            f"(The same chart as vector graphics: [{vector}]({vector}).)",
            "",
        ]
    parts += ["### All rows", ""]
    for label, lines, skipped in full_lines(summary):
        parts += [f"**{label}**", "", markdown_table(ROW_HEADER, lines), ""]
        if skipped:
            parts += [skipped, ""]
    notes = sorted({f"{r['peer']}: {r['note']}" for r in summary if r["note"]})
    if notes:
        parts += ["Notes: " + "; ".join(notes) + ".", ""]
    parts.append(end)
    return "\n".join(parts) + "\n"


def write_section(path: Path, section: str, platform: str = "cpu") -> None:
    """Replaces `platform`'s generated section of `path`, or inserts it
    after the CPU's section (or the title); the rest of the file is kept."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    start, end = markers(platform)
    pattern = re.compile(
        re.escape(start) + r".*?" + re.escape(end) + r"\n?", re.S
    )
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    elif platform != "cpu" and END in text:
        before, _, rest = text.partition(END)
        text = f"{before}{END}\n\n{section}\n{rest.lstrip(chr(10))}"
    else:
        title, _, rest = text.partition("\n")
        text = f"{title}\n\n{section}\n{rest.lstrip(chr(10))}"
    # RESULTS.md holds hand-written readings: a crash must not truncate it.
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def _panel(ax, measured: list[dict], mode: str, labels, keys, colours):
    from matplotlib.ticker import FuncFormatter

    for i, label in enumerate(labels):
        present = sorted(
            (r for r in measured if (r["label"], r["mode"]) == (label, mode)),
            key=lambda r: keys.index(r["key"]),
        )
        width = 0.8 / max(len(present), 1)
        for k, row in enumerate(present):
            # From 1 (jaxrnn) up to slower or down to faster peers.
            ax.bar(
                i + (k - len(present) / 2 + 0.5) * width,
                row["vs_jaxrnn"] - 1,
                width,
                bottom=1,
                color=colours[row["key"]],
                hatch="" if row["comparable"] else "//",
            )
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.grid(axis="y", which="both", alpha=0.3)


def _pyplot():
    """matplotlib.pyplot set up for files that a rerun writes byte for
    byte; None when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "jaxrnn-benchmarks"
    import matplotlib.pyplot as plt

    return plt


def _save(fig, paths, **options) -> None:
    for path in paths:
        # No dates or software versions in the files, so that a rerun with
        # the same figures writes the same bytes.
        suffix = Path(path).suffix
        metadata = {"Software": None} if suffix == ".png" else {"Date": None}
        # The temporary's name has no suffix: name the format.
        with atomic_path(path) as tmp:
            fig.savefig(
                tmp, format=suffix[1:], metadata=metadata, dpi=100, **options
            )


def _measured(summary: list[dict]) -> list[dict]:
    return [
        r
        for r in summary
        if "median_ms" in r
        and r["peer"] != "jaxrnn"
        and not math.isnan(r["vs_jaxrnn"])
    ]


def chart(summary: list[dict], *paths: Path) -> bool:
    """Time relative to jaxrnn per workload, forward and training panels
    (log scale), one colour per peer, saved to each path in the format its
    suffix names; False when matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        return False
    measured = _measured(summary)
    labels = list(dict.fromkeys(r["label"] for r in measured))
    keys = list(dict.fromkeys(r["key"] for r in measured))
    colours = {
        key: plt.cm.tab20((2 * k) % 20 + (k // 10) % 2)
        for k, key in enumerate(keys)
    }
    fig, axes = plt.subplots(2, 1, figsize=(14, 9), sharex=True)
    for ax, mode in zip(axes, ("forward", "train")):
        _panel(ax, measured, mode, labels, keys, colours)
        ax.set_ylabel(f"{mode}: time / jaxrnn")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[key]) for key in keys]
    axes[0].legend(handles, keys, ncol=5, fontsize=8)
    axes[0].set_title(
        "Time relative to jaxrnn (bars up: slower than jaxrnn, "
        "down: faster; hatched: other maths)"
    )
    axes[-1].set_xticks(range(len(labels)))
    axes[-1].set_xticklabels(
        [label.replace(" D=", "\nD=") for label in labels],
        rotation=45,
        ha="right",
        fontsize=8,
    )
    fig.tight_layout()
    _save(fig, paths)
    plt.close(fig)
    return True


# The columns of docs/performance.md's summary table and the result keys
# each stands for. A Flax column holds the faster of the API's two LSTM
# cells, per workload and mode, as the table's notes say.
DOCS_PEERS = {
    "Flax linen": ("flax-linen", "flax-linen-optimized"),
    "Flax NNX": ("flax-nnx", "flax-nnx-optimized"),
    "Equinox": ("equinox",),
    "Haiku": ("haiku",),
    "Keras": ("keras",),
    "PyTorch": ("torch",),
}
# The docs' content column is 656 px wide, 6.83 in at 96 px/in: drawn at
# that width the chart shows at about 1:1, and a font of f points at
# f * 4/3 px (9.5 pt, the smallest, at 12.7 px).
DOCS_WIDTH = 6.8
DOCS_FONT, DOCS_TITLE = 9.5, 11  # points


def table_label(label: str) -> str:
    """The summary table's name of a workload: 'LSTM B=32 T=128 D=256
    H=256 masked' -> 'LSTM B=32 masked' (the table's notes give the
    sizes)."""
    words = [w for w in label.split() if not w.startswith(("D=", "H="))]
    if not words[-1].count("="):  # masked, bidirectional: one T each
        words = [w for w in words if not w.startswith("T=")]
    return " ".join(words)


def docs_rows(summary: list[dict]) -> list[dict]:
    """The cells of docs/performance.md's summary table as rows: "key" is
    the column's name, "label" the table's workload name."""
    measured = _measured(summary)
    out = []
    for label in dict.fromkeys(r["label"] for r in measured):
        for mode in ("forward", "train"):
            for name, keys in DOCS_PEERS.items():
                cell = [
                    r
                    for r in measured
                    if r["key"] in keys
                    and (r["label"], r["mode"]) == (label, mode)
                ]
                if cell:
                    best = min(cell, key=lambda r: r["vs_jaxrnn"])
                    out.append(
                        {**best, "key": name, "label": table_label(label)}
                    )
    return out


def docs_chart(summary: list[dict], *paths: Path) -> bool:
    """chart() for docs/performance.md: the summary table's peers and
    workloads, drawn for the site's content column; False when matplotlib
    is missing."""
    plt = _pyplot()
    if plt is None:
        return False
    from matplotlib.ticker import FixedLocator

    rows = docs_rows(summary)
    labels = list(dict.fromkeys(r["label"] for r in rows))
    keys = [key for key in DOCS_PEERS if any(r["key"] == key for r in rows)]
    colours = {key: plt.cm.tab10(k) for k, key in enumerate(keys)}
    ratios = [r["vs_jaxrnn"] for r in rows]
    # Labelled ticks a reader can interpolate between; log's own are 1, 10.
    ticks = [
        t
        for t in (0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10, 20, 30, 50)
        if min(ratios) / 1.5 <= t <= max(ratios) * 1.5
    ]
    with plt.rc_context({"font.size": DOCS_FONT}):
        fig, axes = plt.subplots(
            2,
            1,
            figsize=(DOCS_WIDTH, 6.4),
            sharex=True,
            sharey=True,
            layout="constrained",
        )
        for ax, mode, name in zip(
            axes, ("forward", "train"), ("forward pass", "training step")
        ):
            _panel(ax, rows, mode, labels, keys, colours)
            ax.yaxis.set_major_locator(FixedLocator(ticks))
            ax.yaxis.set_minor_locator(FixedLocator([]))
            ax.set_ylabel(name)
        axes[0].set_xlim(-0.5, len(labels) - 0.5)
        handles = [
            plt.Rectangle((0, 0), 1, 1, color=colours[key]) for key in keys
        ]
        names = list(keys)
        if not all(r["comparable"] for r in rows):
            handles.append(
                plt.Rectangle(
                    (0, 0),
                    1,
                    1,
                    facecolor="white",
                    edgecolor="black",
                    hatch="//",
                )
            )
            names.append("other maths")
        # Above the panels, under the title: the bars fill the panels.
        axes[0].legend(
            handles,
            names,
            loc="lower center",
            ncol=4,
            bbox_to_anchor=(0.5, 1.0),
            frameon=False,
        )
        fig.suptitle(
            "Each library's time / jaxrnn's: above 1, jaxrnn is faster",
            fontsize=DOCS_TITLE,
        )
        axes[-1].set_xticks(range(len(labels)))
        axes[-1].set_xticklabels(
            labels, rotation=40, ha="right", rotation_mode="anchor"
        )
        # Transparent: the site's dark scheme shows the figure inverted
        # (the adaptive-figure class) on its own background.
        _save(fig, paths, transparent=True)
    plt.close(fig)
    return True
