"""Classifying pen strokes of different lengths: padding, masks, a GRU.

A seeded synthetic dataset of pen strokes, each a sequence of (dx, dy) pen
movements: lines, circles, zigzags, spirals, squares and waves, drawn at a
random size, angle, direction and number of points (20 to 80) with jitter.
Sequences are right-padded to the longest one; the mask (from the lengths)
makes the GRU skip the padding, so each stroke is classified from its own
last step, whatever its length. Adam trains a ``GRU -> Dense`` model; the
test accuracy and a confusion matrix are printed at the end.

Run (well under a minute on two CPU cores):

    python examples/classify_sequences.py

Smaller: ``--train-size 600 --epochs 4 --units 32``; ``--plot PATH`` draws a
stroke of each kind.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxrnn
from jaxrnn.layers import Dense

SHAPES = ("line", "circle", "zigzag", "spiral", "square", "wave")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=6000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--min-length", type=int, default=20)
    parser.add_argument("--max-length", type=int, default=80)
    parser.add_argument(
        "--noise",
        type=float,
        default=0.02,
        help="pen jitter, relative to the stroke's size",
    )
    parser.add_argument("--units", type=int, default=64, help="GRU units H")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--plot",
        metavar="PATH",
        help="draw one stroke of each kind to this PNG",
    )
    return parser.parse_args(argv)


# --- Data -------------------------------------------------------------------


def _outline(
    shape: str, u: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Points (N, 2) along `shape` for parameters u in [0, 1], unit-sized."""
    if shape == "line":
        return np.stack([u, np.zeros_like(u)], -1)
    if shape == "circle":
        angle = 2 * np.pi * rng.uniform(0.85, 1.1) * u
        return np.stack([np.cos(angle), np.sin(angle)], -1)
    if shape == "zigzag":
        teeth = rng.integers(3, 6)
        height = rng.uniform(0.1, 0.25)
        phase = (u * teeth) % 1.0
        return np.stack([u, height * (2 * np.abs(phase - 0.5))], -1)
    if shape == "spiral":
        angle = 2 * np.pi * rng.uniform(1.5, 2.5) * u
        radius = 0.1 + u
        return np.stack([radius * np.cos(angle), radius * np.sin(angle)], -1)
    if shape == "square":
        corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], float)
        side = np.minimum((u * 4).astype(int), 3)
        frac = (u * 4 - side)[:, None]
        return corners[side] * (1 - frac) + corners[side + 1] * frac
    if shape == "wave":
        cycles = rng.uniform(1.5, 3.0)
        return np.stack([u, 0.15 * np.sin(2 * np.pi * cycles * u)], -1)
    raise ValueError(f"Unknown shape {shape!r}; expected one of {SHAPES}.")


def draw_stroke(
    shape: str, length: int, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """One stroke as `length` pen movements (dx, dy), (length, 2) float32.

    Random rotation, size and drawing direction; the movements are scaled
    so the mean step is 1, so size says nothing and shape says everything.
    """
    points = _outline(shape, np.linspace(0, 1, length + 1), rng)
    if rng.random() < 0.5:
        points = points[::-1]
    angle = rng.uniform(0, 2 * np.pi)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    )
    points = points @ rotation.T * rng.uniform(0.5, 2.0)
    size = np.ptp(points, axis=0).max()
    points = points + rng.normal(0, noise * size, points.shape)
    moves = np.diff(points, axis=0)
    return (moves / np.linalg.norm(moves, axis=1).mean()).astype(np.float32)


def make_dataset(
    size: int,
    min_length: int,
    max_length: int,
    noise: float,
    rng: np.random.Generator,
):
    """Returns (strokes (N, T, 2) zero-padded, lengths (N,), labels (N,)).

    T is `max_length`; row i holds a stroke in its first ``lengths[i]``
    steps.
    """
    labels = rng.integers(0, len(SHAPES), size)
    lengths = rng.integers(min_length, max_length + 1, size)
    strokes = np.zeros((size, max_length, 2), np.float32)
    for i, (label, length) in enumerate(zip(labels, lengths)):
        strokes[i, :length] = draw_stroke(SHAPES[label], length, noise, rng)
    return strokes, lengths.astype(np.int32), labels.astype(np.int32)


# --- Model and training -------------------------------------------------------


def make_model(units: int):
    """A GRU reading the masked strokes, then a Dense layer to class logits."""
    return jaxrnn.GRU(units), Dense(len(SHAPES))


