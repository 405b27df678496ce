"""Keras' ``Masking`` layer, and Keras' rule for layers that cannot mask."""

from __future__ import annotations

import dataclasses
import numbers
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrnn._validation import describe
from jaxrnn.cells._base import REQUIRED
from jaxrnn.layers._common import check_layer_call
from jaxrnn.layers.core import PassMask
from jaxrnn.typing import Shape


class DropsMask(PassMask):
    """Keras' layers without ``supports_masking`` (Conv1D, MaxPooling1D,
    GlobalMaxPooling1D): a mask reaching one is ignored, with Keras'
    warning, and does not go on to the next layer."""

    def _drop_mask(self, mask: jax.Array | None) -> None:
        """Warns, as Keras' ``Layer.__call__`` does, when a mask arrives."""
        if mask is not None:
            # stacklevel 3: the caller of the layer, not the layer itself.
            warnings.warn(
                f"{type(self).__name__} was passed a mask, but it does not "
                "support masking (as in Keras): it computes over every step "
                "and the mask does not reach later layers.",
                stacklevel=3,
            )

    def compute_mask(self, inputs: ArrayLike, mask: ArrayLike | None) -> None:
        """The mask for the next layer: None, whatever came in (Keras drops
        it at a layer that does not support masking).

        Args:
          inputs: this layer's inputs (unused).
          mask: the incoming mask, or None.

        Returns:
          None.
        """
        return None


@dataclasses.dataclass(frozen=True)
class Masking(PassMask):
    """Keras' ``Masking``: a step whose features all equal `mask_value` is
    masked for the layers after it, and zeroed in the output.

    The mask comes from the values alone: `compute_mask` returns ``any(x !=
    mask_value, axis=-1)`` and ignores any mask that came in, as Keras does.

    Args:
      mask_value: a real number; a step of (..., D) is masked when all D of
        its features equal it.

    Example:
      >>> import jax.numpy as jnp
      >>> layer = Masking()
      >>> x = jnp.array([[[0.0, 0.0], [1.0, 2.0], [0.0, 3.0]]])
      >>> layer.compute_mask(x, None).tolist()
      [[False, True, True]]
      >>> layer({}, x)[0, 2].tolist()
      [0.0, 3.0]
    """

    mask_value: float = 0.0

    def __post_init__(self):
        if isinstance(self.mask_value, bool) or not isinstance(
            self.mask_value, numbers.Real
        ):
            raise TypeError(
                "`mask_value` must be a real number such as 0.0, "
                f"got {describe(self.mask_value)}."
            )

    def init(self, key: jax.Array, input_shape: Shape = ()) -> dict:
        """Returns ``{}``: masking has no params."""
        return {}

    def _keep(self, x: jax.Array) -> jax.Array:
        """(...,) True where a step has a feature other than `mask_value`."""
        # Integer inputs compare as floats, as Keras' not_equal promotes
        # them; floating inputs compare in their own dtype.
        dtype = (
            x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
        )
        return jnp.any(
            x.astype(dtype) != np.asarray(self.mask_value, dtype), axis=-1
        )

    def _check_inputs(self, x: Any) -> jax.Array:
        x = jnp.asarray(x)
        if x.ndim < 1:
            raise ValueError(
                "Masking expects inputs (..., D) such as "
                f"(B, T, D), got {describe(x)}."
            )
        if not (
            jnp.issubdtype(x.dtype, jnp.integer)
            or x.dtype == jnp.bool_
            or jnp.issubdtype(x.dtype, jnp.floating)
        ):
            raise TypeError(
                "Masking expects real (float, int or bool) inputs, "
                f"got {x.dtype}."
            )
        return x

    def __call__(
        self,
        params,
        x: ArrayLike = REQUIRED,
        *,
        mask=None,
        key=None,
        training=False,
    ) -> jax.Array:
        """Zeroes the masked steps.

        Args:
          params: ``{}``.
          x: (..., D) inputs, e.g. (B, T, D) or unbatched (T, D).
          mask: ignored: Keras' Masking computes its mask from the values.
          key: ignored (every layer takes it).
          training: ignored (every layer takes it).

        Returns:
          `x`, (..., D), with every step whose features all equal
          `mask_value` set to zeros.
        """
        check_layer_call(self, x, "x")
        x = self._check_inputs(x)
        keep = self._keep(x)[..., None]
        return jnp.where(keep, x, jnp.zeros((), x.dtype))

    def compute_mask(
        self, inputs: ArrayLike, mask: ArrayLike | None
    ) -> jax.Array:
        """The mask for the next layer.

        Args:
          inputs: this layer's inputs, (..., D).
          mask: ignored, as in Keras.

        Returns:
          A bool (...,), e.g. (B, T), True where some feature differs
          from `mask_value`.
        """
        return self._keep(self._check_inputs(inputs))

    def output_shape(self, input_shape: Shape) -> tuple[Any, ...]:
        """`input_shape` unchanged."""
        return tuple(input_shape)
