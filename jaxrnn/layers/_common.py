"""What every layer shares at its public boundary: reading an
``input_shape``, refusing a call without params, and counting params."""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from jaxrnn.cells._base import REQUIRED
from jaxrnn.typing import Shape


def shape_tuple(
    input_shape: Any,
    example: str = "(None, T, D)",
    fix: str = "(None, None, {})",
) -> tuple[Any, ...]:
    """`input_shape` as a tuple; a TypeError naming it for a bare number,
    which could mean features, steps or batch (`fix` shows the likely one)."""
    if _is_int(input_shape):
        raise TypeError(
            f"`input_shape` must be a shape tuple such as {example} (None "
            f"for unknown sizes), got the int {input_shape}; for inputs of "
            f"{input_shape} features pass {fix.format(input_shape)}."
        )
    if np.ndim(input_shape) > 1 or (
        hasattr(input_shape, "dtype")
        and not np.issubdtype(input_shape.dtype, np.integer)
    ):
        raise TypeError(
            f"`input_shape` must be a shape tuple such as {example}, got an "
            f"array of shape {tuple(np.shape(input_shape))} and dtype "
            f"{input_shape.dtype}: pass the data's shape, e.g. x.shape, not "
            "the data."
        )
    if isinstance(input_shape, (str, bytes)) or not hasattr(
        input_shape, "__iter__"
    ):
        raise TypeError(
            f"`input_shape` must be a shape tuple such as "
            f"{example} (None for unknown sizes), got "
            f"{type(input_shape).__name__}."
        )
    return tuple(input_shape)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_layer_call(layer: Any, inputs: Any, name: str = "inputs") -> None:
    """Raises TypeError, naming `layer`'s own class, when it was called
    with its inputs alone (Python's message names the base class that
    defines ``__call__``)."""
    if inputs is REQUIRED:
        cls = type(layer).__name__
        raise TypeError(
            f"{cls} takes (params, {name}), got one argument: call it as "
            f"layer(params, {name}) with params = layer.init(key, "
            f"{name}.shape), as every jaxrnn layer keeps its weights in "
            "params you pass."
        )


def count_params(layer: Any, input_shape: Shape) -> int:
    """Counts the scalars in ``layer.init(key, input_shape)`` without
    allocating them (Keras' ``count_params``).

    Args:
      layer: anything with ``init(key, input_shape)``.
      input_shape: the shape `init` takes, e.g. (None, T, D).

    Returns:
      The number of parameters, non-trainable ones included.

    Example:
      >>> from jaxrnn import LSTM
      >>> count_params(LSTM(8), (None, None, 4))  # 4 * (4 + 8 + 1) * 8
      416
    """
    shapes = jax.eval_shape(lambda: layer.init(jax.random.key(0), input_shape))
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))
