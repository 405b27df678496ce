"""How an input shape flows through a `Sequential`'s layers.

`walk_shapes` asks each layer for its output shape in turn and, on the
way, applies Keras' batch-rank rule: the first sequence layer's input says
whether the model runs batched, (B, T, D), or on one unbatched example,
(T, D), and every later sequence layer must agree. `unbatched_rank` is
where a layer counts as a sequence layer: a new layer that reads
(B, T, C) is added there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from jaxrnn.layers._common import shape_tuple
from jaxrnn.layers.bidirectional import Bidirectional
from jaxrnn.layers.convolutional import Conv1D
from jaxrnn.layers.pooling import (
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    MaxPooling1D,
)
from jaxrnn.layers.rnn import RecurrentLayer
from jaxrnn.layers.time_distributed import TimeDistributed
from jaxrnn.typing import Shape


def first_output(shape: Any) -> Any:
    """The output's shape in a layer's `output_shape`."""
    # Recurrent layers with return_state report [output, *states].
    return shape[0] if isinstance(shape, list) else shape


def unbatched_rank(layer: Any) -> int | None:
    """The rank of one unbatched example a sequence layer reads: 2 for
    (T, D), 2 + spatial axes for ConvLSTM; None for a layer that takes any
    rank (Dense, Embedding, ...)."""
    from jaxrnn.layers.sequential import Sequential  # imports this module

    if isinstance(layer, Sequential):
        return unbatched_rank(layer.layers[0]) if layer.layers else None
    inner = layer.layer if isinstance(layer, Bidirectional) else layer
    if isinstance(inner, RecurrentLayer):
        return 1 + getattr(inner.cell, "input_ndim", 1)
    if isinstance(
        inner,
        (Conv1D, MaxPooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D),
    ):
        return 2  # (T, C): Keras' "expected ndim=3" with the batch
    return None


def walk_shapes(
    layers: Sequence[Any], input_shape: Shape, name: str
) -> list[Any]:
    """The model's input shape then each layer's output shape; raises
    where a sequence layer gets the wrong rank for the model.

    Args:
      layers: the model's layers.
      input_shape: the model's input shape, None for unknown sizes.
      name: what the caller calls `input_shape` in errors (``inputs``
        for the shape of real inputs).
    """
    shape = shape_tuple(input_shape)
    shapes, batched = [shape], None
    for i, layer in enumerate(layers):
        batched = _check_rank(layers, i, shape, batched, shapes[0], name)
        shape = first_output(layer.output_shape(shape))
        shapes.append(shape)
    return shapes


def _check_rank(
    layers: Sequence[Any],
    i: int,
    shape: tuple[Any, ...],
    batched: bool | None,
    model_shape: tuple[Any, ...],
    name: str,
) -> bool | None:
    """Whether the model is batched, as the first recurrent layer's
    input says; later ones must agree."""
    layer, rank = layers[i], unbatched_rank(layers[i])
    if rank is None:
        if batched and isinstance(layer, TimeDistributed) and len(shape) < 3:
            _rank_error(
                layers,
                i,
                shape,
                "rank 3 or more, (B, T, ...),",
                batched,
                model_shape,
                name,
            )
        return batched
    if batched is None:
        # Wrong ranks here are the layer's own error to raise.
        return len(shape) == rank + 1 if len(shape) - rank in (0, 1) else None
    if len(shape) != rank + batched:
        layout = ("(B, T, " if batched else "(T, ") + (
            "D)" if rank == 2 else f"*S, C) with {rank - 2} spatial axes"
        )
        _rank_error(
            layers,
            i,
            shape,
            f"rank {rank + batched}, {layout},",
            batched,
            model_shape,
            name,
        )
    return batched


def _rank_error(
    layers: Sequence[Any],
    i: int,
    shape: tuple[Any, ...],
    want: str,
    batched: bool,
    model_shape: tuple[Any, ...],
    name: str,
) -> NoReturn:
    message = (
        f"layers[{i}] ({type(layers[i]).__name__}) needs "
        f"inputs of {want} as the model's `{name}` "
        f"{tuple(model_shape)} is "
        f"{'batched' if batched else 'unbatched'}, got "
        f"{tuple(shape)}"
    )
    previous = [j for j in range(i) if unbatched_rank(layers[j])]
    if previous and not getattr(
        layers[previous[-1]], "return_sequences", True
    ):
        j = previous[-1]
        message += (
            f" from layers[{j}] "
            f"({type(layers[j]).__name__}), which returns "
            f"only its last output: set return_sequences=True "
            f"on layers[{j}]."
        )
    else:
        message += "."
    raise ValueError(message)