def init_params(model, key: jax.Array, max_length: int) -> dict:
    gru, head = model
    k_gru, k_head = jax.random.split(key)
    return {
        "gru": gru.init(k_gru, (None, max_length, 2)),
        "head": head.init(k_head, (None, gru.units)),
    }


def logits_fn(model, params, strokes, lengths):
    gru, head = model
    mask = jaxrnn.lengths_to_mask(lengths, strokes.shape[1])  # (B, T) bool
    # With a mask, the GRU returns each row's output at its last valid step.
    features = gru(params["gru"], strokes, mask=mask)  # (B, H)
    return head(params["head"], features)


def make_train_step(model, optimizer):
    @jax.jit
    def train_step(params, opt_state, strokes, lengths, labels):
        def loss_fn(params):
            logits = logits_fn(model, params, strokes, lengths)
            return optax.softmax_cross_entropy_with_integer_labels(
                logits, labels
            ).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return train_step


@functools.partial(jax.jit, static_argnums=0)
def _predicted_classes(model, params, strokes, lengths):
    return jnp.argmax(logits_fn(model, params, strokes, lengths), -1)


def predict(model, params, strokes, lengths, batch: int = 500) -> np.ndarray:
    """Predicted class ids (N,), computed `batch` strokes at a time."""
    return np.concatenate(
        [
            np.asarray(
                _predicted_classes(
                    model,
                    params,
                    strokes[i : i + batch],
                    lengths[i : i + batch],
                )
            )
            for i in range(0, len(strokes), batch)
        ]
    )


def confusion_matrix(
    labels: np.ndarray, predictions: np.ndarray
) -> np.ndarray:
    """(true class, predicted class) counts."""
    matrix = np.zeros((len(SHAPES), len(SHAPES)), int)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def print_confusion(matrix: np.ndarray) -> None:
    width = max(map(len, SHAPES)) + 1
    print("confusion (rows: truth, columns: prediction)")
    print(" " * width + "".join(f"{name[:6]:>7}" for name in SHAPES))
    for name, row in zip(SHAPES, matrix):
        print(f"{name:<{width}}" + "".join(f"{count:>7}" for count in row))


def plot_examples(path: str, rng: np.random.Generator, noise: float) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SHAPES), figsize=(2.2 * len(SHAPES), 2.4))
    for ax, shape in zip(axes, SHAPES):
        moves = draw_stroke(shape, int(rng.integers(40, 80)), noise, rng)
        points = np.concatenate([[[0, 0]], np.cumsum(moves, 0)])
        ax.plot(points[:, 0], points[:, 1], ".-", markersize=3)
        ax.set_title(shape)
        ax.set_aspect("equal")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(model, params, data, args, rng: np.random.Generator) -> dict:
    """Adam over shuffled minibatches for `args.epochs`; returns the params."""
    strokes, lengths, labels = data
    optimizer = optax.adam(args.lr)
    opt_state = optimizer.init(params)
    train_step = make_train_step(model, optimizer)
    steps_per_epoch = len(strokes) // args.batch
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(strokes))
        epoch_losses = []
        for i in range(steps_per_epoch):
            rows = order[i * args.batch : (i + 1) * args.batch]
            params, opt_state, loss = train_step(
                params, opt_state, strokes[rows], lengths[rows], labels[rows]
            )
            epoch_losses.append(float(loss))
        print(f"epoch {epoch:2d}: training loss {np.mean(epoch_losses):.3f}")
    return params


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    train_data, test_data = (
        make_dataset(size, args.min_length, args.max_length, args.noise, rng)
        for size in (args.train_size, args.test_size)
    )
    print(
        f"{args.train_size} training and {args.test_size} test strokes of "
        f"{len(SHAPES)} kinds ({', '.join(SHAPES)}), "
        f"{args.min_length} to {args.max_length} steps, padded to "
        f"{args.max_length}"
    )

    model = make_model(args.units)
    params = init_params(model, jax.random.key(args.seed), args.max_length)
    started = time.perf_counter()
    params = train(model, params, train_data, args, rng)
    seconds = time.perf_counter() - started

    test_strokes, test_lengths, test_labels = test_data
    predictions = predict(model, params, test_strokes, test_lengths)
    accuracy = float(np.mean(predictions == test_labels))
    print_confusion(confusion_matrix(test_labels, predictions))
    print(f"trained {args.epochs} epochs in {seconds:.1f} s")
    print(f"test accuracy: {accuracy:.1%} (chance {1 / len(SHAPES):.1%})")
    if args.plot:
        plot_examples(args.plot, rng, args.noise)
        print(f"example strokes written to {args.plot}")
    return {"accuracy": accuracy, "params": params}


if __name__ == "__main__":
    main()
