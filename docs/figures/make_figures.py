"""Draws the figures of the documentation from real jaxrnn runs.

masking.svg: what each output position holds for a right-padded row (length
4 of 6) run forwards, with ``zero_output_for_mask``, with ``go_backwards``
(Keras' order: processing order) and with ``go_backwards`` and
``keep_order`` (input order). Every label is read off the outputs of
`jaxrnn.rnn` by matching them against unmasked runs, so the picture cannot
drift from the library.

Run from anywhere (needs matplotlib): python docs/figures/make_figures.py
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # jaxrnn from this checkout

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxrnn  # noqa: E402

STEPS, LENGTH = 6, 4
# Light fills, dark text and lines, a transparent background: the site shows
# the figure inverted (invert(1) hue-rotate(180deg)) in its dark scheme, where
# these turn into dark fills, light text and the page's own background.
COLORS = {
    "input": "#dbe9f6",
    "padding": "#eeeeee",
    "fresh": "#9ecae1",
    "repeat": "#cfe2f3",
    "zero": "none",
}
INK, MUTED = "#000000", "#444444"
# Drawn at the site's content width (656 px = 6.83 in at 96 px/in), so a
# font of f points shows at f * 4/3 px: 9.5 pt, the smallest, at 12.7 px.
WIDTH = 6.83
BOX, GAP = 0.76, 0.08  # a time step's square and the space between, inches
TITLE, LABEL, NOTE, SMALL = 11, 15, 10.5, 9.5  # font sizes, points


def _label(y, references):
    """Which reference output `y` is: its name, or '0' for zeros."""
    if np.allclose(y, 0.0):
        return "0"
    for name, ref in references.items():
        if np.allclose(y, ref, atol=1e-6):
            return name
    raise AssertionError(f"output {y} matches no step's output")


def masking_rows():
    """Runs the cases; returns [(title, [(label, kind)] * T, note)]."""
    cell = jaxrnn.SimpleRNNCell(3)
    params = cell.init(jax.random.key(0), 2)
    x = jax.random.normal(jax.random.key(1), (1, STEPS, 2))
    lengths = jnp.array([LENGTH])
    valid = x[:, :LENGTH]
    # y_t: the forward output at input step t; b_t: the backward output there.
    forward_refs = jaxrnn.rnn(cell, params, valid)[0][0]
    backward_refs = jaxrnn.rnn(cell, params, valid, go_backwards=True)[0][0]
    refs = {f"$y_{t}$": forward_refs[t] for t in range(LENGTH)}
    refs |= {f"$b_{LENGTH - 1 - p}$": backward_refs[p] for p in range(LENGTH)}

    def run(**options):
        ys = jaxrnn.rnn(cell, params, x, seq_lengths=lengths, **options)[0][0]
        labels = [_label(y, refs) for y in ys]
        kinds, seen = [], set()
        for label in labels:
            kinds.append(
                "zero"
                if label == "0"
                else "repeat"
                if label in seen
                else "fresh"
            )
            seen.add(label)
        return list(zip(labels, kinds))

    inputs = [
        (f"$x_{t}$", "input" if t < LENGTH else "padding")
        for t in range(STEPS)
    ]
    return [
        ("inputs, mask = lengths_to_mask([4], 6)", inputs, "input order"),
        ("rnn(...)", run(), "input order"),
        (
            "rnn(..., zero_output_for_mask=True)",
            run(zero_output_for_mask=True),
            "input order",
        ),
        (
            "rnn(..., go_backwards=True)   (Keras' order)",
            run(go_backwards=True),
            "processing order",
        ),
        (
            "rnn(..., go_backwards=True, keep_order=True)",
            run(go_backwards=True, keep_order=True),
            "input order",
        ),
    ]


def draw_masking(path: pathlib.Path) -> None:
    rows = masking_rows()
    step = BOX + GAP
    box_h, title_h, row_gap, reads_h = 0.44, 0.27, 0.2, 0.26
    header_h, legend_h = 0.36, 0.72
    height = (
        header_h + len(rows) * (title_h + box_h + row_gap) + reads_h + legend_h
    )
    fig = plt.figure(figsize=(WIDTH, height))
    # One data unit is one inch, from the top left corner down.
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, WIDTH)
    ax.set_ylim(height, 0)
    ax.axis("off")
    left, note_x = 0.08, 0.08 + STEPS * step + 0.1

    def box(x, y, kind, width=BOX, height=box_h):
        # The hatch on a patch of its own, to draw it lighter than the
        # outline (hatchcolor= would need matplotlib 3.10).
        if kind == "padding":
            ax.add_patch(
                Rectangle(
                    (x, y),
                    width,
                    height,
                    facecolor="none",
                    edgecolor="#aaaaaa",
                    hatch="//",
                    linewidth=0,
                )
            )
        # Repeats are dashed too: next to the dark scheme's background their
        # fill alone is faint.
        ax.add_patch(
            Rectangle(
                (x, y),
                width,
                height,
                facecolor=COLORS[kind],
                edgecolor=MUTED,
                linestyle="--" if kind == "repeat" else "-",
                linewidth=1,
                zorder=0.9,
            )
        )

    y = header_h
    for t in range(STEPS):
        ax.text(
            left + t * step + BOX / 2,
            y - 0.1,
            str(t),
            ha="center",
            va="bottom",
            fontsize=SMALL,
            color=MUTED,
        )
    ax.text(
        note_x,
        y - 0.1,
        "time position",
        va="bottom",
        fontsize=SMALL,
        color=MUTED,
    )
    for title, cells, note in rows:
        ax.text(
            left,
            y + title_h - 0.06,
            title,
            fontsize=TITLE,
            family="monospace",
            va="bottom",
            color=INK,
        )
        y += title_h
        for t, (label, kind) in enumerate(cells):
            box(left + t * step, y, kind)
            ax.text(
                left + t * step + BOX / 2,
                y + box_h / 2,
                label,
                ha="center",
                va="center",
                fontsize=LABEL,
                color=INK,
            )
        ax.text(
            note_x,
            y + box_h / 2,
            note,
            fontsize=NOTE,
            va="center",
            color=MUTED,
        )
        y += box_h
        if "go_backwards=True)" in title:
            for t in range(STEPS):  # the input each position was computed from
                ax.text(
                    left + t * step + BOX / 2,
                    y + 0.04,
                    f"reads $x_{STEPS - 1 - t}$",
                    ha="center",
                    va="top",
                    fontsize=NOTE,
                    color=MUTED,
                )
            y += reads_h
        y += row_gap
    # The legend names what each fill means; no colour words, as the dark
    # scheme turns the darker fill into the lighter one.
    legend = [
        ("fresh", "a step's own output"),
        ("repeat", "the previous output, repeated"),
        ("zero", "zeros"),
        ("padding", "padding: masked steps"),
    ]
    for i, (kind, text) in enumerate(legend):
        x = left + (i % 2) * 3.1
        top = y + (i // 2) * 0.32
        box(x, top, kind, width=0.36, height=0.22)
        ax.text(
            x + 0.48, top + 0.11, text, va="center", fontsize=NOTE, color=INK
        )
    fig.savefig(path, metadata={"Date": None}, transparent=True)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=pathlib.Path,
        default=HERE,
        help="folder to write the figures to (default: here)",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    plt.rcParams["svg.hashsalt"] = "jaxrnn"  # stable ids: a diff-free rerun
    draw_masking(args.out / "masking.svg")
    print(f"wrote {args.out / 'masking.svg'}")


if __name__ == "__main__":
    main()
