"""Keras' model summary table, and the names Keras gives layers.

`summary` prints the table ``model.summary()`` prints in Keras (layer
names and types, output shapes, parameter counts, in Keras' 65-column
layout); `keras_snake_case` is Keras' rule that names a layer after its
class (``LSTM`` -> ``lstm``), which also names its path in weight files.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import jax

from jaxrnn.typing import Shape

if TYPE_CHECKING:
    from jaxrnn.layers.sequential import Sequential


def keras_snake_case(name: str) -> str:
    """Keras' ``to_snake_case``, which names layers (and their paths in
    weight files) after their class.

    Example:
      >>> keras_snake_case("SimpleRNN"), keras_snake_case("LSTMCell")
      ('simple_rnn', 'lstm_cell')
    """
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def keras_layer_names(layers: Sequence[Any]) -> list[str]:
    """Keras' default names, one per layer: ``lstm``, ``lstm_1``, ..."""
    seen: dict[str, int] = {}
    names = []
    for layer in layers:
        stem = keras_snake_case(type(layer).__name__)
        count = seen.get(stem, 0)
        names.append(stem if count == 0 else f"{stem}_{count}")
        seen[stem] = count + 1
    return names


def _format_shape(shape: Any) -> str:
    return (
        "("
        + ", ".join("None" if d is None else str(d) for d in shape)
        + ("," if len(shape) == 1 else "")
        + ")"
    )


def summary(
    model: Sequential,
    input_shape: Shape,
    print_fn: Callable[[str], None] | None = print,
) -> str:
    """Prints (and returns) Keras' model summary table.

    Args:
      model: a `Sequential`.
      input_shape: the model's input shape, None for unknown sizes (e.g.
        ``(None, None)`` for token ids of any batch and length).
      print_fn: where to print each line; None prints nothing.

    Returns:
      The table as one string.

    Example:
      >>> from jaxrnn.layers import Dense, Embedding, LSTM, Sequential
      >>> model = Sequential([Embedding(1000, 64), LSTM(128), Dense(10)])
      >>> text = summary(model, (None, None))
      Model: "sequential"
      _________________________________________________________________
      Layer (type)                 Output Shape              Param #
      =================================================================
      embedding (Embedding)        (None, None, 64)          64000
      _________________________________________________________________
      lstm (LSTM)                  (None, 128)               98816
      _________________________________________________________________
      dense (Dense)                (None, 10)                1290
      =================================================================
      Total params: 164,106
      Trainable params: 164,106
      Non-trainable params: 0
      _________________________________________________________________
    """
    params_shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), input_shape)
    )
    mask = model.trainable_mask(params_shapes)
    sizes = [math.prod(leaf.shape) for leaf in jax.tree.leaves(params_shapes)]
    trainable = sum(s for s, t in zip(sizes, jax.tree.leaves(mask)) if t)
    rows = [
        (
            f"{name} ({type(layer).__name__})",
            _format_shape(shape),
            sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(p)),
        )
        for name, layer, shape, p in zip(
            model.layer_names(),
            model.layers,
            model.output_shapes(input_shape),
            params_shapes,
        )
    ]
    # Keras' 65-character layout (29, 26, 10), widened where a cell would
    # not fit: tf.keras cut "bidirectional (Bidirectional)" short instead.
    widths = [
        max([least] + [len(str(r[col])) + 1 for r in rows])
        for col, least in enumerate((29, 26, 10))
    ]
    rule = sum(widths)

    def row(*cells):
        # A cell at least one space wider than its text, as Keras pads.
        return "".join(
            (str(c) + " ").ljust(w) for c, w in zip(cells, widths)
        ).rstrip()

    lines = [
        f'Model: "{model.name}"',
        "_" * rule,
        row("Layer (type)", "Output Shape", "Param #"),
        "=" * rule,
    ]
    for i, cells in enumerate(rows):
        if i:
            lines.append("_" * rule)
        lines.append(row(*cells))
    total = sum(sizes)
    lines += [
        "=" * rule,
        f"Total params: {total:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total - trainable:,}",
        "_" * rule,
    ]
    text = "\n".join(lines)
    if print_fn is not None:
        for line in lines:
            print_fn(line)
    return text
