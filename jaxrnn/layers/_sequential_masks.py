"""Keras' mask propagation through a `Sequential`, found without running it.

Each layer's ``compute_mask(inputs, mask)`` gives the mask the next layer
sees: most pass it on, `Embedding(mask_zero=True)` makes one from its ids,
a recurrent layer without ``return_sequences`` ends it. Only the first
layer's inputs are known without params, so `mask_from_shapes` hands the
later layers the shapes of their inputs; a layer that needs their values
(`Masking` after a `Dense`) is refused, and `Sequential.compute_mask` then
runs the layers with params instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp


def mask_from_shapes(
    layers: Sequence[Any],
    inputs: Any,
    mask: jax.Array | None,
    shapes: Sequence[Any],
) -> jax.Array | None:
    """The mask the last layer gives, from the model's `inputs` and the
    `mask` given with them.

    Args:
      layers: the model's layers.
      inputs: the model's inputs.
      mask: a bool mask for the first layer, or None.
      shapes: each layer's input shape (the shape walk's list).

    Raises:
      ValueError: a layer after the first computes its mask from its
        inputs' values.
    """
    for i, layer in enumerate(layers):
        if not hasattr(layer, "compute_mask"):
            continue
        # Later layers' inputs come from params: shapes known, values not.
        x = inputs if i == 0 else jax.ShapeDtypeStruct(shapes[i], jnp.float32)
        try:
            mask = layer.compute_mask(x, mask)
        except TypeError as error:
            if i == 0:
                raise
            raise ValueError(
                f"layers[{i}] ({type(layer).__name__}) computes its mask "
                "from its inputs' values, which come from the layers "
                "before it: pass `params` to compute_mask."
            ) from error
    return mask
