"""What every companion layer shares: Keras' mask rule and its count.

`PassMask` is the base of the layers that Keras marks
``supports_masking``: a mask reaching one goes on to the next layer
unchanged. It also gives each layer ``param_count``. The layers that
cannot mask derive from its subclass `DropsMask`
(`jaxrnn.layers.masking`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrnn.layers._common import count_params
from jaxrnn.typing import Shape


class PassMask:
    """Keras' ``supports_masking``: the mask goes through unchanged."""

    def compute_mask(
        self, inputs: ArrayLike, mask: ArrayLike | None
    ) -> jax.Array | None:
        """The mask for the next layer: `mask` unchanged.

        Args:
          inputs: this layer's inputs (unused).
          mask: bool (B, T), or None.

        Returns:
          `mask`.
        """
        return None if mask is None else jnp.asarray(mask)

    def param_count(self, input_shape: Shape) -> int:
        """The number of parameters, as Keras' ``count_params``."""
        return count_params(self, input_shape)
