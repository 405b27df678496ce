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
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # jaxrnn from this checkout

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxrnn  # noqa: E402

STEPS, LENGTH = 6, 4
COLORS = {"input": "#dbe9f6", "padding": "#eeeeee", "fresh": "#9ecae1",
          "repeat": "#deebf7", "zero": "#ffffff"}


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
            kinds.append("zero" if label == "0" else
                         "repeat" if label in seen else "fresh")
            seen.add(label)
        return list(zip(labels, kinds))

    inputs = [(f"$x_{t}$", "input" if t < LENGTH else "padding")
              for t in range(STEPS)]
    return [
        ("inputs, mask = lengths_to_mask([4], 6)", inputs, "input order"),
        ("rnn(...)", run(), "input order"),
        ("rnn(..., zero_output_for_mask=True)",
         run(zero_output_for_mask=True), "input order"),
        ("rnn(..., go_backwards=True)   (Keras' order)",
         run(go_backwards=True), "processing order"),
        ("rnn(..., go_backwards=True, keep_order=True)",
         run(go_backwards=True, keep_order=True), "input order"),
    ]


def draw_masking(path: pathlib.Path) -> None:
    rows = masking_rows()
    fig, ax = plt.subplots(figsize=(8.2, 5.4))
    ax.set_xlim(-0.2, STEPS + 3.6)
    ax.set_ylim(-0.6, 2 * len(rows) + 0.2)
    ax.axis("off")
    for r, (title, cells, note) in enumerate(rows):
        top = 2 * (len(rows) - r) - 0.45
        ax.text(0, top, title, fontsize=10, family="monospace", va="bottom")
        for t, (label, kind) in enumerate(cells):
            ax.add_patch(Rectangle((t, top - 1.05), 0.9, 0.9,
                                   facecolor=COLORS[kind], edgecolor="#555555",
                                   hatch="//" if kind == "padding" else None,
                                   linewidth=1))
            ax.text(t + 0.45, top - 0.6, label, ha="center", va="center",
                    fontsize=13)
        ax.text(STEPS + 0.15, top - 0.6, note, fontsize=9, va="center",
                color="#333333")
        if "go_backwards=True)" in title:
            for t in range(STEPS):  # the input each position was computed from
                ax.text(t + 0.45, top - 1.28, f"reads $x_{STEPS - 1 - t}$",
                        ha="center", va="center", fontsize=7.5,
                        color="#555555")
    ax.text(0, -0.45, "columns: positions 0 to 5 of the time axis.   dark: a "
            "step's own output; light: the previous output repeated; white: "
            "zeros", 
            fontsize=8.5, color="#333333")
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE,
                        help="folder to write the figures to (default: here)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    plt.rcParams["svg.hashsalt"] = "jaxrnn"  # stable ids: a diff-free rerun
    draw_masking(args.out / "masking.svg")
    print(f"wrote {args.out / 'masking.svg'}")


if __name__ == "__main__":
    main()
